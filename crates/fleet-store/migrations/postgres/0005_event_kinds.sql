-- The audit events read by kind (`Store::events_of_kind`): the key list,
-- read by every process that signs evidence (each `fleet approve`), and
-- the latest checkpoint. Without these a read scanned the whole log. The
-- indexes are partial, so the events written on every commit pay nothing;
-- queries name the kind as a literal so the planner can prove they apply.
CREATE INDEX events_audit_key ON events (seq) WHERE kind = 'audit.key';
CREATE INDEX events_audit_checkpoint ON events (seq) WHERE kind = 'audit.checkpoint';
