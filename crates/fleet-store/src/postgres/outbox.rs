//! The outbox on PostgreSQL: queueing (idempotent per delivery key),
//! claiming with `SKIP LOCKED`, recording outcomes.

use super::cached::Cached;
use super::chain::{self, Tally};
use super::pipeline::{Pipeline, Slot, params};
use super::{PostgresStore, pg, to_u32};
use crate::audit::{self, Pending};
use crate::{
    Delivery, DeliveryOutcome, DeliveryPurpose, DeliveryScope, DeliveryStatus, NewDelivery,
    StoreError,
};
use deadpool_postgres::{GenericClient, Transaction};
use std::time::Duration;
use tokio_postgres::Row;

const COLUMNS: &str = "id, run_id, step, round, purpose, channel, recipient, label, payload_json, status, attempts, next_attempt_at, last_error, message_id, response, summary, created_at, finished_at";

fn from_row(row: &Row) -> Result<Delivery, StoreError> {
    let id: i64 = row.get(0);
    let purpose: String = row.get(4);
    let status: String = row.get(9);
    let payload: String = row.get(8);
    let finished: Option<String> = row.get(17);
    let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("delivery {id} {what} `{v}`"));
    Ok(Delivery {
        run_id: row.get(1),
        step: row.get(2),
        round: to_u32(row.get(3), "delivery round")?,
        purpose: DeliveryPurpose::from_key(&purpose).ok_or_else(|| corrupt("purpose", &purpose))?,
        channel: row.get(5),
        recipient: row.get(6),
        label: row.get(7),
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("delivery {id} payload: {e}")))?,
        status: DeliveryStatus::from_name(&status).ok_or_else(|| corrupt("status", &status))?,
        attempts: to_u32(row.get(10), "delivery attempts")?,
        next_attempt_at: audit::parse_time(row.get(11))?,
        last_error: row.get(12),
        message_id: row.get(13),
        response: row.get(14),
        summary: row.get(15),
        created_at: audit::parse_time(row.get(16))?,
        finished_at: finished.as_deref().map(audit::parse_time).transpose()?,
        id,
    })
}

/// Queues `d` in `tx` unless its key is queued already (a delivery that gave
/// up is revived); the `delivery.queued` event when it was.
/// Queues `d`'s insert on `p`: counts 1 when the delivery was queued
/// (anew, or again after it gave up), 0 when it already was.
pub(super) async fn queue_enqueue<C: GenericClient + Sync>(
    p: &mut Pipeline<'_, C>,
    d: &NewDelivery,
    now_text: &str,
) -> Result<Slot, StoreError> {
    let payload = serde_json::to_string(&d.payload)
        .map_err(|e| StoreError::Invalid(format!("delivery payload: {e}")))?;
    p.exec(
        "INSERT INTO outbox (run_id, step, round, purpose, channel, recipient, label, payload_json, status, attempts, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9)
         ON CONFLICT (run_id, step, round, purpose, channel, recipient) DO UPDATE SET
           status = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
           lease_owner = NULL, lease_expires_at = NULL, finished_at = NULL
         WHERE outbox.status = 'failed'",
        params![
            d.run_id.clone(),
            d.step.clone(),
            i64::from(d.round),
            d.purpose.as_key(),
            d.channel.clone(),
            d.recipient.clone(),
            d.label.clone(),
            payload,
            now_text.to_owned(),
        ],
        "queueing a delivery",
    )
    .await
}

/// The row [`queue_enqueue`] writes, as a transition's write.
pub(super) fn delivery_write(d: &NewDelivery) -> Result<super::writes::Write, StoreError> {
    Ok(super::writes::Write::Delivery {
        step: d.step.clone(),
        round: i64::from(d.round),
        purpose: d.purpose.as_key(),
        channel: d.channel.clone(),
        recipient: d.recipient.clone(),
        label: d.label.clone(),
        payload_json: serde_json::to_string(&d.payload)
            .map_err(|e| StoreError::Invalid(format!("delivery payload: {e}")))?,
    })
}

