//! The audit chain and the events every backend appends, kept here so all
//! backends hash and describe things identically.
//!
//! `hash = sha256_hex(JCS({seq, run_id, at, kind, payload, prev_hash}))`, where
//! JCS is RFC 8785 canonical JSON and `at` is [`format_time`]'s text. The
//! first event's `prev_hash` is [`GENESIS_HASH`].

use crate::{ArtifactRef, DecisionRecord, StepRun, StoreError};
use fleet_core::config::Genflow;
use fleet_core::run::RunState;
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Now, truncated to microseconds (what every backend can store exactly).
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

/// RFC 3339 UTC with exactly six fractional digits, so that text order is
/// time order and the hashed text is the same on every backend.
pub fn format_time(t: Timestamp) -> String {
    format!("{t:.6}")
}

pub fn parse_time(text: &str) -> Result<Timestamp, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("bad timestamp `{text}`: {e}")))
}

/// The hash of one event.
pub fn event_hash(
    seq: i64,
    run_id: Option<&str>,
    at: &str,
    kind: &str,
    payload: &Value,
    prev_hash: &str,
) -> Result<String, StoreError> {
    // Borrowed fields, not a `json!` value: no deep copy of the payload. JCS
    // sorts the keys, so this is the same text as the object form.
    #[derive(serde::Serialize)]
    struct Body<'a> {
        seq: i64,
        run_id: Option<&'a str>,
        at: &'a str,
        kind: &'a str,
        payload: &'a Value,
        prev_hash: &'a str,
    }
    let body = Body {
        seq,
        run_id,
        at,
        kind,
        payload,
        prev_hash,
    };
    let canonical = serde_json_canonicalizer::to_vec(&body)
        .map_err(|e| StoreError::Corrupt(format!("event {seq} cannot be canonicalized: {e}")))?;
    Ok(sha256_hex(&canonical))
}

/// An event about to be appended (the backend assigns seq and hashes).
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub kind: String,
    pub payload: Value,
}

impl Pending {
    fn new(kind: &str, payload: Value) -> Pending {
        Pending {
            kind: kind.to_string(),
            payload,
        }
    }
}

pub fn run_created(id: &str, genflow: &Genflow, hash: &str, state: &RunState) -> Pending {
    Pending::new(
        "run.created",
        json!({
            "run_id": id,
            "genflow": genflow.name,
            "definition_hash": hash,
            "triggered_by": state.triggered_by,
            "status": state.status,
        }),
    )
}

pub fn artifact_stored(a: &ArtifactRef) -> Pending {
    Pending::new(
        "artifact.stored",
        json!({
            "step": a.step,
            "path": a.path,
            "revision": a.revision,
            "sha256": a.sha256,
            "size": a.size,
        }),
    )
}

pub fn step_run_recorded(r: &StepRun) -> Pending {
    // The prompt and settings can be large; the step_runs row keeps them.
    Pending::new(
        "step.run",
        json!({
            "step": r.step,
            "attempt": r.attempt,
            "model": r.model,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cost_usd": r.cost_usd,
            "cached": r.cached,
            "error": r.error,
            "finished": r.finished_at.is_some(),
        }),
    )
}

pub fn decision_recorded(d: &DecisionRecord) -> Result<Pending, StoreError> {
    let payload = serde_json::to_value(d)
        .map_err(|e| StoreError::Invalid(format!("decision does not serialize: {e}")))?;
    Ok(Pending::new("decision.recorded", payload))
}

/// One event per step whose status changed, then one if the run's did.
pub fn state_changes(genflow: &Genflow, before: &RunState, after: &RunState) -> Vec<Pending> {
    let mut out = Vec::new();
    for (i, (b, a)) in before.steps.iter().zip(&after.steps).enumerate() {
        if b.status != a.status {
            let name = genflow.steps.get(i).map(|s| s.name.as_str());
            out.push(Pending::new(
                "step.status",
                json!({
                    "step": name,
                    "from": b.status,
                    "status": a.status,
                    "attempt": a.attempt,
                    "error": a.error,
                }),
            ));
        }
    }
    if before.status != after.status {
        out.push(Pending::new(
            "run.status",
            json!({"from": before.status, "status": after.status}),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_text_is_fixed_width_and_round_trips() {
        let t = Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let text = format_time(t);
        assert_eq!(text, "2023-11-14T22:13:20.000000Z");
        assert_eq!(parse_time(&text).ok(), Some(t));
        let n = now();
        assert_eq!(parse_time(&format_time(n)).ok(), Some(n));
    }

    #[test]
    fn hash_is_over_the_canonical_object() {
        let payload = json!({"step": "readiness", "n": [1, 2.5, null], "é": "\u{2028}"});
        let object = json!({
            "seq": 7, "run_id": "r1", "at": "2030-01-01T00:00:00.000000Z",
            "kind": "k", "payload": payload, "prev_hash": GENESIS_HASH,
        });
        let expected = serde_json_canonicalizer::to_vec(&object)
            .map(|bytes| sha256_hex(&bytes))
            .ok();
        let got = event_hash(
            7,
            Some("r1"),
            "2030-01-01T00:00:00.000000Z",
            "k",
            &payload,
            GENESIS_HASH,
        )
        .ok();
        assert!(expected.is_some());
        assert_eq!(got, expected);
        let none = json!({
            "seq": 1, "run_id": null, "at": "t", "kind": "k", "payload": {}, "prev_hash": "p",
        });
        assert_eq!(
            event_hash(1, None, "t", "k", &json!({}), "p").ok(),
            serde_json_canonicalizer::to_vec(&none)
                .map(|bytes| sha256_hex(&bytes))
                .ok()
        );
    }

    #[test]
    fn hash_covers_every_field_and_ignores_key_order() {
        let payload = json!({"b": 1, "a": [1, 2]});
        let reordered: Value = serde_json::from_str(r#"{"a":[1,2],"b":1}"#).unwrap_or_default();
        let base = event_hash(1, Some("r"), "t", "k", &payload, GENESIS_HASH).ok();
        assert!(base.is_some());
        assert_eq!(
            base,
            event_hash(1, Some("r"), "t", "k", &reordered, GENESIS_HASH).ok()
        );
        for other in [
            event_hash(2, Some("r"), "t", "k", &payload, GENESIS_HASH).ok(),
            event_hash(1, None, "t", "k", &payload, GENESIS_HASH).ok(),
            event_hash(1, Some("r"), "u", "k", &payload, GENESIS_HASH).ok(),
            event_hash(1, Some("r"), "t", "j", &payload, GENESIS_HASH).ok(),
            event_hash(1, Some("r"), "t", "k", &json!({"b": 2}), GENESIS_HASH).ok(),
            event_hash(1, Some("r"), "t", "k", &payload, &"1".repeat(64)).ok(),
        ] {
            assert_ne!(base, other);
        }
    }
}
