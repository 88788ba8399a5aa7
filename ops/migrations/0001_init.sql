-- hftx schema, part 1: identity, reference data, durable history.
--
-- Money is integers in minimal units (docs/internals.md): BIGINT per value,
-- NUMERIC(38,0) for sums that may exceed 2^63. Times from the engine are integer
-- milliseconds since the epoch (`*_ts`). User ids are text: PostgreSQL user ids as
-- decimal strings, plus system accounts such as `fees`.
--
-- Rows written by the drain are keyed by ids the ENGINE assigned (order id,
-- market + trade id, market + seq, account stream entry id), so re-delivered
-- stream entries insert nothing.

-- The application role. Production logins are members of it; the migration
-- owner keeps DDL rights. CREATE ROLE is cluster-wide: tolerate a concurrent run
-- in another database of the same cluster.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hftx_app') THEN
        CREATE ROLE hftx_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

CREATE TABLE users (
    id             bigserial PRIMARY KEY,
    email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash  text NOT NULL,
    role           text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    token_version  integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TABLE assets (
    symbol      text PRIMARY KEY CHECK (symbol ~ '^[A-Z0-9]{2,10}$'),
    scale       smallint NOT NULL CHECK (scale BETWEEN 0 AND 18),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Market configuration as last announced by the engine (`market` events, guarded
-- by `seq`) or written by the admin API.
CREATE TABLE markets (
    id             text PRIMARY KEY,
    base           text NOT NULL,
    quote          text NOT NULL,
    base_scale     smallint NOT NULL,
    tick           bigint NOT NULL CHECK (tick > 0),
    lot            bigint NOT NULL CHECK (lot > 0),
    min_size       bigint NOT NULL CHECK (min_size >= 0),
    max_notional   bigint NOT NULL CHECK (max_notional > 0),
    mult           bigint NOT NULL CHECK (mult > 0),
    maker_fee_bps  integer NOT NULL CHECK (maker_fee_bps BETWEEN 0 AND 1000),
    taker_fee_bps  integer NOT NULL CHECK (taker_fee_bps BETWEEN 0 AND 1000),
    status         text NOT NULL CHECK (status IN ('TRADING', 'HALT', 'CANCEL_ONLY')),
    seq            bigint NOT NULL DEFAULT 0,
    updated_ts     bigint NOT NULL DEFAULT 0
);

-- Every market stream entry, verbatim: the replay log used by `restore`.
CREATE TABLE market_events (
    market     text NOT NULL,
    first_seq  bigint NOT NULL CHECK (first_seq > 0),
    last_seq   bigint NOT NULL CHECK (last_seq >= first_seq),
    ts         bigint NOT NULL,
    events     json NOT NULL,
    PRIMARY KEY (market, first_seq)
);

-- Orders as recorded from `accepted`, `reduced` and `done` events. Events of one
-- order may be committed out of order by concurrent drains: `seq` guards the
-- state columns and `amount_seq` the amount (newer non-null values win, older
-- ones only fill gaps; NULL = not known yet). A row whose status is NEW was open
-- when last recorded: its live fill state is in Redis until its `done` arrives.
CREATE TABLE orders (
    id               text PRIMARY KEY,
    user_id          text NOT NULL,
    market           text NOT NULL,
    side             text NOT NULL CHECK (side IN ('buy', 'sell')),
    type             text CHECK (type IN ('limit', 'market')),
    tif              text CHECK (tif IN ('GTC', 'IOC', 'FOK')),
    post_only        boolean,
    stp              text,
    client_order_id  text,
    price            bigint CHECK (price >= 0),
    amount           bigint CHECK (amount >= 0),
    quote_amount     bigint CHECK (quote_amount >= 0),
    filled           bigint CHECK (filled >= 0),
    cost             bigint CHECK (cost >= 0),
    status           text CHECK (status IN ('NEW', 'PARTIALLY_FILLED', 'FILLED', 'CANCELED',
                                            'REJECTED', 'EXPIRED')),
    reason           text,
    created_ts       bigint,
    updated_ts       bigint,
    seq              bigint NOT NULL,
    amount_seq       bigint
);
CREATE INDEX orders_user_created ON orders (user_id, created_ts DESC, id DESC);

CREATE TABLE trades (
    market          text NOT NULL,
    trade_id        bigint NOT NULL CHECK (trade_id > 0),
    price           bigint NOT NULL CHECK (price > 0),
    size            bigint NOT NULL CHECK (size > 0),
    quote           bigint NOT NULL CHECK (quote >= 0),
    taker_side      text NOT NULL CHECK (taker_side IN ('buy', 'sell')),
    maker_order_id  text NOT NULL,
    taker_order_id  text NOT NULL,
    maker_user      text NOT NULL,
    taker_user      text NOT NULL,
    maker_fee       bigint NOT NULL CHECK (maker_fee >= 0),
    taker_fee       bigint NOT NULL CHECK (taker_fee >= 0),
    seq             bigint NOT NULL,
    ts              bigint NOT NULL,
    PRIMARY KEY (market, trade_id)
);
CREATE INDEX trades_maker_user ON trades (maker_user, ts DESC);
CREATE INDEX trades_taker_user ON trades (taker_user, ts DESC);

-- OHLCV per market, interval and bucket start (ms). open/close are the prices of
-- the lowest/highest trade id in the bucket, so merging batches in any order
-- gives the same candle.
CREATE TABLE candles (
    market        text NOT NULL,
    interval      text NOT NULL CHECK (interval IN ('1m', '5m', '1h', '1d')),
    start_ts      bigint NOT NULL,
    open          bigint NOT NULL,
    high          bigint NOT NULL,
    low           bigint NOT NULL,
    close         bigint NOT NULL,
    volume        numeric(38, 0) NOT NULL,
    quote_volume  numeric(38, 0) NOT NULL,
    trades        bigint NOT NULL,
    first_tid     bigint NOT NULL,
    last_tid      bigint NOT NULL,
    PRIMARY KEY (market, interval, start_ts)
);

CREATE TABLE deposits (
    id          text PRIMARY KEY,
    user_id     text NOT NULL,
    asset       text NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    address     text,
    ts          bigint NOT NULL
);
CREATE INDEX deposits_user ON deposits (user_id, ts DESC);

CREATE TABLE withdrawals (
    id          text PRIMARY KEY,
    user_id     text NOT NULL,
    asset       text NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    address     text,
    status      text NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'REJECTED')),
    created_ts  bigint NOT NULL,
    updated_ts  bigint NOT NULL
);
CREATE INDEX withdrawals_user ON withdrawals (user_id, created_ts DESC);

