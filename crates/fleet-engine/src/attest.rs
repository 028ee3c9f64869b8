//! Evidence written with each decision: an in-toto Statement (v1) in a DSSE
//! envelope, signed with the installation's key and stored as an artifact
//! beside the gate's record, and a signed checkpoint of the audit chain as
//! an `audit.checkpoint` event, both in the decision's own transaction.
//! The predicate's schema is in docs/ATTESTATION.md.

use fleet_core::config::StepKind;
use fleet_core::flags::sidecar_path;
use fleet_evidence::{Checkpoint, Envelope, SigningKey, dsse::IN_TOTO};
use fleet_store::audit::{canonical_payload, sha256_hex};
use fleet_store::{ArtifactRef, NewDecision, NewEvent, RunRecord, StepRun};
use serde_json::{Value, json};

/// The name of the installation's key, and the origin line of its checkpoints.
pub const KEY_NAME: &str = "fleet-audit";

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// What Fleet's decision predicate is (its schema: docs/ATTESTATION.md).
pub const PREDICATE_TYPE: &str = "urn:fleet:attestation:decision:v1";

/// Where a gate's attestations are stored: beside its record
/// (`decision.md` -> `decision.intoto.json`), one revision per decision.
pub fn attestation_path(gate_out: &str) -> String {
    let flags = sidecar_path(gate_out);
    flags.strip_suffix(".flags.json").map_or_else(
        || format!("{gate_out}.intoto.json"),
        |stem| format!("{stem}.intoto.json"),
    )
}

/// The chain head a decision is bound to: `(seq, hash)` of the newest event
/// committed before it.
pub type Head = Option<(i64, String)>;

fn digest_of(value: &Value) -> Option<String> {
    (!value.is_null())
        .then(|| canonical_payload(0, value).ok())
        .flatten()
        .map(|text| sha256_hex(text.as_bytes()))
}

/// The in-toto Statement of decision `d` at gate `gate` of `run` (round
/// `round`): subjects are the revisions the approver was shown.
pub fn statement(
    run: &RunRecord,
    gate: usize,
    round: u32,
    d: &NewDecision,
    step_runs: &[StepRun],
    head: &Head,
) -> Value {
    let subjects: Vec<Value> = d
        .shown
        .iter()
        .map(|r| json!({"name": r.path, "digest": {"sha256": r.sha256}}))
        .collect();
    let deps = run.definition.dependency_indices();
    let ups = fleet_core::dag::ancestors(&deps, gate);
    let steps: Vec<Value> = fleet_core::dag::topo_order(&deps)
        .into_iter()
        .filter(|i| ups.contains(i))
        .map(|i| {
            let step = &run.definition.steps[i];
            let last = step_runs
                .iter()
                .filter(|s| s.step == step.name)
                .max_by_key(|s| s.attempt);
            json!({
                "name": step.name,
                "kind": step.kind,
                "attempt": last.map(|s| s.attempt),
                "model": last.and_then(|s| s.model.clone()),
                "promptSha256": last.and_then(|s| s.prompt.as_deref()).map(|p| sha256_hex(p.as_bytes())),
                "settingsSha256": last.and_then(|s| digest_of(&s.settings)),
                "corpusManifestSha256": last.and_then(|s| s.manifest.as_ref()).and_then(digest_of),
            })
        })
        .collect();
    let flags: Vec<Value> =
        run.definition
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::Review)
            .filter_map(|s| {
                let path = sidecar_path(&s.out_path());
                d.shown.iter().find(|r| r.path == path).map(
                    |r: &ArtifactRef| json!({"step": s.name, "path": r.path, "sha256": r.sha256}),
                )
            })
            .collect();
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "verdict": d.verdict,
            "approver": d.approver,
            "channel": d.channel,
            "decidedAt": fleet_store::audit::format_time(d.decided_at),
            "reason": d.reason,
            "final": d.is_final,
            "gate": d.step,
            "gateRound": round,
            "run": {
                "id": run.id,
                "genflow": run.genflow_name,
                "definitionHash": run.definition_hash,
                "params": run.definition.param_values,
            },
            "steps": steps,
            "flags": flags,
            "auditHead": head.as_ref().map(|(seq, hash)| json!({"seq": seq, "hash": hash})),
        }
    })
}

/// The statement, signed: the bytes of the attestation artifact.
pub fn envelope(key: &SigningKey, statement: &Value) -> Vec<u8> {
    let payload = serde_json::to_vec(statement).unwrap_or_default();
    let envelope = Envelope::sign(key, IN_TOTO, &payload);
    let mut bytes = serde_json::to_vec_pretty(&envelope).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The `audit.checkpoint` event for `head`, signed with `key`; `None` for
/// an empty log (nothing to vouch for).
pub fn checkpoint_event(key: &SigningKey, head: &Head) -> Option<NewEvent> {
    let (seq, hash) = head.as_ref()?;
    let checkpoint = Checkpoint {
        origin: key.name().to_owned(),
        size: u64::try_from(*seq).ok()?,
        head: hash.clone(),
    };
    let note = checkpoint.sign(key).ok()?;
    Some(NewEvent {
        kind: "audit.checkpoint".into(),
        payload: json!({
            "size": seq,
            "head": hash,
            "key": key.verifier().vkey(),
            "note": note,
        }),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn attestations_sit_beside_the_gate_record() {
        assert_eq!(
            super::attestation_path("decision.md"),
            "decision.intoto.json"
        );
        assert_eq!(super::attestation_path("gates/go"), "gates/go.intoto.json");
    }
}
