-- Fleet store schema (SQLite). Timestamps are RFC 3339 UTC text with exactly
-- six fractional digits, so text order is time order.

CREATE TABLE runs (
    id              TEXT PRIMARY KEY NOT NULL,
    genflow_name    TEXT NOT NULL,
    -- The exact definition the run executes; editing config never changes it.
    definition_json TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    state_json      TEXT NOT NULL,
    -- Copy of the state's run status, for filtering.
    status          TEXT NOT NULL,
    -- Compare-and-swap counter: every commit must name the version it read.
    version         INTEGER NOT NULL,
    triggered_by    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX runs_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_genflow ON runs (genflow_name, created_at DESC);
CREATE INDEX runs_status ON runs (status);

-- Content-addressed: the same bytes are stored once whatever produced them.
CREATE TABLE artifacts (
    sha256 TEXT PRIMARY KEY NOT NULL,
    bytes  BLOB NOT NULL,
    size   INTEGER NOT NULL
);

CREATE TABLE artifact_revisions (
    run_id     TEXT NOT NULL REFERENCES runs (id),
    step       TEXT NOT NULL,
    -- Position of the step in the run's definition, for listing in step order.
    step_index INTEGER NOT NULL,
    path       TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    sha256     TEXT NOT NULL REFERENCES artifacts (sha256),
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, path, revision)
);
CREATE INDEX artifact_revisions_sha ON artifact_revisions (sha256);

CREATE TABLE step_runs (
    run_id        TEXT NOT NULL REFERENCES runs (id),
    step          TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    model         TEXT,
    prompt        TEXT,
    settings_json TEXT NOT NULL,
    manifest_json TEXT,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd      REAL,
    cached        INTEGER NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    error         TEXT,
    PRIMARY KEY (run_id, step, attempt)
);

CREATE TABLE decisions (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id),
    step            TEXT NOT NULL,
    -- Which opening of the gate (the gate step's attempt): a gate re-opened by
    -- a redraft or a retry collects a fresh round of votes.
    gate_round      INTEGER NOT NULL,
    approver        TEXT NOT NULL,
    -- Lower-cased approver, so one person cannot vote twice by changing case.
    approver_key    TEXT NOT NULL,
    verdict         TEXT NOT NULL,
    reason          TEXT,
    channel         TEXT NOT NULL,
    decided_at      TEXT NOT NULL,
    genflow_name    TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    shown_json      TEXT NOT NULL,
    is_final        INTEGER NOT NULL,
    UNIQUE (run_id, step, gate_round, approver_key)
);
-- Exactly one decision closes a gate, even under concurrent clicks.
CREATE UNIQUE INDEX decisions_one_final ON decisions (run_id, step, gate_round) WHERE is_final = 1;

-- Append-only audit log; each row's hash covers the previous row's hash.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY NOT NULL,
    run_id       TEXT,
    at           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX events_run ON events (run_id, seq);

CREATE TABLE leases (
    run_id     TEXT NOT NULL,
    step       TEXT NOT NULL,
    owner      TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);
