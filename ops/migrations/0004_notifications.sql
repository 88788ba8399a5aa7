-- hftx schema, part 4: notifications written by the drain.
--
-- `ntf_push` (lua/30_p2p.lua) appends every stored notification to the user's
-- account stream as a `notice` event; the drain writes one row per notice, keyed by
-- the notification id (an engine snowflake, so `id` is given, not drawn from the
-- sequence), with the stream entry that carried it. Ordered by (entry_ms,
-- entry_seq) the rows of a user are in the order of their Redis inbox, which
-- `restore` rebuilds from the latest of them. A dedup key is per user and only
-- reserved for 7 days (the Redis marker's life), so it is not unique here.

ALTER TABLE notifications DROP CONSTRAINT notifications_dedup_key_key;
ALTER TABLE notifications ADD COLUMN entry_ms bigint;   -- account stream entry <ms>-<seq>
ALTER TABLE notifications ADD COLUMN entry_seq bigint;  -- (NULL: not written by the drain)
CREATE INDEX notifications_user_entry ON notifications (user_id, entry_ms DESC, entry_seq DESC);
