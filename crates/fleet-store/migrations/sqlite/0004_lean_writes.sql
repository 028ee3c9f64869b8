-- Fewer pages written per commit (each dirty page is a WAL frame, then a
-- checkpoint write).

-- A run's definition is stored once per distinct definition (by its sha256)
-- instead of in every run row: the runs row is rewritten by every
-- transition, and the definition was two thirds of it.
CREATE TABLE definitions (
    hash TEXT PRIMARY KEY NOT NULL,
    json TEXT NOT NULL
);
INSERT OR IGNORE INTO definitions (hash, json)
    SELECT definition_hash, definition_json FROM runs;
ALTER TABLE runs DROP COLUMN definition_json;

-- Only `fleet audit verify` looked revisions up by sha256, and only to name
-- where a corrupt artifact is used; a random-keyed index dirtied a page per
-- new artifact.
DROP INDEX artifact_revisions_sha;