/// Whether writing a delivery whose row has `status` queues it again (the
/// `WHERE` of [`queue_enqueue`]'s upsert).
pub(super) fn requeues(status: &str) -> bool {
    status == "failed"
}

/// Queues the read of `d`'s row status (none: not queued yet), locking the
/// row so it does not change before the transaction writes it.
pub(super) async fn queue_status(
    p: &mut Pipeline<'_, deadpool_postgres::Object>,
    d: &NewDelivery,
) -> Result<Slot, StoreError> {
    p.query(
        "SELECT status FROM outbox
         WHERE run_id = $1 AND step = $2 AND round = $3 AND purpose = $4 AND channel = $5 AND recipient = $6
         FOR UPDATE",
        params![
            d.run_id.clone(),
            d.step.clone(),
            i64::from(d.round),
            d.purpose.as_key(),
            d.channel.clone(),
            d.recipient.clone(),
        ],
        "reading a delivery",
    )
    .await
}

/// The event of a delivery queued.
pub(super) fn queued_event(d: &NewDelivery) -> Pending {
    Pending {
        kind: "delivery.queued".into(),
        payload: serde_json::json!({
            "step": d.step, "round": d.round, "purpose": d.purpose.as_key(),
            "channel": d.channel, "recipient": d.label,
        }),
    }
}

/// Queues `d` in `tx`; its event if it was queued.
async fn enqueue(
    tx: &Transaction<'_>,
    d: &NewDelivery,
    now_text: &str,
) -> Result<Option<Pending>, StoreError> {
    let mut p = Pipeline::new(tx);
    let slot = queue_enqueue(&mut p, d, now_text).await?;
    let changed = p.send().await.count(slot)?;
    Ok((changed == 1).then(|| queued_event(d)))
}

pub(super) async fn enqueue_many(
    store: &PostgresStore,
    deliveries: Vec<NewDelivery>,
) -> Result<u64, StoreError> {
    let mut client = store.client().await?;
    let tx = client
        .transaction()
        .await
        .map_err(pg("queueing deliveries"))?;
    let now_text = audit::format_time(audit::now());
    let mut queued = 0;
    let mut events: Vec<(String, Pending)> = Vec::new();
    for d in &deliveries {
        let hash: Option<String> = tx
            .row_opt(
                "SELECT definition_hash FROM runs WHERE id = $1",
                &[&d.run_id],
            )
            .await
            .map_err(pg("queueing deliveries"))?
            .map(|r| r.get(0));
        let hash = hash.ok_or_else(|| StoreError::NotFound(format!("run {}", d.run_id)))?;
        let genflow = store.definition(&tx, &d.run_id, &hash).await?;
        if genflow.step_index(&d.step).is_none() {
            return Err(StoreError::Invalid(format!(
                "delivery for unknown step `{}` of run {}",
                d.step, d.run_id
            )));
        }
        if let Some(e) = enqueue(&tx, d, &now_text).await? {
            queued += 1;
            events.push((d.run_id.clone(), e));
        }
    }
    // Each event belongs to its run; appended in order under one lock.
    for (run_id, e) in &events {
        chain::append(
            &tx,
            Some(run_id),
            std::slice::from_ref(e),
            &Tally::default(),
        )
        .await?;
    }
    tx.commit().await.map_err(pg("queueing deliveries"))?;
    Ok(queued)
}

