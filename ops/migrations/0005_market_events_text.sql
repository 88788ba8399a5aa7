-- hftx schema, part 5: the replay log stores each market stream entry's events as
-- text, not json.
--
-- The drain has already parsed every entry (orjson) before it writes it, so the
-- json type's own validation only repeated that work: about a tenth of PostgreSQL's
-- CPU per trade under the drain benchmark (perf: json_lex, parse_object_field).
-- `restore` parses the text itself. The text is byte-for-byte what the engine wrote.

ALTER TABLE market_events ALTER COLUMN events TYPE text;
