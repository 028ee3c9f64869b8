-- A lease taken with a transition moves its step's queue row to the
-- lease's end also when the row is claimable now: a step the transition
-- makes Ready and leases at once (the committing worker runs it next), or
-- one given back earlier. Before, a take only ever moved the row earlier,
-- so such a row stayed claimable and another claim took it for nothing.
-- The function is otherwise as in 0006 (a migration replaces it whole).

CREATE OR REPLACE FUNCTION fleet_write(
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
        WHERE run_id = p_run_id AND step = p_q_take_steps[i]
            AND (claimable_at > p_q_take_until[i] OR claimable_at <= p_now);
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
