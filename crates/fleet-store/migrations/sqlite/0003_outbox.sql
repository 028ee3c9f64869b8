-- Outbox: every notification is a row, written in the same transaction as
-- the transition that calls for it (a gate opening, a notify step starting),
-- then delivered by a worker. The unique key makes enqueueing idempotent: a
-- retried step finds its rows instead of adding new ones, so a row marked
-- `sent` is never sent again.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    run_id           TEXT NOT NULL REFERENCES runs (id),
    step             TEXT NOT NULL,
    -- Which opening of the gate (approval emails, reminders) or which gate
    -- rounds led here (announcements): a re-opened gate notifies afresh.
    round            INTEGER NOT NULL,
    -- approval | reminder-N | announce
    purpose          TEXT NOT NULL,
    -- email | webhook | slack
    channel          TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    -- The recipient as it may appear in logs and sent.md (URLs shortened).
    label            TEXT NOT NULL,
    payload_json     TEXT NOT NULL,
    -- pending | sending | sent | failed | skipped
    status           TEXT NOT NULL,
    -- Claims so far, including one interrupted by a crash.
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    last_error       TEXT,
    message_id       TEXT,
    -- The SMTP reply or HTTP status that accepted the message.
    response         TEXT,
    -- What went out, e.g. the subject line.
    summary          TEXT,
    created_at       TEXT NOT NULL,
    finished_at      TEXT,
    UNIQUE (run_id, step, round, purpose, channel, recipient)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_run ON outbox (run_id, id);
