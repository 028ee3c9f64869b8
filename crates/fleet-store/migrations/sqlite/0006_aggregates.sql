-- Aggregates for `/metrics`, kept by triggers in the same transaction as
-- every write, so a scrape reads a few rows instead of counting every run
-- and step attempt ever stored. Triggers run inside SQLite: cheaper on the
-- single writer thread than statements issued from Rust.

CREATE TABLE run_counts (
    status TEXT PRIMARY KEY NOT NULL,
    runs   INTEGER NOT NULL
);
INSERT INTO run_counts (status, runs) SELECT status, COUNT(*) FROM runs GROUP BY status;

-- Per genflow and step, over every recorded attempt. Durations in
-- microseconds (from julianday, good to ~0.1 ms per attempt) and cost in
-- nano-dollars, each computed by the same expression when an attempt's
-- record is added and when it is replaced, so what is subtracted is
-- exactly what was added and nothing drifts.
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

CREATE TRIGGER run_counts_insert AFTER INSERT ON runs BEGIN
    INSERT INTO run_counts (status, runs) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET runs = runs + 1;
END;
CREATE TRIGGER run_counts_update AFTER UPDATE OF status ON runs
WHEN OLD.status <> NEW.status BEGIN
    UPDATE run_counts SET runs = runs - 1 WHERE status = OLD.status;
    INSERT INTO run_counts (status, runs) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET runs = runs + 1;
END;

CREATE TRIGGER step_totals_insert AFTER INSERT ON step_runs BEGIN
    INSERT INTO step_totals (genflow, step, attempts, finished, duration_us, input_tokens, output_tokens, cost_nusd, cached)
    VALUES (
        (SELECT genflow_name FROM runs WHERE id = NEW.run_id), NEW.step, 1,
        NEW.finished_at IS NOT NULL,
        COALESCE(CAST(ROUND((julianday(NEW.finished_at) - julianday(NEW.started_at)) * 86400000000.0) AS INTEGER), 0),
        NEW.input_tokens, NEW.output_tokens,
        CAST(ROUND(COALESCE(NEW.cost_usd, 0) * 1000000000.0) AS INTEGER),
        NEW.cached)
    ON CONFLICT (genflow, step) DO UPDATE SET
        attempts = attempts + 1, finished = finished + excluded.finished,
        duration_us = duration_us + excluded.duration_us,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cost_nusd = cost_nusd + excluded.cost_nusd, cached = cached + excluded.cached;
END;
CREATE TRIGGER step_totals_update AFTER UPDATE ON step_runs BEGIN
    UPDATE step_totals SET
        finished = finished + (NEW.finished_at IS NOT NULL) - (OLD.finished_at IS NOT NULL),
        duration_us = duration_us
            + COALESCE(CAST(ROUND((julianday(NEW.finished_at) - julianday(NEW.started_at)) * 86400000000.0) AS INTEGER), 0)
            - COALESCE(CAST(ROUND((julianday(OLD.finished_at) - julianday(OLD.started_at)) * 86400000000.0) AS INTEGER), 0),
        input_tokens = input_tokens + NEW.input_tokens - OLD.input_tokens,
        output_tokens = output_tokens + NEW.output_tokens - OLD.output_tokens,
        cost_nusd = cost_nusd
            + CAST(ROUND(COALESCE(NEW.cost_usd, 0) * 1000000000.0) AS INTEGER)
            - CAST(ROUND(COALESCE(OLD.cost_usd, 0) * 1000000000.0) AS INTEGER),
        cached = cached + NEW.cached - OLD.cached
    WHERE genflow = (SELECT genflow_name FROM runs WHERE id = NEW.run_id) AND step = NEW.step;
END;

-- Run listings filtered by status and/or genflow read their page from an
-- index in listing order instead of scanning every run for the few that
-- match (the dashboard's "waiting" list over 100,000 finished runs).
DROP INDEX runs_status;
DROP INDEX runs_genflow;
CREATE INDEX runs_status_created ON runs (status, created_at DESC, id DESC);
CREATE INDEX runs_genflow_created ON runs (genflow_name, created_at DESC, id DESC);
CREATE INDEX runs_genflow_status_created ON runs (genflow_name, status, created_at DESC, id DESC);
