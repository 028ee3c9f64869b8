-- When each scheduled genflow is next due. The scheduler claims a due time
-- with a compare-and-swap on next_due and records the id of the run it is
-- about to create in the same statement, so a restart neither skips a due
-- run (the id is there to create) nor starts it twice (the claim moved on).
CREATE TABLE schedules (
    genflow     TEXT PRIMARY KEY NOT NULL,
    cron        TEXT NOT NULL,
    next_due    TEXT NOT NULL,
    last_due    TEXT,
    last_run_id TEXT
);
