-- Aggregates for `/metrics`, kept by every commit so a scrape reads a few
-- rows instead of counting every run and step attempt ever stored.

CREATE TABLE run_counts (
    status TEXT PRIMARY KEY NOT NULL,
    runs   INTEGER NOT NULL
);
INSERT INTO run_counts (status, runs) SELECT status, COUNT(*) FROM runs GROUP BY status;

-- Per genflow and step, over every recorded attempt. Durations in
-- microseconds and cost in nano-dollars, so adding and subtracting a
-- replaced attempt's record is exact.
CREATE TABLE step_totals (
    genflow       TEXT NOT NULL,
    step          TEXT NOT NULL,
    attempts      INTEGER NOT NULL,
    finished      INTEGER NOT NULL,
    duration_us   INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_nusd     INTEGER NOT NULL,
    cached        INTEGER NOT NULL,
    PRIMARY KEY (genflow, step)
);
INSERT INTO step_totals
SELECT r.genflow_name, s.step, COUNT(*),
       COALESCE(SUM(s.finished_at IS NOT NULL), 0),
       COALESCE(SUM(CAST(ROUND((julianday(s.finished_at) - julianday(s.started_at)) * 86400000000.0) AS INTEGER)), 0),
       COALESCE(SUM(s.input_tokens), 0),
       COALESCE(SUM(s.output_tokens), 0),
       COALESCE(SUM(CAST(ROUND(COALESCE(s.cost_usd, 0) * 1000000000.0) AS INTEGER)), 0),
       COALESCE(SUM(s.cached), 0)
FROM step_runs s JOIN runs r ON r.id = s.run_id
GROUP BY r.genflow_name, s.step;

-- Run listings filtered by status and/or genflow read their page from an
-- index in listing order instead of scanning every run for the few that
-- match (the dashboard's "waiting" list over 100,000 finished runs).
DROP INDEX runs_status;
DROP INDEX runs_genflow;
CREATE INDEX runs_status_created ON runs (status, created_at DESC, id DESC);
CREATE INDEX runs_genflow_created ON runs (genflow_name, created_at DESC, id DESC);
CREATE INDEX runs_genflow_status_created ON runs (genflow_name, status, created_at DESC, id DESC);
