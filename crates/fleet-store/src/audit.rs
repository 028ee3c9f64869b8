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

/// The hash of one event (see [`event_hash_canonical`]).
pub fn event_hash(
    seq: i64,
    run_id: Option<&str>,
    at: &str,
    kind: &str,
    payload: &Value,
    prev_hash: &str,
) -> Result<String, StoreError> {
    let payload = canonical_payload(seq, payload)?;
    Ok(event_hash_canonical(
        seq, run_id, at, kind, &payload, prev_hash,
    ))
}

/// The payload of event `seq` as RFC 8785 text: what its hash covers, and
/// what a backend stores (any JSON reader parses it), so it is written once.
pub fn canonical_payload(seq: i64, payload: &Value) -> Result<String, StoreError> {
    let fail = |e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("event {seq} cannot be canonicalized: {e}"))
    };
    let mut out = Vec::with_capacity(128);
    write_canonical(&mut out, payload).map_err(|e| fail(&e))?;
    // The writer emits only serde_json's (UTF-8) text.
    String::from_utf8(out).map_err(|e| fail(&e))
}

/// What is wrong with stored event `seq`, judged on its stored bytes as
/// they are: the payload text must be exactly its canonical form (so no
/// byte can change without the hash noticing, whitespace included) and
/// the stored hash must be that of the stored text. Both backends' verifiers
/// call this for every event.
pub fn stored_event_problem(
    seq: i64,
    run_id: Option<&str>,
    at: &str,
    kind: &str,
    payload_text: &str,
    prev_hash: &str,
    hash: &str,
) -> Option<String> {
    let payload: Value = match serde_json::from_str(payload_text) {
        Ok(p) => p,
        Err(e) => return Some(format!("payload is not JSON ({e})")),
    };
    match canonical_payload(seq, &payload) {
        Ok(canonical) if canonical == payload_text => {}
        Ok(_) => {
            return Some(
                "stored payload is not in canonical form: its bytes were changed after it was written"
                    .into(),
            );
        }
        Err(e) => return Some(e.to_string()),
    }
    (event_hash_canonical(seq, run_id, at, kind, payload_text, prev_hash) != hash)
        .then(|| "hash mismatch".into())
}

/// [`event_hash`] of a payload already in canonical text.
///
/// The object is written out directly in JCS key order (`at`, `kind`,
/// `payload`, `prev_hash`, `run_id`, `seq`): the same bytes as
/// `serde_json_canonicalizer` gives for the whole object (a test holds them
/// equal), about six times faster. This runs on the store's single writer
/// thread for every event, so its speed bounds commits/s.
pub fn event_hash_canonical(
    seq: i64,
    run_id: Option<&str>,
    at: &str,
    kind: &str,
    payload: &str,
    prev_hash: &str,
) -> String {
    let mut body = Vec::with_capacity(payload.len() + 256);
    // Strings through serde_json: its escaping is JCS's.
    let string = |body: &mut Vec<u8>, s: &str| {
        let _ = serde_json::to_writer(&mut *body, s);
    };
    body.extend_from_slice(b"{\"at\":");
    string(&mut body, at);
    body.extend_from_slice(b",\"kind\":");
    string(&mut body, kind);
    body.extend_from_slice(b",\"payload\":");
    body.extend_from_slice(payload.as_bytes());
    body.extend_from_slice(b",\"prev_hash\":");
    string(&mut body, prev_hash);
    body.extend_from_slice(b",\"run_id\":");
    match run_id {
        Some(id) => string(&mut body, id),
        None => body.extend_from_slice(b"null"),
    }
    body.extend_from_slice(b",\"seq\":");
    body.extend_from_slice(seq.to_string().as_bytes());
    body.push(b'}');
    sha256_hex(&body)
}

/// RFC 8785 (JCS) text of `value`. Strings are escaped exactly as serde_json
/// escapes them (the JCS rules: `"`, `\\` and control characters, lower-case
/// `\u00xx`); object keys are sorted by UTF-16 code units; integers up to
/// 2^53 print as is and other numbers go through `serde_json_canonicalizer` (ECMAScript
/// number formatting), which is rare in event payloads.
fn write_canonical(out: &mut Vec<u8>, value: &Value) -> Result<(), serde_json::Error> {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => serde_json::to_writer(&mut *out, value),
        Value::Number(n) => {
            // JCS numbers are IEEE doubles: integers print as themselves
            // only while a double holds them exactly.
            const EXACT: u64 = 1 << 53;
            if n.as_i64().is_some_and(|i| i.unsigned_abs() <= EXACT)
                || n.as_u64().is_some_and(|u| u <= EXACT)
            {
                serde_json::to_writer(&mut *out, n)
            } else {
                out.extend_from_slice(&serde_json_canonicalizer::to_vec(n)?);
                Ok(())
            }
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, item)?;
            }
            out.push(b']');
            Ok(())
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write_canonical(out, item)?;
            }
            out.push(b'}');
            Ok(())
        }
    }
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
    let mut payload = json!({
        "run_id": id,
        "genflow": genflow.name,
        "definition_hash": hash,
        "triggered_by": state.triggered_by,
        "status": state.status,
    });
    // The hash covers the values already; naming them here puts them in
    // the chain itself, readable without the definition. Left out when
    // there are none, so runs without params record what they always did.
    if !genflow.param_values.is_empty() {
        payload["params"] = json!(genflow.param_values);
    }
    Pending::new("run.created", payload)
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

