-- Appends a transaction's audit events inside the database, so the
-- chain-head lock is held only while the server executes the append and
-- the COMMIT sent with it, never across a round trip to the client (which
-- bounded commits per second for the whole database).
--
-- The hash is the one `audit::event_hash_canonical` computes: sha256 of
-- the JCS object {"at","kind","payload","prev_hash","run_id","seq"}.
-- `p_payloads` are already canonical (RFC 8785) text; strings are escaped
-- by to_json, whose escapes are JCS's (", \, \b \f \n \r \t, other control
-- characters as lower-case \u00xx). `fleet audit verify` recomputes every
-- hash in Rust, and the store tests verify chains written through here.
--
-- Takes the chain-head lock even with no events: the run counts and step
-- totals written after it in the same transaction are guarded by it.
CREATE FUNCTION fleet_append(p_run_id TEXT, p_at TEXT, p_kinds TEXT[], p_payloads TEXT[])
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    head_seq  BIGINT;
    head_hash TEXT;
    next_hash TEXT;
    run_json  TEXT := COALESCE(to_json(p_run_id)::text, 'null');
    at_json   TEXT := to_json(p_at)::text;
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM chain_head WHERE id = 1 FOR UPDATE;
    FOR i IN 1 .. COALESCE(array_length(p_kinds, 1), 0) LOOP
        head_seq := head_seq + 1;
        next_hash := encode(sha256(convert_to(
            '{"at":' || at_json
            || ',"kind":' || to_json(p_kinds[i])::text
            || ',"payload":' || p_payloads[i]
            || ',"prev_hash":' || to_json(head_hash)::text
            || ',"run_id":' || run_json
            || ',"seq":' || head_seq::text
            || '}', 'UTF8')), 'hex');
        INSERT INTO events (seq, run_id, at, kind, payload_json, prev_hash, hash)
        VALUES (head_seq, p_run_id, p_at, p_kinds[i], p_payloads[i], head_hash, next_hash);
        head_hash := next_hash;
    END LOOP;
    UPDATE chain_head SET seq = head_seq, hash = head_hash WHERE id = 1;
    RETURN head_seq;
END
$$;
