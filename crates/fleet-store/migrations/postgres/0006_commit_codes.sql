-- `fleet_commit` (migration 0004) changes in three ways.
--
-- It also takes the corpus files a step kept as evidence
-- (`Transition::blobs`: p_b_shas, p_b_bytes, p_b_sizes, one element per
-- file, stored content-addressed like artifacts). Without them every model
-- step's result (the corpus is kept by default) took the two-round-trip
-- path: a dozen statements instead of one call.
--
-- It is split in two: `fleet_write` (the checks and the writes) and the
-- append, so a group commit (`postgres/group.rs`: several transitions in
-- one transaction) writes all its transitions first, then appends them
-- with one `fleet_append_group` call. A refused transition returns a
-- negative code instead of raising, so one refusal does not abort the
-- other transitions of a group:
--   -1: no such run;
--   -2: the run is at another version (the compare-and-swap failed);
--   -3: a guess about the earlier rows is wrong (the store commits again
--       the two-round-trip way, reading them first).
-- `fleet_check` makes the checks `fleet_guard` (migration 0003) made, and
-- writes nothing, so a refused call leaves nothing behind.
DROP FUNCTION fleet_commit;
DROP FUNCTION fleet_guard;

CREATE FUNCTION fleet_check(
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
    IF COALESCE(array_length(p_paths, 1), 0) > 0 AND EXISTS (
        SELECT 1 FROM unnest(p_paths, p_revisions) AS g(path, revision)
        WHERE g.revision IS DISTINCT FROM COALESCE((
            SELECT MAX(r.revision) FROM artifact_revisions r
            WHERE r.run_id = p_run_id AND r.path = g.path), 0))
    THEN
        RETURN -3;
    END IF;
    IF p_step IS NOT NULL AND EXISTS (
        SELECT 1 FROM step_runs
        WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt)
    THEN
        RETURN -3;
    END IF;
    IF COALESCE(array_length(p_d_steps, 1), 0) > 0 AND EXISTS (
        SELECT 1 FROM unnest(p_d_steps, p_d_rounds, p_d_purposes, p_d_channels, p_d_recipients)
            AS d(step, round, purpose, channel, recipient)
        JOIN outbox o ON o.run_id = p_run_id AND o.step = d.step AND o.round = d.round
            AND o.purpose = d.purpose AND o.channel = d.channel AND o.recipient = d.recipient
        WHERE o.status <> 'failed')
    THEN
        RETURN -3;
    END IF;
    RETURN 0;
END
$$;

CREATE FUNCTION fleet_write(
    p_run_id TEXT, p_version BIGINT, p_durable BOOLEAN,
    p_g_paths TEXT[], p_g_revisions BIGINT[],
    p_d_steps TEXT[], p_d_rounds BIGINT[], p_d_purposes TEXT[],
    p_d_channels TEXT[], p_d_recipients TEXT[],
    p_state_json TEXT, p_status TEXT, p_now TEXT,
    p_a_steps TEXT[], p_a_step_indexes BIGINT[], p_a_paths TEXT[], p_a_revisions BIGINT[],
    p_a_shas TEXT[], p_a_bytes BYTEA[], p_a_sizes BIGINT[],
    p_b_shas TEXT[], p_b_bytes BYTEA[], p_b_sizes BIGINT[],
    p_sr_step TEXT, p_sr_attempt BIGINT, p_sr_model TEXT, p_sr_prompt TEXT,
    p_sr_settings TEXT, p_sr_manifest TEXT, p_sr_input BIGINT, p_sr_output BIGINT,
    p_sr_cost DOUBLE PRECISION, p_sr_cached BOOLEAN, p_sr_started TEXT,
    p_sr_finished TEXT, p_sr_error TEXT,
    p_dc_step TEXT, p_dc_round BIGINT, p_dc_approver TEXT, p_dc_key TEXT,
    p_dc_verdict TEXT, p_dc_reason TEXT, p_dc_channel TEXT, p_dc_genflow TEXT,
    p_dc_hash TEXT, p_dc_shown TEXT, p_dc_final BOOLEAN,
    p_o_labels TEXT[], p_o_payloads TEXT[],
    p_q_delete TEXT[], p_q_insert TEXT[], p_q_take_steps TEXT[], p_q_take_until TEXT[],
    p_q_release TEXT[],
    p_l_take_steps TEXT[], p_l_take_owners TEXT[], p_l_take_expires TEXT[],
    p_l_release_steps TEXT[], p_l_release_owners TEXT[])
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    i INT;
    refused BIGINT;
BEGIN
    IF NOT p_durable THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    refused := fleet_check(p_run_id, p_version, p_g_paths, p_g_revisions,
        p_sr_step, p_sr_attempt,
        p_d_steps, p_d_rounds, p_d_purposes, p_d_channels, p_d_recipients);
    IF refused <> 0 THEN
        RETURN refused;
    END IF;

    UPDATE runs SET state_json = p_state_json, status = p_status, version = p_version + 1,
        updated_at = p_now
    WHERE id = p_run_id;

    FOR i IN 1 .. COALESCE(array_length(p_a_paths, 1), 0) LOOP
        INSERT INTO artifacts (sha256, bytes, size) VALUES (p_a_shas[i], p_a_bytes[i], p_a_sizes[i])
        ON CONFLICT (sha256) DO NOTHING;
        INSERT INTO artifact_revisions (run_id, step, step_index, path, revision, sha256, created_at)
        VALUES (p_run_id, p_a_steps[i], p_a_step_indexes[i], p_a_paths[i], p_a_revisions[i],
                p_a_shas[i], p_now);
    END LOOP;

    IF COALESCE(array_length(p_b_shas, 1), 0) > 0 THEN
        INSERT INTO artifacts (sha256, bytes, size)
        SELECT * FROM unnest(p_b_shas, p_b_bytes, p_b_sizes)
        ON CONFLICT (sha256) DO NOTHING;
    END IF;

    IF p_sr_step IS NOT NULL THEN
        -- fleet_check saw no record for this attempt.
        INSERT INTO step_runs (run_id, step, attempt, model, prompt, settings_json, manifest_json,
            input_tokens, output_tokens, cost_usd, cached, started_at, finished_at, error)
        VALUES (p_run_id, p_sr_step, p_sr_attempt, p_sr_model, p_sr_prompt, p_sr_settings,
            p_sr_manifest, p_sr_input, p_sr_output, p_sr_cost, p_sr_cached, p_sr_started,
            p_sr_finished, p_sr_error);
    END IF;

    IF p_dc_step IS NOT NULL THEN
        INSERT INTO decisions (run_id, step, gate_round, approver, approver_key, verdict, reason,
            channel, decided_at, genflow_name, definition_hash, shown_json, is_final)
        VALUES (p_run_id, p_dc_step, p_dc_round, p_dc_approver, p_dc_key, p_dc_verdict,
            p_dc_reason, p_dc_channel, p_now, p_dc_genflow, p_dc_hash, p_dc_shown, p_dc_final);
    END IF;

    FOR i IN 1 .. COALESCE(array_length(p_d_steps, 1), 0) LOOP
        INSERT INTO outbox (run_id, step, round, purpose, channel, recipient, label, payload_json,
            status, attempts, next_attempt_at, created_at)
        VALUES (p_run_id, p_d_steps[i], p_d_rounds[i], p_d_purposes[i], p_d_channels[i],
            p_d_recipients[i], p_o_labels[i], p_o_payloads[i], 'pending', 0, p_now, p_now)
        ON CONFLICT (run_id, step, round, purpose, channel, recipient) DO UPDATE SET
            status = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
            lease_owner = NULL, lease_expires_at = NULL, finished_at = NULL
        WHERE outbox.status = 'failed';
    END LOOP;

    -- The queue rows before the leases, as every transaction here.
    IF COALESCE(array_length(p_q_delete, 1), 0) > 0 THEN
        DELETE FROM step_queue WHERE run_id = p_run_id AND step = ANY (p_q_delete);
    END IF;
    IF COALESCE(array_length(p_q_insert, 1), 0) > 0 THEN
        INSERT INTO step_queue (run_id, step, claimable_at)
        SELECT p_run_id, s, p_now FROM unnest(p_q_insert) AS s
        ON CONFLICT (run_id, step) DO NOTHING;
    END IF;
    FOR i IN 1 .. COALESCE(array_length(p_q_take_steps, 1), 0) LOOP
        UPDATE step_queue SET claimable_at = p_q_take_until[i]
        WHERE run_id = p_run_id AND step = p_q_take_steps[i] AND claimable_at > p_q_take_until[i];
    END LOOP;
    IF COALESCE(array_length(p_q_release, 1), 0) > 0 THEN
        UPDATE step_queue SET claimable_at = p_now
        WHERE run_id = p_run_id AND step = ANY (p_q_release);
    END IF;
    FOR i IN 1 .. COALESCE(array_length(p_l_take_steps, 1), 0) LOOP
        INSERT INTO leases (run_id, step, owner, expires_at)
        VALUES (p_run_id, p_l_take_steps[i], p_l_take_owners[i], p_l_take_expires[i])
        ON CONFLICT (run_id, step) DO UPDATE SET owner = excluded.owner,
            expires_at = excluded.expires_at;
    END LOOP;
    FOR i IN 1 .. COALESCE(array_length(p_l_release_steps, 1), 0) LOOP
        DELETE FROM leases
        WHERE run_id = p_run_id AND step = p_l_release_steps[i] AND owner = p_l_release_owners[i];
    END LOOP;

    RETURN 0;
END
$$;

CREATE FUNCTION fleet_commit(

    p_run_id TEXT, p_version BIGINT, p_durable BOOLEAN,
    p_g_paths TEXT[], p_g_revisions BIGINT[],
    p_d_steps TEXT[], p_d_rounds BIGINT[], p_d_purposes TEXT[],
    p_d_channels TEXT[], p_d_recipients TEXT[],
    p_state_json TEXT, p_status TEXT, p_now TEXT,
    p_a_steps TEXT[], p_a_step_indexes BIGINT[], p_a_paths TEXT[], p_a_revisions BIGINT[],
    p_a_shas TEXT[], p_a_bytes BYTEA[], p_a_sizes BIGINT[],
    p_b_shas TEXT[], p_b_bytes BYTEA[], p_b_sizes BIGINT[],
    p_sr_step TEXT, p_sr_attempt BIGINT, p_sr_model TEXT, p_sr_prompt TEXT,
    p_sr_settings TEXT, p_sr_manifest TEXT, p_sr_input BIGINT, p_sr_output BIGINT,
    p_sr_cost DOUBLE PRECISION, p_sr_cached BOOLEAN, p_sr_started TEXT,
    p_sr_finished TEXT, p_sr_error TEXT,
    p_dc_step TEXT, p_dc_round BIGINT, p_dc_approver TEXT, p_dc_key TEXT,
    p_dc_verdict TEXT, p_dc_reason TEXT, p_dc_channel TEXT, p_dc_genflow TEXT,
    p_dc_hash TEXT, p_dc_shown TEXT, p_dc_final BOOLEAN,
    p_o_labels TEXT[], p_o_payloads TEXT[],
    p_q_delete TEXT[], p_q_insert TEXT[], p_q_take_steps TEXT[], p_q_take_until TEXT[],
    p_q_release TEXT[],
    p_l_take_steps TEXT[], p_l_take_owners TEXT[], p_l_take_expires TEXT[],
    p_l_release_steps TEXT[], p_l_release_owners TEXT[],
    p_at TEXT, p_kinds TEXT[], p_payloads TEXT[],
    p_status_from TEXT, p_status_to TEXT,
    p_genflow TEXT, p_step TEXT, p_totals BIGINT[],
    p_notify_run TEXT, p_notify_work BOOLEAN)
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    refused BIGINT;
BEGIN
    refused := fleet_write(p_run_id, p_version, p_durable, p_g_paths, p_g_revisions, p_d_steps, p_d_rounds, p_d_purposes, p_d_channels, p_d_recipients, p_state_json, p_status, p_now, p_a_steps, p_a_step_indexes, p_a_paths, p_a_revisions, p_a_shas, p_a_bytes, p_a_sizes, p_b_shas, p_b_bytes, p_b_sizes, p_sr_step, p_sr_attempt, p_sr_model, p_sr_prompt, p_sr_settings, p_sr_manifest, p_sr_input, p_sr_output, p_sr_cost, p_sr_cached, p_sr_started, p_sr_finished, p_sr_error, p_dc_step, p_dc_round, p_dc_approver, p_dc_key, p_dc_verdict, p_dc_reason, p_dc_channel, p_dc_genflow, p_dc_hash, p_dc_shown, p_dc_final, p_o_labels, p_o_payloads, p_q_delete, p_q_insert, p_q_take_steps, p_q_take_until, p_q_release, p_l_take_steps, p_l_take_owners, p_l_take_expires, p_l_release_steps, p_l_release_owners);
    IF refused <> 0 THEN
        RETURN refused;
    END IF;
    RETURN fleet_append(p_run_id, p_at, p_kinds, p_payloads, p_status_from, p_status_to,
        p_genflow, p_step, p_totals, p_notify_run, p_notify_work);
END
$$;

-- The audit appends of a group commit, after all its writes (so the chain
-- head is locked only for the appends and the COMMIT, not while the
-- group's other transitions are written). One element per transition of
-- arrays p_run_ids … p_notify_works; p_kinds and p_payloads hold every
-- transition's events in turn, p_counts[i] of them for the i-th; p_totals
-- seven per transition. A transition is appended only if its write went
-- in: its run row was written by this transaction at the version after
-- the one expected (a group holds each run's row lock from its start and
-- has at most one transition per run, so nothing else can have).
CREATE FUNCTION fleet_append_group(
    p_run_ids TEXT[], p_versions BIGINT[], p_ats TEXT[], p_counts INT[],
    p_kinds TEXT[], p_payloads TEXT[],
    p_status_froms TEXT[], p_status_tos TEXT[],
    p_genflows TEXT[], p_steps TEXT[], p_totals BIGINT[],
    p_notify_runs TEXT[], p_notify_works BOOLEAN[])
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    i INT;
    first INT := 1;
    appended BIGINT := 0;
BEGIN
    FOR i IN 1 .. COALESCE(array_length(p_run_ids, 1), 0) LOOP
        IF EXISTS (SELECT 1 FROM runs WHERE id = p_run_ids[i] AND version = p_versions[i] + 1
                   AND xmin = pg_current_xact_id()::xid) THEN
            PERFORM fleet_append(p_run_ids[i], p_ats[i],
                p_kinds[first : first + p_counts[i] - 1],
                p_payloads[first : first + p_counts[i] - 1],
                p_status_froms[i], p_status_tos[i], p_genflows[i], p_steps[i],
                CASE WHEN p_steps[i] IS NULL THEN NULL ELSE p_totals[(i - 1) * 7 + 1 : i * 7] END,
                p_notify_runs[i], p_notify_works[i]);
            appended := appended + 1;
        END IF;
        first := first + p_counts[i];
    END LOOP;
    RETURN appended;
END
$$;

-- A new run and its first transition, as one call of a group commit
-- (`runs::create` when the run starts with a transition, as every run the
-- engine starts does): the definition, the run row at version 1 with its
-- initial queue rows, then `fleet_write` of the first transition at
-- version 1. Its audit events come with the group's appends. A refusal
-- cannot happen to a row this transaction just wrote; should it, the call
-- raises, so the group rolls back rather than commit a run without its
-- first transition. An existing run id raises a unique violation.
CREATE FUNCTION fleet_create(
    p_definition_hash TEXT, p_definition_json TEXT, p_genflow_name TEXT,
    p_triggered_by TEXT, p_initial_state TEXT, p_initial_status TEXT,
    p_initial_queue TEXT[],
    p_run_id TEXT, p_version BIGINT, p_durable BOOLEAN,
    p_g_paths TEXT[], p_g_revisions BIGINT[],
    p_d_steps TEXT[], p_d_rounds BIGINT[], p_d_purposes TEXT[],
    p_d_channels TEXT[], p_d_recipients TEXT[],
    p_state_json TEXT, p_status TEXT, p_now TEXT,
    p_a_steps TEXT[], p_a_step_indexes BIGINT[], p_a_paths TEXT[], p_a_revisions BIGINT[],
    p_a_shas TEXT[], p_a_bytes BYTEA[], p_a_sizes BIGINT[],
    p_b_shas TEXT[], p_b_bytes BYTEA[], p_b_sizes BIGINT[],
    p_sr_step TEXT, p_sr_attempt BIGINT, p_sr_model TEXT, p_sr_prompt TEXT,
    p_sr_settings TEXT, p_sr_manifest TEXT, p_sr_input BIGINT, p_sr_output BIGINT,
    p_sr_cost DOUBLE PRECISION, p_sr_cached BOOLEAN, p_sr_started TEXT,
    p_sr_finished TEXT, p_sr_error TEXT,
    p_dc_step TEXT, p_dc_round BIGINT, p_dc_approver TEXT, p_dc_key TEXT,
    p_dc_verdict TEXT, p_dc_reason TEXT, p_dc_channel TEXT, p_dc_genflow TEXT,
    p_dc_hash TEXT, p_dc_shown TEXT, p_dc_final BOOLEAN,
    p_o_labels TEXT[], p_o_payloads TEXT[],
    p_q_delete TEXT[], p_q_insert TEXT[], p_q_take_steps TEXT[], p_q_take_until TEXT[],
    p_q_release TEXT[],
    p_l_take_steps TEXT[], p_l_take_owners TEXT[], p_l_take_expires TEXT[],
    p_l_release_steps TEXT[], p_l_release_owners TEXT[])
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    refused BIGINT;
BEGIN
    INSERT INTO definitions (hash, json) VALUES (p_definition_hash, p_definition_json)
    ON CONFLICT (hash) DO NOTHING;
    INSERT INTO runs (id, genflow_name, definition_hash, state_json, status, version,
        triggered_by, created_at, updated_at)
    VALUES (p_run_id, p_genflow_name, p_definition_hash, p_initial_state, p_initial_status, 1,
        p_triggered_by, p_now, p_now);
    IF COALESCE(array_length(p_initial_queue, 1), 0) > 0 THEN
        INSERT INTO step_queue (run_id, step, claimable_at)
        SELECT p_run_id, s, p_now FROM unnest(p_initial_queue) AS s;
    END IF;
    refused := fleet_write(p_run_id, p_version, p_durable, p_g_paths, p_g_revisions, p_d_steps, p_d_rounds, p_d_purposes, p_d_channels, p_d_recipients, p_state_json, p_status, p_now, p_a_steps, p_a_step_indexes, p_a_paths, p_a_revisions, p_a_shas, p_a_bytes, p_a_sizes, p_b_shas, p_b_bytes, p_b_sizes, p_sr_step, p_sr_attempt, p_sr_model, p_sr_prompt, p_sr_settings, p_sr_manifest, p_sr_input, p_sr_output, p_sr_cost, p_sr_cached, p_sr_started, p_sr_finished, p_sr_error, p_dc_step, p_dc_round, p_dc_approver, p_dc_key, p_dc_verdict, p_dc_reason, p_dc_channel, p_dc_genflow, p_dc_hash, p_dc_shown, p_dc_final, p_o_labels, p_o_payloads, p_q_delete, p_q_insert, p_q_take_steps, p_q_take_until, p_q_release, p_l_take_steps, p_l_take_owners, p_l_take_expires, p_l_release_steps, p_l_release_owners);
    IF refused <> 0 THEN
        RAISE EXCEPTION 'the first transition of new run % was refused (%)', p_run_id, refused;
    END IF;
    RETURN 0;
END
$$;
