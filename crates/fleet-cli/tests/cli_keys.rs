//! Key rotation through the real binary: after `fleet audit rotate-key`,
//! evidence the old key signed still verifies (its public key stays in the
//! log, retired), new evidence is signed by the new key, `fleet audit
//! verify` says which key signed what, a checkpoint an unknown key signed
//! is refused and the key named, and the old key cannot vouch for the log
//! after its retirement.

mod common;

use common::{fleet, stdout_of};

use fleet_evidence::{Checkpoint, Envelope, SigningKey, Verifier};
use predicates::prelude::*;
use serde_json::Value;
use std::path::Path;

const OWNER: &str = "release-owner@example.com";

/// A run of the example, decided Go; its id.
fn decided_run(dir: &Path) -> String {
    let out = stdout_of(fleet(dir).args(["run", "release-gate", "--json"]));
    let run: Value = serde_json::from_str(&out).expect("json");
    let id = run["run_id"].as_str().expect("id").to_owned();
    fleet(dir)
        .args(["approve", &id, "--as", OWNER])
        .assert()
        .success();
    id
}

fn attestation_signer(dir: &Path, id: &str, keys: &[Verifier]) -> Option<Verifier> {
    let bytes = std::fs::read(
        dir.join(".fleet/runs")
            .join(id)
            .join("decision.intoto.json"),
    )
    .expect("attestation");
    let envelope: Envelope = serde_json::from_slice(&bytes).expect("envelope");
    keys.iter().find(|k| envelope.verify(k).is_ok()).cloned()
}

#[test]
fn evidence_of_a_rotated_key_still_verifies_and_new_evidence_uses_the_new_key() {
    let tmp = common::initialized();
    let dir = tmp.path();
    let first = decided_run(dir);
    let old =
        Verifier::parse(stdout_of(fleet(dir).args(["audit", "pubkey"])).trim()).expect("vkey");
    let kept_old = dir.join("old.note");
    std::fs::write(
        &kept_old,
        stdout_of(fleet(dir).args(["audit", "checkpoint"])),
    )
    .expect("keep");
    // A copy of the old private key, as a thief might have kept one.
    let stolen = SigningKey::load(&dir.join(".fleet/signing.key")).expect("old key");

    let out = fleet(dir).args(["audit", "rotate-key"]).assert().success();
    let new = Verifier::parse(String::from_utf8_lossy(&out.get_output().stdout).trim())
        .expect("the new vkey");
    assert_ne!(new, old);
    let said = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        said.contains(&old.key_id()) && said.contains("retired"),
        "{said}"
    );
    assert!(!dir.join(".fleet/signing.key.retiring").exists());
    assert!(!dir.join(".fleet/signing.key.next").exists());
    let current = SigningKey::load(&dir.join(".fleet/signing.key")).expect("new key");
    assert_eq!(current.verifier(), new, "the key file holds the new key");

    // `pubkey` prints the current key; `--all` also the retired one.
    assert_eq!(
        stdout_of(fleet(dir).args(["audit", "pubkey"])).trim(),
        new.vkey()
    );
    let all = fleet(dir)
        .args(["audit", "pubkey", "--all"])
        .assert()
        .success();
    let listed = String::from_utf8_lossy(&all.get_output().stdout).into_owned();
    assert_eq!(listed.lines().collect::<Vec<_>>(), [new.vkey(), old.vkey()]);
    assert!(String::from_utf8_lossy(&all.get_output().stderr).contains("retired at event"));

    // The old evidence still verifies, and says by which key.
    fleet(dir)
        .args(["audit", "verify", "--checkpoint"])
        .arg(&kept_old)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "signed by key fleet-audit+{} (retired at event",
            old.key_id()
        )))
        .stdout(predicate::str::contains("and so does the kept checkpoint"));

    // New evidence is signed by the new key.
    let second = decided_run(dir);
    let keys = [old.clone(), new.clone()];
    assert_eq!(attestation_signer(dir, &first, &keys), Some(old.clone()));
    assert_eq!(attestation_signer(dir, &second, &keys), Some(new.clone()));
    fleet(dir)
        .args(["audit", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 signed checkpoints match"))
        .stdout(predicate::str::contains(format!(
            "signed by key fleet-audit+{} (current): 1 checkpoint",
            new.key_id()
        )));
    let note = stdout_of(fleet(dir).args(["audit", "checkpoint"]));
    let (cp, _) =
        Checkpoint::open(&note, std::slice::from_ref(&new)).expect("signed by the new key");

    // The stolen old key cannot vouch for the log as it is now...
    let forged = dir.join("forged.note");
    std::fs::write(&forged, cp.sign(&stolen).expect("sign")).expect("write");
    fleet(dir)
        .args(["audit", "verify", "--checkpoint"])
        .arg(&forged)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "key fleet-audit+{} was retired at event",
            old.key_id()
        )));
    // ...and a key the log never listed is refused, and named.
    let stranger = SigningKey::generate("fleet-audit").expect("key");
    std::fs::write(&forged, cp.sign(&stranger).expect("sign")).expect("write");
    fleet(dir)
        .args(["audit", "verify", "--checkpoint"])
        .arg(&forged)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(stranger.verifier().key_id()))
        .stderr(predicate::str::contains("none of these is a trusted key"));
}

#[test]
fn rotating_without_a_key_says_so() {
    let tmp = common::initialized();
    fleet(tmp.path())
        .args(["audit", "rotate-key"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no signing key at"));
}
