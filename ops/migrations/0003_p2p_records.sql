-- hftx schema, part 3: P2P records as the drain receives them, escrow ledger kinds.
--
-- The P2P functions (lua/30_p2p.lua) append to the owner's account stream balance
-- events `escrow` / `unescrow` and full record snapshots `p2p_offer`, `p2p_trade`
-- (each with a version `v`, so an older snapshot never overwrites a newer one) and
-- `p2p_msg` (numbered per trade). The reserved tables of 0001 were never written:
-- they are replaced by tables with the snapshots' fields. Ids are engine snowflakes.

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('hold', 'release', 'fill', 'fee', 'deposit', 'withdraw_req',
                    'withdraw_done', 'withdraw_rejected', 'transfer_out', 'transfer_in',
                    'escrow', 'unescrow'));

DROP TABLE p2p_messages;
DROP TABLE p2p_trades;
DROP TABLE p2p_offers;

CREATE TABLE p2p_offers (
    id          text PRIMARY KEY,
    user_id     text NOT NULL,
    side        text NOT NULL CHECK (side IN ('buy', 'sell')),
    asset       text NOT NULL,
    fiat        text NOT NULL,
    status      text NOT NULL,
    price       bigint NOT NULL,           -- fiat cents per whole asset unit
    min_amount  bigint NOT NULL,
    max_amount  bigint NOT NULL,
    amount      bigint NOT NULL,           -- still offered (escrowed for a sell offer)
    locked      bigint NOT NULL,           -- in open trades
    filled      bigint NOT NULL,
    window_min  bigint NOT NULL,           -- payment window (minutes)
    methods     jsonb NOT NULL,
    created_ts  bigint NOT NULL,
    updated_ts  bigint NOT NULL,
    version     bigint NOT NULL
);
CREATE INDEX p2p_offers_user ON p2p_offers (user_id, created_ts DESC);

CREATE TABLE p2p_trades (
    id              text PRIMARY KEY,
    offer_id        text NOT NULL,
    offer_side      text NOT NULL,
    seller          text NOT NULL,
    buyer           text NOT NULL,
    asset           text NOT NULL,
    fiat            text NOT NULL,
    status          text NOT NULL,
    last_action     text,
    price           bigint NOT NULL,
    amount          bigint NOT NULL,
    fiat_amount     bigint NOT NULL,
    window_min      bigint NOT NULL,
    methods         jsonb NOT NULL,
    expires_ts      bigint,
    paid_ts         bigint,
    dispute_by      text,
    dispute_reason  text,
    dispute_ts      bigint,
    resolution      text,
    resolved_by     text,
    created_ts      bigint NOT NULL,
    updated_ts      bigint NOT NULL,
    version         bigint NOT NULL
);
CREATE INDEX p2p_trades_seller ON p2p_trades (seller, created_ts DESC);
CREATE INDEX p2p_trades_buyer ON p2p_trades (buyer, created_ts DESC);

CREATE TABLE p2p_messages (
    trade_id  text NOT NULL,
    n         integer NOT NULL,
    sender    text NOT NULL,
    role      text NOT NULL,
    body      text NOT NULL,
    ts        bigint NOT NULL,
    PRIMARY KEY (trade_id, n)
);