CREATE TABLE transfers (
    id           text PRIMARY KEY,
    from_user    text NOT NULL,
    to_user      text,
    asset        text NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    to_address   text,
    ts           bigint NOT NULL,
    credited_ts  bigint
);
CREATE INDEX transfers_from ON transfers (from_user, ts DESC);
CREATE INDEX transfers_to ON transfers (to_user, ts DESC);

-- Written by the notification jobs; `dedup_key` makes a retried job insert once.
CREATE TABLE notifications (
    id         bigserial PRIMARY KEY,
    user_id    text NOT NULL,
    kind       text NOT NULL,
    message    text NOT NULL,
    ref        text,
    ts         bigint NOT NULL,
    read_ts    bigint,
    dedup_key  text UNIQUE
);
CREATE INDEX notifications_user ON notifications (user_id, id DESC);

-- One midnight (UTC) snapshot per day; the same JSON is also written gzipped to
-- `path` (relative to HFTX_DATA_DIR). checksum = sha256 of the canonical JSON.
CREATE TABLE snapshots (
    day       date PRIMARY KEY,
    taken_at  timestamptz NOT NULL DEFAULT now(),
    path      text,
    checksum  text NOT NULL,
    payload   jsonb NOT NULL
);

-- P2P (reserved: minimal columns, extended by the P2P migration).
CREATE TABLE p2p_offers (
    id               text PRIMARY KEY,
    user_id          text NOT NULL,
    asset            text NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    remaining        bigint NOT NULL CHECK (remaining >= 0),
    fiat             text NOT NULL,
    price            bigint NOT NULL CHECK (price > 0),
    payment_methods  jsonb NOT NULL DEFAULT '[]',
    status           text NOT NULL,
    created_ts       bigint NOT NULL,
    updated_ts       bigint NOT NULL
);

CREATE TABLE p2p_trades (
    id           text PRIMARY KEY,
    offer_id     text NOT NULL REFERENCES p2p_offers (id),
    buyer        text NOT NULL,
    seller       text NOT NULL,
    asset        text NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    fiat_amount  bigint NOT NULL CHECK (fiat_amount >= 0),
    status       text NOT NULL,
    created_ts   bigint NOT NULL,
    updated_ts   bigint NOT NULL,
    expires_ts   bigint
);

CREATE TABLE p2p_messages (
    id        bigserial PRIMARY KEY,
    trade_id  text NOT NULL REFERENCES p2p_trades (id),
    user_id   text NOT NULL,
    body      text NOT NULL,
    ts        bigint NOT NULL
);
CREATE INDEX p2p_messages_trade ON p2p_messages (trade_id, id);

-- Application privileges: everything but DDL; later migrations restrict further.
GRANT USAGE ON SCHEMA public TO hftx_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO hftx_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO hftx_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO hftx_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO hftx_app;
