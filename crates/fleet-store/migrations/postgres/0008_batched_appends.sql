-- Audit appends as a few set statements instead of one statement per
-- event. Every SQL statement a function runs pays the executor's start and
-- end, which was most of the database's CPU per commit: `fleet_append`
-- ran an INSERT per event and locked and updated the chain head once per
-- transition, also within a group of thirty. Now:
--   `fleet_chain` locks the head once, hashes the events in turn (as
--     `fleet_append` did, byte for byte: `fleet audit verify` recomputes
--     them in Rust), inserts them all with one INSERT and moves the head;
--   `fleet_tally` updates `run_counts` and `step_totals` for any number of
--     transitions with one statement each (net changes per status, sums
--     per step);
--   `fleet_append` (one transition) and `fleet_append_group` (a group
--     commit's) call them, so a group locks and moves the head once, and
--     tells its written transitions with one query.

-- Appends events (one element per event in each array) to the chain and
-- returns the head's new sequence number. Locks the head even with no
-- events: the lock also guards the aggregates `fleet_tally` updates.
CREATE FUNCTION fleet_chain(
    p_run_ids TEXT[], p_ats TEXT[], p_kinds TEXT[], p_payloads TEXT[])
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    n INT := COALESCE(array_length(p_kinds, 1), 0);
    head_seq  BIGINT;
    head_hash TEXT;
    seqs   BIGINT[] := ARRAY[]::BIGINT[];
    prevs  TEXT[] := ARRAY[]::TEXT[];
    hashes TEXT[] := ARRAY[]::TEXT[];
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM chain_head WHERE id = 1 FOR UPDATE;
    IF n = 0 THEN
        RETURN head_seq;
    END IF;
    FOR i IN 1 .. n LOOP
        head_seq := head_seq + 1;
        seqs[i] := head_seq;
        prevs[i] := head_hash;
        head_hash := encode(sha256(convert_to(
            '{"at":' || to_json(p_ats[i])::text
            || ',"kind":' || to_json(p_kinds[i])::text
            || ',"payload":' || p_payloads[i]
            || ',"prev_hash":' || to_json(head_hash)::text
            || ',"run_id":' || COALESCE(to_json(p_run_ids[i])::text, 'null')
            || ',"seq":' || head_seq::text
            || '}', 'UTF8')), 'hex');
        hashes[i] := head_hash;
    END LOOP;
    INSERT INTO events (seq, run_id, at, kind, payload_json, prev_hash, hash)
    SELECT * FROM unnest(seqs, p_run_ids, p_ats, p_kinds, p_payloads, prevs, hashes);
    UPDATE chain_head SET seq = head_seq, hash = head_hash WHERE id = 1;
    RETURN head_seq;
END
$$;

-- The aggregates of transitions (one element per transition; p_totals
-- seven per transition, read where p_steps names a step). Call with the
-- chain head locked.
CREATE FUNCTION fleet_tally(
    p_status_froms TEXT[], p_status_tos TEXT[],
    p_genflows TEXT[], p_steps TEXT[], p_totals BIGINT[])
RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM unnest(p_status_froms, p_status_tos) AS s(f, t)
               WHERE s.t IS NOT NULL AND s.f IS DISTINCT FROM s.t) THEN
        -- A status a run left always has its row (the run was counted in it).
        INSERT INTO run_counts (status, runs)
        SELECT status, SUM(delta) FROM (
            SELECT s.t AS status, 1 AS delta
            FROM unnest(p_status_froms, p_status_tos) AS s(f, t)
            WHERE s.t IS NOT NULL AND s.f IS DISTINCT FROM s.t
            UNION ALL
            SELECT s.f, -1
            FROM unnest(p_status_froms, p_status_tos) AS s(f, t)
            WHERE s.t IS NOT NULL AND s.f IS NOT NULL AND s.f IS DISTINCT FROM s.t
        ) AS d
        GROUP BY status
        HAVING SUM(delta) <> 0
        ON CONFLICT (status) DO UPDATE SET runs = run_counts.runs + excluded.runs;
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_steps) AS s(step) WHERE s.step IS NOT NULL) THEN
        INSERT INTO step_totals (genflow, step, attempts, finished, duration_us, input_tokens,
            output_tokens, cost_nusd, cached)
        SELECT p_genflows[i], p_steps[i],
            SUM(p_totals[(i - 1) * 7 + 1]), SUM(p_totals[(i - 1) * 7 + 2]),
            SUM(p_totals[(i - 1) * 7 + 3]), SUM(p_totals[(i - 1) * 7 + 4]),
            SUM(p_totals[(i - 1) * 7 + 5]), SUM(p_totals[(i - 1) * 7 + 6]),
            SUM(p_totals[(i - 1) * 7 + 7])
        FROM generate_subscripts(p_steps, 1) AS i
        WHERE p_steps[i] IS NOT NULL
        GROUP BY p_genflows[i], p_steps[i]
        ON CONFLICT (genflow, step) DO UPDATE SET
            attempts = step_totals.attempts + excluded.attempts,
            finished = step_totals.finished + excluded.finished,
            duration_us = step_totals.duration_us + excluded.duration_us,
            input_tokens = step_totals.input_tokens + excluded.input_tokens,
            output_tokens = step_totals.output_tokens + excluded.output_tokens,
            cost_nusd = step_totals.cost_nusd + excluded.cost_nusd,
            cached = step_totals.cached + excluded.cached;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION fleet_append(
    p_run_id TEXT, p_at TEXT, p_kinds TEXT[], p_payloads TEXT[],
    p_status_from TEXT, p_status_to TEXT,
    p_genflow TEXT, p_step TEXT, p_totals BIGINT[],
    p_notify_run TEXT, p_notify_work BOOLEAN)
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    n INT := COALESCE(array_length(p_kinds, 1), 0);
    head_seq BIGINT;
