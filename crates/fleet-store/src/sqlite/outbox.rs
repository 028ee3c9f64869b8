//! The outbox on the writer thread: queueing deliveries and recording how
//! an attempt ended.

use super::*;

/// Inserts a delivery, or revives one that gave up; returns its
/// `delivery.queued` event when something changed.
pub(super) fn enqueue_in(
    conn: &Connection,
    d: &NewDelivery,
    now_text: &str,
) -> Result<Option<Pending>, StoreError> {
    let changed = conn
        .prepare_cached(
            "INSERT INTO outbox (run_id, step, round, purpose, channel, recipient, label, payload_json, status, attempts, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?9, ?9)
             ON CONFLICT (run_id, step, round, purpose, channel, recipient) DO UPDATE SET
               status = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
               lease_owner = NULL, lease_expires_at = NULL, finished_at = NULL
             WHERE outbox.status = 'failed'",
        )?
        .execute(params![
            d.run_id,
            d.step,
            i64::from(d.round),
            d.purpose.as_key(),
            d.channel,
            d.recipient,
            d.label,
            to_json("delivery payload", &d.payload)?,
            now_text
        ])?;
    Ok((changed == 1).then(|| Pending {
        kind: "delivery.queued".into(),
        payload: serde_json::json!({
            "step": d.step, "round": d.round, "purpose": d.purpose.as_key(),
            "channel": d.channel, "recipient": d.label,
        }),
    }))
}

pub(super) fn delivery_from_row(row: &Row<'_>) -> Result<Delivery, StoreError> {
    let id: i64 = row.get(0)?;
    let purpose: String = row.get(4)?;
    let status: String = row.get(9)?;
    let finished: Option<String> = row.get(17)?;
    Ok(Delivery {
        run_id: row.get(1)?,
        step: row.get(2)?,
        round: to_u32(row.get(3)?, "delivery round")?,
        purpose: DeliveryPurpose::from_key(&purpose)
            .ok_or_else(|| corrupt(&format!("delivery {id} purpose"), &purpose))?,
        channel: row.get(5)?,
        recipient: row.get(6)?,
        label: row.get(7)?,
        payload: from_json(&row.get::<_, String>(8)?, || {
            format!("delivery {id} payload")
        })?,
        status: DeliveryStatus::from_name(&status)
            .ok_or_else(|| corrupt(&format!("delivery {id} status"), &status))?,
        attempts: to_u32(row.get(10)?, "delivery attempts")?,
        next_attempt_at: time(&row.get::<_, String>(11)?)?,
        last_error: row.get(12)?,
        message_id: row.get(13)?,
        response: row.get(14)?,
        summary: row.get(15)?,
        created_at: time(&row.get::<_, String>(16)?)?,
        finished_at: finished.as_deref().map(time).transpose()?,
        id,
    })
}

pub(super) fn finish_delivery_in(
    conn: &Connection,
    id: i64,
    owner: &str,
    outcome: &DeliveryOutcome,
) -> Result<bool, StoreError> {
    let now_text = audit::format_time(audit::now());
    let Some(d) = conn
        .prepare_cached(select_deliveries!("WHERE id = ?1"))?
        .query_and_then([id], delivery_from_row)?
        .next()
        .transpose()?
    else {
        return Err(StoreError::NotFound(format!("delivery {id}")));
    };
    let base = serde_json::json!({
        "delivery": d.id, "step": d.step, "round": d.round, "purpose": d.purpose.as_key(),
        "channel": d.channel, "recipient": d.label, "attempt": d.attempts,
    });
    let with = |extra: serde_json::Value| {
        let mut p = base.clone();
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        p
    };
    let (changed, event) = match outcome {
        DeliveryOutcome::Sent {
            message_id,
            response,
            summary,
        } => {
            let n = conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'sent', message_id = ?1, response = ?2, summary = ?3, last_error = NULL,
                       finished_at = ?4, lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ?5 AND status <> 'sent'",
                )?
                .execute(params![message_id, response, summary, now_text, id])?;
            let e = with(serde_json::json!({
                "message_id": message_id, "response": response, "summary": summary,
            }));
            (
                n,
                Pending {
                    kind: "delivery.sent".into(),
                    payload: e,
                },
            )
        }
        DeliveryOutcome::Retry { error, at } => {
            let n = conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'pending', last_error = ?1, next_attempt_at = ?2,
                       lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ?3 AND status = 'sending' AND lease_owner = ?4",
                )?
                .execute(params![error, audit::format_time(*at), id, owner])?;
            let e = with(serde_json::json!({
                "error": error, "final": false, "retry_at": audit::format_time(*at),
            }));
            (
                n,
                Pending {
                    kind: "delivery.failed".into(),
                    payload: e,
                },
            )
        }
        DeliveryOutcome::GaveUp { error } => {
            let n = conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'failed', last_error = ?1, finished_at = ?2,
                       lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ?3 AND status = 'sending' AND lease_owner = ?4",
                )?
                .execute(params![error, now_text, id, owner])?;
            let e = with(serde_json::json!({ "error": error, "final": true }));
            (
                n,
                Pending {
                    kind: "delivery.failed".into(),
                    payload: e,
                },
            )
        }
        DeliveryOutcome::Skipped { reason } => {
            let n = conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'skipped', last_error = ?1, finished_at = ?2,
                       lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ?3 AND status = 'sending' AND lease_owner = ?4",
                )?
                .execute(params![reason, now_text, id, owner])?;
            let e = with(serde_json::json!({ "reason": reason }));
            (
                n,
                Pending {
                    kind: "delivery.skipped".into(),
                    payload: e,
                },
            )
        }
    };
    if changed == 1 {
        append_events(conn, Some(&d.run_id), &[event])?;
    }
    Ok(changed == 1)
}

/// Claims up to `limit` deliveries of `scope` that are due at `now` (or
/// whose sender's lease expired) for `owner` until `expires`.
pub(super) fn claim_in(
    conn: &Connection,
    scope: &DeliveryScope,
    owner: &str,
    expires: &str,
    now: &str,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_owner = ?1, lease_expires_at = ?2
         WHERE id IN (
           SELECT id FROM outbox
           WHERE ((status = 'pending' AND next_attempt_at <= ?3) OR (status = 'sending' AND lease_expires_at <= ?3))
             AND (?4 IS NULL OR run_id = ?4) AND (?5 IS NULL OR step = ?5)
           ORDER BY id LIMIT ?6)
         RETURNING id, run_id, step, round, purpose, channel, recipient, label, payload_json, status, attempts, next_attempt_at, last_error, message_id, response, summary, created_at, finished_at",
    )?
    .query_and_then(
        params![owner, expires, now, scope.run_id, scope.step, i64::from(limit)],
        delivery_from_row,
    )?
    .collect()
}
