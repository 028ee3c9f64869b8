//! Evidence through the real binary: each decision writes a signed in-toto
//! attestation and a signed checkpoint of the audit log; `fleet audit
//! verify` names truncation (against a kept checkpoint), whitespace added
//! to a stored event, a deleted middle event, and a rewrite from the middle
//! with every hash recomputed.

mod common;

use common::{fleet, json_of, stdout_of};

use base64::Engine as _;
use fleet_evidence::{Checkpoint, Envelope, Verifier};
use predicates::prelude::*;
use serde_json::Value;
use std::path::Path;

const OWNER: &str = "release-owner@example.com";

/// A run of the example, decided Go; its id.
fn decided_run(dir: &Path) -> String {
    let run = json_of(fleet(dir).args(["run", "release-gate", "--json"]));
    let id = run["run_id"].as_str().expect("id").to_owned();
    fleet(dir)
        .args(["approve", &id, "--as", OWNER])
        .assert()
        .success();
    id
}

#[test]
fn each_decision_is_attested_and_checkpointed() {
    let tmp = common::initialized();
    let dir = tmp.path();
    let id = decided_run(dir);

    let vkey = stdout_of(fleet(dir).args(["audit", "pubkey"]));
    let key = Verifier::parse(vkey.trim()).expect("a vkey");
    let key_file = dir.join(".fleet/signing.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    let secret = std::fs::read_to_string(&key_file).expect("key");
    assert!(!vkey.contains(secret.trim()), "the private key was printed");

    // The attestation: a DSSE envelope over an in-toto Statement, signed.
    let bytes = std::fs::read(
        dir.join(".fleet/runs")
            .join(&id)
            .join("decision.intoto.json"),
    )
    .expect("attestation written beside decision.md");
    let envelope: Envelope = serde_json::from_slice(&bytes).expect("an envelope");
    assert_eq!(envelope.payload_type, "application/vnd.in-toto+json");
    let statement: Value = serde_json::from_slice(
        &envelope
            .verify(&key)
            .expect("signed by the installation key"),
    )
    .expect("statement");
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    let p = &statement["predicate"];
    assert_eq!(
        (p["verdict"].as_str(), p["approver"].as_str()),
        (Some("go"), Some(OWNER))
    );
    assert_eq!(p["channel"], "cli");
    assert_eq!(p["run"]["id"], id.as_str());
    assert!(p["auditHead"]["seq"].as_i64().is_some_and(|s| s > 0), "{p}");
    let steps: Vec<&str> = p["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(steps, ["readiness", "risk-review"]);
    assert!(
        p["steps"][0]["corpusManifestSha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64)
    );

    // Its subjects are exactly the revisions the decision records as shown.
    let show = json_of(fleet(dir).args(["show", &id, "--json"]));
    let shown = show["decisions"][0]["shown"].as_array().expect("shown");
    let subjects = statement["subject"].as_array().expect("subjects");
    assert_eq!(subjects.len(), shown.len());
    for (s, r) in subjects.iter().zip(shown) {
        assert_eq!(s["name"], r["path"]);
        assert_eq!(s["digest"]["sha256"], r["sha256"]);
    }
    // One changed byte of the payload, and the signature no longer holds.
    let mut forged = envelope.clone();
    let mut payload = base64::engine::general_purpose::STANDARD
        .decode(&forged.payload)
        .expect("b64");
    let at = payload
        .iter()
        .position(|&b| b == b'g')
        .expect("a byte to change");
    payload[at] = b'G';
    forged.payload = base64::engine::general_purpose::STANDARD.encode(payload);
    assert!(forged.verify(&key).is_err());

    // The decision's checkpoint verifies, and can be kept elsewhere.
    fleet(dir)
        .args(["audit", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("1 signed checkpoint matches"));
    let note = stdout_of(fleet(dir).args(["audit", "checkpoint"]));
    let trusted = [key];
    let (cp, _) = Checkpoint::open(&note, &trusted).expect("a signed checkpoint");
    assert_eq!(cp.size, p["auditHead"]["seq"].as_u64().expect("seq"));
    let kept = dir.join("kept.note");
    std::fs::write(&kept, &note).expect("keep");
    fleet(dir)
        .args(["audit", "verify", "--checkpoint"])
        .arg(&kept)
        .assert()
        .success()
        .stdout(predicate::str::contains("and so does the kept checkpoint"));
    // A key nobody trusts does not vouch for anything.
    let stranger = fleet_evidence::SigningKey::generate("fleet-audit").expect("key");
    let foreign = Checkpoint {
        origin: "fleet-audit".into(),
        size: cp.size,
        head: cp.head.clone(),
    }
    .sign(&stranger)
    .expect("sign");
    std::fs::write(&kept, foreign).expect("write");
    fleet(dir)
        .args(["audit", "verify", "--checkpoint"])
        .arg(&kept)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("none of these is a trusted key"));
}

/// The events table, row by row: (seq, run_id, at, kind, payload, prev, hash).
type Row = (i64, Option<String>, String, String, String, String, String);

fn rows(db: &rusqlite::Connection) -> Vec<Row> {
    let mut stmt = db
        .prepare(
            "SELECT seq, run_id, at, kind, payload_json, prev_hash, hash FROM events ORDER BY seq",
        )
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .expect("query")
    .map(|r| r.expect("row"))
    .collect()
}

/// A copy of the workspace's database to tamper with, and `fleet audit
/// verify` (with `args`) on it: its stderr.
fn verify_tampered(
    dir: &Path,
    args: &[&str],
    tamper: impl FnOnce(&rusqlite::Connection),
) -> String {
    let copy = tempfile::tempdir().expect("tempdir");
    let db = copy.path().join("fleet.db");
    let src = rusqlite::Connection::open(dir.join(".fleet/fleet.db")).expect("open");
    src.execute("VACUUM INTO ?1", [db.to_str().expect("utf-8")])
        .expect("copy");
    tamper(&rusqlite::Connection::open(&db).expect("open copy"));
    let out = fleet(dir)
        .env("FLEET_DATABASE_URL", format!("sqlite://{}", db.display()))
        .args(["audit", "verify"])
        .args(args)
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn tampering_is_named_by_verify_sqlite() {
    let tmp = common::initialized();
    let dir = tmp.path();
    decided_run(dir);
    let kept = dir.join("kept.note");
    let second = decided_run(dir);
    std::fs::write(&kept, stdout_of(fleet(dir).args(["audit", "checkpoint"]))).expect("keep");
    let kept = kept.to_str().expect("utf-8").to_owned();
    let db = rusqlite::Connection::open(dir.join(".fleet/fleet.db")).expect("open");
    let all = rows(&db);
    let size = all.iter().filter(|r| r.3 == "audit.checkpoint").count();
    assert_eq!(size, 2, "a checkpoint per decision");
    let last_checkpoint = all
        .iter()
        .rev()
        .find(|r| r.3 == "audit.checkpoint")
        .expect("cp");
    let covered: i64 = serde_json::from_str::<Value>(&last_checkpoint.4).expect("json")["size"]
        .as_i64()
        .expect("size");

    // Truncated after the kept checkpoint: the newest events deleted.
    let cut = covered - 2;
    let err = verify_tampered(dir, &["--checkpoint", &kept], |db| {
        db.execute("DELETE FROM events WHERE seq > ?1", [cut])
            .expect("delete");
    });
    assert!(
        err.contains("the log was truncated")
            && err.contains(&format!("event {} is the first missing", cut + 1)),
        "{err}"
    );

    // A space appended to a stored event (the same JSON to any parser).
    let middle = all[all.len() / 2].0;
    let err = verify_tampered(dir, &[], |db| {
        db.execute(
            "UPDATE events SET payload_json = payload_json || ' ' WHERE seq = ?1",
            [middle],
        )
        .expect("update");
    });
    assert!(
        err.contains(&format!("event {middle} (")) && err.contains("not in canonical form"),
        "{err}"
    );

    // A middle event deleted.
    let err = verify_tampered(dir, &[], |db| {
        db.execute("DELETE FROM events WHERE seq = ?1", [middle])
            .expect("delete");
    });
    assert!(
        err.contains(&format!("expected event {middle} here; events are missing")),
        "{err}"
    );

    // Rewritten from the middle, every later hash recomputed: the chain is
    // consistent again, but the checkpoints signed before say otherwise.
    let err = verify_tampered(dir, &[], |db| {
        let mut prev = String::new();
        for (seq, run_id, at, kind, payload, prev_hash, _) in rows(db) {
            let prev_hash = if seq < middle {
                prev_hash
            } else {
                prev.clone()
            };
            let payload = if seq == middle {
                let mut v: Value = serde_json::from_str(&payload).expect("json");
                v["forged"] = Value::Bool(true);
                fleet_store::audit::canonical_payload(seq, &v).expect("canonical")
            } else {
                payload
            };
            let hash = fleet_store::audit::event_hash_canonical(
                seq,
                run_id.as_deref(),
                &at,
                &kind,
                &payload,
                &prev_hash,
            );
            db.execute(
                "UPDATE events SET payload_json = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
                rusqlite::params![payload, prev_hash, hash, seq],
            )
            .expect("rewrite");
            prev = hash;
        }
    });
    assert!(err.contains("the log was rewritten: event "), "{err}");
    assert!(err.contains("signed by key"), "{err}");
    // The untouched log still verifies, against the kept checkpoint too.
    fleet(dir)
        .args(["audit", "verify", "--checkpoint", &kept])
        .assert()
        .success();
    let _ = second;
}