BEGIN
    head_seq := fleet_chain(array_fill(p_run_id, ARRAY[n]), array_fill(p_at, ARRAY[n]),
        p_kinds, p_payloads);
    PERFORM fleet_tally(ARRAY[p_status_from], ARRAY[p_status_to], ARRAY[p_genflow],
        ARRAY[p_step], p_totals);
    IF p_notify_run IS NOT NULL THEN
        PERFORM pg_notify('fleet_run', p_notify_run);
    END IF;
    IF p_notify_work THEN
        PERFORM pg_notify('fleet_work', '');
    END IF;
    RETURN head_seq;
END
$$;

-- As in 0006: one element per transition of arrays p_run_ids …
-- p_notify_works; p_kinds and p_payloads hold every transition's events
-- in turn, p_counts[i] of them for the i-th; p_totals seven per
-- transition. A transition is appended only if its write went in: its run
-- row was written by this transaction at the version after the one
-- expected.
CREATE OR REPLACE FUNCTION fleet_append_group(
    p_run_ids TEXT[], p_versions BIGINT[], p_ats TEXT[], p_counts INT[],
    p_kinds TEXT[], p_payloads TEXT[],
    p_status_froms TEXT[], p_status_tos TEXT[],
    p_genflows TEXT[], p_steps TEXT[], p_totals BIGINT[],
    p_notify_runs TEXT[], p_notify_works BOOLEAN[])
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    first INT := 1;
    appended BIGINT := 0;
    written BOOLEAN[];
    e_runs TEXT[] := ARRAY[]::TEXT[];
    e_ats TEXT[] := ARRAY[]::TEXT[];
    e_kinds TEXT[] := ARRAY[]::TEXT[];
    e_payloads TEXT[] := ARRAY[]::TEXT[];
    w_froms TEXT[] := ARRAY[]::TEXT[];
    w_tos TEXT[] := ARRAY[]::TEXT[];
    w_genflows TEXT[] := ARRAY[]::TEXT[];
    w_steps TEXT[] := ARRAY[]::TEXT[];
    w_totals BIGINT[] := ARRAY[]::BIGINT[];
BEGIN
    SELECT array_agg(r.id IS NOT NULL ORDER BY t.ord) INTO written
    FROM unnest(p_run_ids, p_versions) WITH ORDINALITY AS t(id, version, ord)
    LEFT JOIN runs r ON r.id = t.id AND r.version = t.version + 1
        AND r.xmin = pg_current_xact_id()::xid;
    FOR i IN 1 .. COALESCE(array_length(p_run_ids, 1), 0) LOOP
        IF written[i] THEN
            e_runs := e_runs || array_fill(p_run_ids[i], ARRAY[p_counts[i]]);
            e_ats := e_ats || array_fill(p_ats[i], ARRAY[p_counts[i]]);
            e_kinds := e_kinds || p_kinds[first : first + p_counts[i] - 1];
            e_payloads := e_payloads || p_payloads[first : first + p_counts[i] - 1];
            w_froms := array_append(w_froms, p_status_froms[i]);
            w_tos := array_append(w_tos, p_status_tos[i]);
            w_genflows := array_append(w_genflows, p_genflows[i]);
            w_steps := array_append(w_steps, p_steps[i]);
            w_totals := w_totals || p_totals[(i - 1) * 7 + 1 : i * 7];
            appended := appended + 1;
        END IF;
        first := first + p_counts[i];
    END LOOP;
    IF appended = 0 THEN
        RETURN 0;
    END IF;
    PERFORM fleet_chain(e_runs, e_ats, e_kinds, e_payloads);
    PERFORM fleet_tally(w_froms, w_tos, w_genflows, w_steps, w_totals);
    FOR i IN 1 .. COALESCE(array_length(p_run_ids, 1), 0) LOOP
        IF written[i] THEN
            IF p_notify_runs[i] IS NOT NULL THEN
                PERFORM pg_notify('fleet_run', p_notify_runs[i]);
            END IF;
            IF p_notify_works[i] THEN
                PERFORM pg_notify('fleet_work', '');
            END IF;
        END IF;
    END LOOP;
    RETURN appended;
