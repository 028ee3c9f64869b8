-- The check that lets a commit go in one round trip (`postgres/runs.rs`,
-- `commit_fast`). A store that knows the run as of the transition's
-- expected version (it read or committed that version itself) computes
-- every write and audit event from what it knows and guesses what the
-- transition replaces (the newest revision of each artifact path it
-- writes, no step-run record for its step and attempt, no live delivery
-- row for its deliveries); this function, sent first in the same pipeline,
-- locks the run row and holds the guesses true, or raises, so nothing sent
-- after it in that transaction happens:
--   FLNRN: no such run;
--   FLCAS: the run is at another version (the compare-and-swap failed);
--   FLPRI: a guess about the earlier rows is wrong (the store commits
--          again the two-round-trip way, reading them first).
-- Under the row lock no other transaction writes this run's artifacts,
-- step runs or deliveries, so what is checked here stays true until COMMIT.
CREATE FUNCTION fleet_guard(
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
        RAISE EXCEPTION 'run % does not exist', p_run_id USING ERRCODE = 'FLNRN';
    END IF;
    IF at_version <> p_version THEN
        RAISE EXCEPTION 'run % is at version %, not %', p_run_id, at_version, p_version
            USING ERRCODE = 'FLCAS';
    END IF;
    IF COALESCE(array_length(p_paths, 1), 0) > 0 AND EXISTS (
        SELECT 1 FROM unnest(p_paths, p_revisions) AS g(path, revision)
        WHERE g.revision IS DISTINCT FROM COALESCE((
            SELECT MAX(r.revision) FROM artifact_revisions r
            WHERE r.run_id = p_run_id AND r.path = g.path), 0))
    THEN
        RAISE EXCEPTION 'artifact revisions of run % moved', p_run_id USING ERRCODE = 'FLPRI';
    END IF;
    IF p_step IS NOT NULL AND EXISTS (
        SELECT 1 FROM step_runs
        WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt)
    THEN
        RAISE EXCEPTION 'step run of run % exists', p_run_id USING ERRCODE = 'FLPRI';
    END IF;
    IF COALESCE(array_length(p_d_steps, 1), 0) > 0 AND EXISTS (
        SELECT 1 FROM unnest(p_d_steps, p_d_rounds, p_d_purposes, p_d_channels, p_d_recipients)
            AS d(step, round, purpose, channel, recipient)
        JOIN outbox o ON o.run_id = p_run_id AND o.step = d.step AND o.round = d.round
            AND o.purpose = d.purpose AND o.channel = d.channel AND o.recipient = d.recipient
        WHERE o.status <> 'failed')
    THEN
        RAISE EXCEPTION 'deliveries of run % exist', p_run_id USING ERRCODE = 'FLPRI';
    END IF;
    RETURN at_version;
END
$$;