/// The event kinds with an index of their own (migrations sqlite/0007,
/// postgres/0005), as the condition that lets a query use it: a partial
/// index applies only where the query names its kind as a literal, which
/// a bound parameter is not. Empty for other kinds. Ends in `AND`.
pub(crate) fn indexed_kind(kind: &str) -> &'static str {
    match kind {
        "audit.key" => "kind = 'audit.key' AND",
        "audit.checkpoint" => "kind = 'audit.checkpoint' AND",
        _ => "",
    }
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

    /// The canonical object as `serde_json_canonicalizer` writes it.
    fn oracle_hash(
        seq: i64,
        run_id: Option<&str>,
        at: &str,
        kind: &str,
        payload: &Value,
        prev: &str,
    ) -> Option<String> {
        let object = json!({
            "seq": seq, "run_id": run_id, "at": at, "kind": kind, "payload": payload, "prev_hash": prev,
        });
        serde_json_canonicalizer::to_vec(&object)
            .map(|bytes| sha256_hex(&bytes))
            .ok()
    }

    #[test]
    fn hash_matches_the_reference_canonicalizer_on_awkward_payloads() {
        let payloads = [
            json!(null),
            json!(-0.0),
            json!([
                1e21,
                1e-7,
                0.1,
                -5.5,
                1.0,
                123456789012345680000.0,
                f64::MIN_POSITIVE
            ]),
            json!({"z": 1, "a": {"y": [true, false, null], "b": ""}, "A": -9_223_372_036_854_775_808i64, "u": u64::MAX}),
            json!({"\u{e000}": 1, "\u{10000}": 2, "\u{ffff}": 3, "é": 4, "e": 5, "": 6}),
            json!({"s": "\u{0}\u{1f}\u{7f}\"\\/\u{2028}\u{2029}\u{fffd}😀\t\n\r\u{8}\u{c}"}),
            json!({"nested": [{"b": [], "a": {}}, [[["deep"]]]]}),
        ];
        for payload in &payloads {
            for run_id in [None, Some("r\u{1}\"1")] {
                assert_eq!(
                    event_hash(
                        42,
                        run_id,
                        "2030-01-01T00:00:00.000000Z",
                        "k\n",
                        payload,
                        GENESIS_HASH
                    )
                    .ok(),
                    oracle_hash(
                        42,
                        run_id,
                        "2030-01-01T00:00:00.000000Z",
                        "k\n",
                        payload,
                        GENESIS_HASH
                    ),
                    "payload {payload}"
                );
            }
        }
    }

    #[test]
    fn canonical_text_matches_the_reference_on_generated_values() {
        // A small deterministic generator (no extra dependency): nested
        // objects, arrays, strings over tricky code points, ints and floats.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        fn text(next: &mut impl FnMut() -> u64) -> String {
            const CHARS: [char; 12] = [
                'a', 'Z', '"', '\\', '\u{0}', '\u{1f}', '\u{7f}', 'é', '\u{2028}', '\u{e000}',
                '\u{ffff}', '😀',
            ];
            (0..next() % 5)
                .map(|_| CHARS[(next() % 12) as usize])
                .collect()
        }
        fn value(next: &mut impl FnMut() -> u64, depth: u32) -> Value {
            match next() % if depth > 3 { 5 } else { 7 } {
                0 => Value::Null,
                1 => Value::Bool(next().is_multiple_of(2)),
                2 => json!((next() as i64) >> (next() % 64)),
                3 => json!(f64::from_bits(next()) % 1e25),
                4 => Value::String(text(next)),
                5 => Value::Array((0..next() % 4).map(|_| value(next, depth + 1)).collect()),
                _ => Value::Object(
                    (0..next() % 5)
                        .map(|_| (text(next), value(next, depth + 1)))
                        .collect(),
                ),
            }
        }
        for _ in 0..3000 {
            let v = value(&mut next, 0);
            let mut ours = Vec::new();
            assert!(write_canonical(&mut ours, &v).is_ok(), "{v}");
            let reference = serde_json_canonicalizer::to_vec(&v).unwrap_or_default();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&reference),
                "{v}"
            );
        }
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