END
$$;

-- A worker's claim as one statement in its own implicit transaction:
-- BEGIN, SET LOCAL and COMMIT were three more statements for the server
-- per claim. As `postgres/work.rs` described it: the queue rows due are
-- locked first (SKIP LOCKED: concurrent claimers get different rows), a
-- row whose step another owner holds a live lease on is re-timed to that
-- lease's end and skipped, the others are leased to p_owner until p_until.
-- Not durable: a claim lost in a crash only makes its step claimable again.
CREATE FUNCTION fleet_claim(
    p_now TEXT, p_run_id TEXT, p_limit BIGINT, p_owner TEXT, p_until TEXT)
RETURNS TABLE (claimed_run TEXT, claimed_step TEXT)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    WITH due AS (
        SELECT q.run_id, q.step, l.owner AS holder, l.expires_at AS held_until
        FROM step_queue q
        LEFT JOIN leases l ON l.run_id = q.run_id AND l.step = q.step
        WHERE q.claimable_at <= p_now AND (p_run_id IS NULL OR q.run_id = p_run_id)
        ORDER BY q.claimable_at
        LIMIT p_limit
        FOR UPDATE OF q SKIP LOCKED
    ), held AS (
        SELECT due.run_id, due.step, due.held_until FROM due
        WHERE due.holder IS NOT NULL AND due.holder <> p_owner AND due.held_until > p_now
    ), taken AS (
        INSERT INTO leases (run_id, step, owner, expires_at)
        SELECT due.run_id, due.step, p_owner, p_until FROM due
        WHERE NOT EXISTS (SELECT 1 FROM held WHERE held.run_id = due.run_id AND held.step = due.step)
        ON CONFLICT (run_id, step) DO UPDATE SET owner = excluded.owner,
            expires_at = excluded.expires_at
        WHERE leases.owner = excluded.owner OR leases.expires_at <= p_now
        RETURNING leases.run_id, leases.step
    ), retimed AS (
        UPDATE step_queue q SET claimable_at = COALESCE(held.held_until, p_until)
        FROM due LEFT JOIN held ON held.run_id = due.run_id AND held.step = due.step
        WHERE q.run_id = due.run_id AND q.step = due.step
    )
    SELECT taken.run_id, taken.step FROM taken;
END
$$;

-- As in 0006, with each check behind a test of its own arguments that
-- needs no query: a check with nothing to check no longer runs one.
CREATE OR REPLACE FUNCTION fleet_check(
    p_run_id TEXT, p_version BIGINT,
    p_paths TEXT[], p_revisions BIGINT[],
    p_step TEXT, p_attempt BIGINT,
    p_d_steps TEXT[], p_d_rounds BIGINT[], p_d_purposes TEXT[],
    p_d_channels TEXT[], p_d_recipients TEXT[])
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    at_version BIGINT;
BEGIN
    SELECT version INTO at_version FROM runs WHERE id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    IF at_version <> p_version THEN
        RETURN -2;
    END IF;
    IF COALESCE(array_length(p_paths, 1), 0) > 0 THEN
        IF EXISTS (
            SELECT 1 FROM unnest(p_paths, p_revisions) AS g(path, revision)
            WHERE g.revision IS DISTINCT FROM COALESCE((
                SELECT MAX(r.revision) FROM artifact_revisions r
                WHERE r.run_id = p_run_id AND r.path = g.path), 0))
        THEN
            RETURN -3;
        END IF;
    END IF;
    IF p_step IS NOT NULL THEN
        IF EXISTS (
            SELECT 1 FROM step_runs
            WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt)
        THEN
            RETURN -3;
        END IF;
    END IF;
    IF COALESCE(array_length(p_d_steps, 1), 0) > 0 THEN
        IF EXISTS (
            SELECT 1 FROM unnest(p_d_steps, p_d_rounds, p_d_purposes, p_d_channels, p_d_recipients)
                AS d(step, round, purpose, channel, recipient)
            JOIN outbox o ON o.run_id = p_run_id AND o.step = d.step AND o.round = d.round
                AND o.purpose = d.purpose AND o.channel = d.channel AND o.recipient = d.recipient
            WHERE o.status <> 'failed')
        THEN
            RETURN -3;
        END IF;
    END IF;
    RETURN 0;
END
$$;
