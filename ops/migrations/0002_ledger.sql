-- hftx schema, part 2: the ledger (audit log of every balance change).
--
-- One row per asset leg of every event of every account stream entry
-- ({u:U}:ev, docs/internals.md): a fill has two legs (the asset paid out of the
-- hold, the asset received), every other event one. Columns available / held /
-- escrow are the signed changes of that asset's balance; summing them per
-- (user_id, asset) up to a stream entry gives the balance at that entry
-- (`python -m snapshots reconcile` checks this against Redis).
--
-- Append-only: the application role may only read and insert, and a trigger
-- refuses UPDATE, DELETE and TRUNCATE for everybody, the owner included.

CREATE TABLE ledger_entries (
    user_id    text NOT NULL,
    entry_ms   bigint NOT NULL,         -- account stream entry id <ms>-<seq>
    entry_seq  bigint NOT NULL,
    idx        smallint NOT NULL,       -- event index within the entry
    leg        smallint NOT NULL,       -- asset leg within the event
    kind       text NOT NULL CHECK (kind IN ('hold', 'release', 'fill', 'fee', 'deposit',
                                             'withdraw_req', 'withdraw_done',
                                             'withdraw_rejected', 'transfer_out',
                                             'transfer_in')),
    asset      text NOT NULL,
    available  bigint NOT NULL,
    held       bigint NOT NULL,
    escrow     bigint NOT NULL,
    ref        text,                    -- order / deposit / withdrawal / transfer id
    market     text,
    trade_id   bigint,
    ts         bigint NOT NULL,
    event      json,                    -- the event as emitted (on leg 0)
    PRIMARY KEY (user_id, entry_ms, entry_seq, idx, leg)
);

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER ledger_entries_no_update_delete
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
CREATE TRIGGER ledger_entries_no_truncate
    BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();

REVOKE ALL ON ledger_entries FROM hftx_app;
GRANT SELECT, INSERT ON ledger_entries TO hftx_app;
