-- The runnable steps of every run (Ready, or Running under a lease), kept up
-- to date by every commit, so a worker's claim reads what it can claim and
-- nothing else, however many runs are stored. `claimable_at` is when the
-- step may next be claimed: at once for a Ready step nobody leased, else
-- when its lease lapses (a worker that died is taken over then).
CREATE TABLE step_queue (
    run_id       TEXT NOT NULL,
    step         TEXT NOT NULL,
    claimable_at TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX step_queue_claimable ON step_queue (claimable_at);

-- Runs that are mid-flight when this migration runs keep their runnable steps.
INSERT INTO step_queue (run_id, step, claimable_at)
SELECT r.id, json_extract(d.json, '$.steps[' || s.key || '].name'), r.updated_at
FROM runs r
JOIN definitions d ON d.hash = r.definition_hash,
     json_each(r.state_json, '$.steps') s
WHERE r.status = 'running' AND s.value ->> '$.status' IN ('ready', 'running');
