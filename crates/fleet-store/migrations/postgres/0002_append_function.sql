-- Appends a transaction's audit events inside the database, so the
-- chain-head lock is held only while the server executes the append and
-- the COMMIT sent with it, never across a round trip to the client (which
-- bounded commits per second for the whole database). One call also
-- adjusts the aggregates `/metrics` reads (guarded by the same lock) and
-- sends the commit's notices: each statement saved is a protocol exchange
-- saved on every commit.
--
-- The hash is the one `audit::event_hash_canonical` computes: sha256 of
-- the JCS object {"at","kind","payload","prev_hash","run_id","seq"}.
-- `p_payloads` are already canonical (RFC 8785) text; strings are escaped
-- by to_json, whose escapes are JCS's (", \, \b \f \n \r \t, other control
-- characters as lower-case \u00xx). `fleet audit verify` recomputes every
-- hash in Rust, and the store tests verify chains written through here.
--
-- p_status_from/p_status_to: a run left status from (NULL: it is new) for
-- to (NULL: no run changed status). p_genflow/p_step/p_totals: the change
-- of one step's totals (attempts, finished, duration_us, input_tokens,
-- output_tokens, cost_nusd, cached), or NULLs. p_notify_run: the run id to
-- announce on `fleet_run`, or NULL; p_notify_work: announce `fleet_work`.
CREATE FUNCTION fleet_append(
    p_run_id TEXT, p_at TEXT, p_kinds TEXT[], p_payloads TEXT[],
    p_status_from TEXT, p_status_to TEXT,
    p_genflow TEXT, p_step TEXT, p_totals BIGINT[],
    p_notify_run TEXT, p_notify_work BOOLEAN)
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    head_seq  BIGINT;
    head_hash TEXT;
    next_hash TEXT;
    run_json  TEXT := COALESCE(to_json(p_run_id)::text, 'null');
    at_json   TEXT := to_json(p_at)::text;
BEGIN
    -- Taken even with no events: it guards the aggregates below.
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

    IF p_status_to IS NOT NULL AND p_status_from IS DISTINCT FROM p_status_to THEN
        IF p_status_from IS NOT NULL THEN
            UPDATE run_counts SET runs = runs - 1 WHERE status = p_status_from;
        END IF;
        INSERT INTO run_counts (status, runs) VALUES (p_status_to, 1)
        ON CONFLICT (status) DO UPDATE SET runs = run_counts.runs + 1;
    END IF;
    IF p_step IS NOT NULL THEN
        INSERT INTO step_totals (genflow, step, attempts, finished, duration_us, input_tokens, output_tokens, cost_nusd, cached)
        VALUES (p_genflow, p_step, p_totals[1], p_totals[2], p_totals[3], p_totals[4], p_totals[5], p_totals[6], p_totals[7])
        ON CONFLICT (genflow, step) DO UPDATE SET
            attempts = step_totals.attempts + excluded.attempts,
            finished = step_totals.finished + excluded.finished,
            duration_us = step_totals.duration_us + excluded.duration_us,
            input_tokens = step_totals.input_tokens + excluded.input_tokens,
            output_tokens = step_totals.output_tokens + excluded.output_tokens,
            cost_nusd = step_totals.cost_nusd + excluded.cost_nusd,
            cached = step_totals.cached + excluded.cached;
    END IF;

    IF p_notify_run IS NOT NULL THEN
        PERFORM pg_notify('fleet_run', p_notify_run);
    END IF;
    IF p_notify_work THEN
        PERFORM pg_notify('fleet_work', '');
    END IF;
    RETURN head_seq;
END
$$;