pub(super) async fn claim(
    store: &PostgresStore,
    scope: &DeliveryScope,
    owner: &str,
    lease: Duration,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let now = audit::now();
    let now_text = audit::format_time(now);
    let expires = audit::format_time(super::work::lease_expiry(now, lease)?);
    let client = store.client().await?;
    let rows = client
        .rows(
            &format!(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_owner = $1, lease_expires_at = $2
                 WHERE id IN (
                   SELECT id FROM outbox
                   WHERE ((status = 'pending' AND next_attempt_at <= $3) OR (status = 'sending' AND lease_expires_at <= $3))
                     AND ($4::text IS NULL OR run_id = $4) AND ($5::text IS NULL OR step = $5)
                   ORDER BY id LIMIT $6
                   FOR UPDATE SKIP LOCKED)
                 RETURNING {COLUMNS}"
            ),
            &[
                &owner,
                &expires,
                &now_text,
                &scope.run_id,
                &scope.step,
                &i64::from(limit),
            ],
        )
        .await
        .map_err(pg("claiming deliveries"))?;
    let mut claimed = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|d| d.id);
    Ok(claimed)
}

pub(super) async fn finish(
    store: &PostgresStore,
    id: i64,
    owner: &str,
    outcome: DeliveryOutcome,
) -> Result<bool, StoreError> {
    let now_text = audit::format_time(audit::now());
    let mut client = store.client().await?;
    let tx = client
        .transaction()
        .await
        .map_err(pg("recording a delivery"))?;
    let row = tx
        .row_opt(
            &format!("SELECT {COLUMNS} FROM outbox WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await
        .map_err(pg("recording a delivery"))?
        .ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))?;
    let d = from_row(&row)?;
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
    let (changed, kind, payload) = match &outcome {
        DeliveryOutcome::Sent {
            message_id,
            response,
            summary,
        } => (
            tx.exec(
                "UPDATE outbox SET status = 'sent', message_id = $1, response = $2, summary = $3, last_error = NULL,
                   finished_at = $4, lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $5 AND status <> 'sent'",
                &[message_id, response, summary, &now_text, &id],
            )
            .await,
            "delivery.sent",
            with(serde_json::json!({
                "message_id": message_id, "response": response, "summary": summary,
            })),
        ),
        DeliveryOutcome::Retry { error, at } => {
            let at = audit::format_time(*at);
            (
                tx.exec(
                    "UPDATE outbox SET status = 'pending', last_error = $1, next_attempt_at = $2,
                       lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = $3 AND status = 'sending' AND lease_owner = $4",
                    &[error, &at, &id, &owner],
                )
                .await,
                "delivery.failed",
                with(serde_json::json!({ "error": error, "final": false, "retry_at": at })),
            )
        }
        DeliveryOutcome::GaveUp { error } => (
            tx.exec(
                "UPDATE outbox SET status = 'failed', last_error = $1, finished_at = $2,
                   lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $3 AND status = 'sending' AND lease_owner = $4",
                &[error, &now_text, &id, &owner],
            )
            .await,
            "delivery.failed",
            with(serde_json::json!({ "error": error, "final": true })),
        ),
        DeliveryOutcome::Skipped { reason } => (
            tx.exec(
                "UPDATE outbox SET status = 'skipped', last_error = $1, finished_at = $2,
                   lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $3 AND status = 'sending' AND lease_owner = $4",
                &[reason, &now_text, &id, &owner],
            )
            .await,
            "delivery.skipped",
            with(serde_json::json!({ "reason": reason })),
        ),
    };
    let changed = changed.map_err(pg("recording a delivery"))?;
    if changed == 1 {
        let event = Pending {
            kind: kind.into(),
            payload,
        };
        chain::append(&tx, Some(&d.run_id), &[event], &Tally::default()).await?;
    }
    tx.commit().await.map_err(pg("recording a delivery"))?;
    Ok(changed == 1)
}

pub(super) async fn list(store: &PostgresStore, run_id: &str) -> Result<Vec<Delivery>, StoreError> {
    let client = store.client().await?;
    client
        .rows(
            &format!("SELECT {COLUMNS} FROM outbox WHERE run_id = $1 ORDER BY id"),
            &[&run_id],
        )
        .await
        .map_err(pg("listing deliveries"))?
        .iter()
        .map(from_row)
        .collect()
}
