//! `verify_audit`: every event's link and hash, every artifact's content.

use super::*;

pub(super) fn verify_in(conn: &Connection) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport::default();
    // Raw columns, not AuditEvent: the hash covers the stored text of `at`.
    let mut stmt = conn.prepare_cached(
        "SELECT seq, run_id, at, kind, payload_json, prev_hash, hash FROM events ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut prev = audit::GENESIS_HASH.to_string();
    let mut expected_seq = 1;
    while let Some(row) = rows.next()? {
        report.events_checked += 1;
        let seq: i64 = row.get(0)?;
        let kind: String = row.get(3)?;
        let name = format!("event {seq} ({kind})");
        if seq != expected_seq {
            problem(
                &mut report,
                format!("{name}: expected event {expected_seq} here; events are missing"),
            );
        }
        expected_seq = seq + 1;
        let prev_hash: String = row.get(5)?;
        let hash: String = row.get(6)?;
        if prev_hash != prev {
            problem(
                &mut report,
                format!("{name}: does not link to the event before it"),
            );
        }
        let text = row.get_ref(4)?.as_str().map_err(rusqlite::Error::from)?;
        let run_id: Option<String> = row.get(1)?;
        let at: String = row.get(2)?;
        if let Some(why) =
            audit::stored_event_problem(seq, run_id.as_deref(), &at, &kind, text, &prev_hash, &hash)
        {
            problem(&mut report, format!("{name}: {why}"));
        }
        prev = hash;
    }
    drop(rows);

    let mut stmt =
        conn.prepare_cached("SELECT sha256, bytes, size FROM artifacts ORDER BY sha256")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        report.artifacts_checked += 1;
        let sha: String = row.get(0)?;
        let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        let size: i64 = row.get(2)?;
        if audit::sha256_hex(bytes) != sha || to_i64(bytes.len() as u64) != size {
            let used = conn
                .prepare_cached(
                    "SELECT run_id, path, revision FROM artifact_revisions WHERE sha256 = ?1 ORDER BY created_at, run_id LIMIT 1",
                )?
                .query_row([&sha], |u| {
                    Ok((
                        u.get::<_, String>(0)?,
                        u.get::<_, String>(1)?,
                        u.get::<_, i64>(2)?,
                    ))
                })
                .optional()?;
            let place = match used {
                Some((run, path, revision)) => format!(" (run {run}, {path} rev {revision})"),
                None => String::new(),
            };
            problem(
                &mut report,
                format!("artifact {sha}{place}: content does not match its sha256"),
            );
        }
    }
    Ok(report)
}

/// Keeps the first problem found; later ones are usually its consequences.
pub(super) fn problem(report: &mut AuditReport, text: String) {
    report.first_problem.get_or_insert(text);
}
