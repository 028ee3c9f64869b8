-- Fleet store schema (PostgreSQL). The same tables as SQLite's migrations
-- 0001-0006 in their final form. Timestamps are stored as the same RFC 3339
-- UTC text with exactly six fractional digits (`audit::format_time`): the
-- audit hash covers that text, text order is time order, and both backends
-- run the same comparisons.

CREATE TABLE definitions (
    hash TEXT PRIMARY KEY,
    json TEXT NOT NULL
);

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    genflow_name    TEXT NOT NULL,
    definition_hash TEXT NOT NULL REFERENCES definitions (hash),
    state_json      TEXT NOT NULL,
    status          TEXT NOT NULL,
    version         BIGINT NOT NULL,
    triggered_by    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX runs_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_status_created ON runs (status, created_at DESC, id DESC);
CREATE INDEX runs_genflow_created ON runs (genflow_name, created_at DESC, id DESC);
CREATE INDEX runs_genflow_status_created ON runs (genflow_name, status, created_at DESC, id DESC);
-- Prefix lookups (`fleet show 0190ab`).
CREATE INDEX runs_id_prefix ON runs (id text_pattern_ops);

CREATE TABLE artifacts (
    sha256 TEXT PRIMARY KEY,
    bytes  BYTEA NOT NULL,
    size   BIGINT NOT NULL
);

CREATE TABLE artifact_revisions (
    run_id     TEXT NOT NULL REFERENCES runs (id),
    step       TEXT NOT NULL,
    step_index BIGINT NOT NULL,
    path       TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    sha256     TEXT NOT NULL REFERENCES artifacts (sha256),
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, path, revision)
);

CREATE TABLE step_runs (
    run_id        TEXT NOT NULL REFERENCES runs (id),
    step          TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    model         TEXT,
    prompt        TEXT,
    settings_json TEXT NOT NULL,
    manifest_json TEXT,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION,
    cached        BOOLEAN NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    error         TEXT,
    PRIMARY KEY (run_id, step, attempt)
);

CREATE TABLE decisions (
    id              BIGSERIAL PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id),
    step            TEXT NOT NULL,
    gate_round      BIGINT NOT NULL,
    approver        TEXT NOT NULL,
    approver_key    TEXT NOT NULL,
    verdict         TEXT NOT NULL,
    reason          TEXT,
    channel         TEXT NOT NULL,
    decided_at      TEXT NOT NULL,
    genflow_name    TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    shown_json      TEXT NOT NULL,
    is_final        BOOLEAN NOT NULL,
    UNIQUE (run_id, step, gate_round, approver_key)
);
-- Exactly one decision closes a gate round, even under concurrent clicks
-- from several servers.
CREATE UNIQUE INDEX decisions_one_final ON decisions (run_id, step, gate_round) WHERE is_final;

-- Append-only audit log; each row's hash covers the previous row's hash.
CREATE TABLE events (
    seq          BIGINT PRIMARY KEY,
    run_id       TEXT,
    at           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX events_run ON events (run_id, seq);

-- The end of the chain. Every writer locks this one row (late in its
-- transaction) to append, so the chain has no gaps or forks however many
-- processes write; its seq is also the change stamp.
CREATE TABLE chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO chain_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE leases (
    run_id     TEXT NOT NULL,
    step       TEXT NOT NULL,
    owner      TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);

-- Runnable steps (Ready, or Running under a lease), kept by every commit;
-- workers claim from here with FOR UPDATE SKIP LOCKED.
CREATE TABLE step_queue (
    run_id       TEXT NOT NULL,
    step         TEXT NOT NULL,
    claimable_at TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX step_queue_claimable ON step_queue (claimable_at);

CREATE TABLE schedules (
    genflow     TEXT PRIMARY KEY,
    cron        TEXT NOT NULL,
    next_due    TEXT NOT NULL,
    last_due    TEXT,
    last_run_id TEXT
);

CREATE TABLE outbox (
    id               BIGSERIAL PRIMARY KEY,
    run_id           TEXT NOT NULL REFERENCES runs (id),
    step             TEXT NOT NULL,
    round            BIGINT NOT NULL,
    purpose          TEXT NOT NULL,
    channel          TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    label            TEXT NOT NULL,
    payload_json     TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    last_error       TEXT,
    message_id       TEXT,
    response         TEXT,
    summary          TEXT,
    created_at       TEXT NOT NULL,
    finished_at      TEXT,
    UNIQUE (run_id, step, round, purpose, channel, recipient)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_run ON outbox (run_id, id);

-- Aggregates for /metrics, adjusted under the chain-head lock by each
-- commit (so concurrent writers never deadlock on them).
CREATE TABLE run_counts (
    status TEXT PRIMARY KEY,
    runs   BIGINT NOT NULL
);
CREATE TABLE step_totals (
    genflow       TEXT NOT NULL,
    step          TEXT NOT NULL,
    attempts      BIGINT NOT NULL,
    finished      BIGINT NOT NULL,
    duration_us   BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_nusd     BIGINT NOT NULL,
    cached        BIGINT NOT NULL,
    PRIMARY KEY (genflow, step)
);
