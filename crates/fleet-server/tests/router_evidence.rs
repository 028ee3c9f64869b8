//! The run page shows each gate's signed attestation with the key that
//! signed it and whether it verifies under the installation's keys (a
//! retired key's too); the envelope is served to an operator or to the
//! gate's approver with their link's token, and to nobody else.

mod common;

use axum::http::StatusCode;
use common::*;
use fleet_core::run::Verdict;
use fleet_evidence::Envelope;

async fn decide_go(env: &Env, run_id: &str) {
    env.engine
        .decide(fleet_engine::DecisionRequest {
            run: run_id.to_owned(),
            step: Some("go-no-go".into()),
            approver: OWNER.into(),
            verdict: Verdict::Go,
            reason: None,
            channel: "cli".into(),
            shown: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn the_run_page_names_the_signing_key_and_serves_the_envelope() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    decide_go(&env, &run.id).await;
    let key = env
        .engine
        .signing_key()
        .unwrap_or_else(|e| panic!("{e}"))
        .verifier();

    let page = send(&app, get_as_operator(&format!("/runs/{}", run.id))).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = html_unescape(&page.body);
    assert!(body.contains("signed attestation"), "{body}");
    assert!(
        body.contains(&format!(
            "signed by key <code>fleet-audit+{} (current)</code>",
            key.key_id()
        )),
        "{body}"
    );
    assert!(
        body.contains("verifies</span> under this installation"),
        "{body}"
    );
    let href = format!("/runs/{}/attestations/go-no-go?rev=1", run.id);
    assert!(body.contains(&href), "{body}");

    // The envelope, for the operator: it verifies with the key.
    let r = send(&app, get_as_operator(&href)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/json");
    let envelope: Envelope = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}"));
    envelope.verify(&key).unwrap_or_else(|e| panic!("{e}"));
    // For the approver with their link's token; for nobody else.
    let r = send(&app, get(&format!("{href}&t={token}"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        serde_json::from_str::<Envelope>(&r.body).ok(),
        Some(envelope)
    );
    assert_eq!(send(&app, get(&href)).await.status, StatusCode::FORBIDDEN);
    let other_gate = env.token(&run.id, "other", OWNER, 3600);
    assert_eq!(
        send(&app, get(&format!("{href}&t={other_gate}")))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let missing = format!("/runs/{}/attestations/go-no-go?rev=9", run.id);
    assert_eq!(
        send(&app, get_as_operator(&missing)).await.status,
        StatusCode::NOT_FOUND
    );

    // After a rotation the old attestation still verifies, under the
    // retired key, and the page says so.
    let rotation = env
        .engine
        .rotate_key()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rotation.retired, key);
    let page = send(&app, get_as_operator(&format!("/runs/{}", run.id))).await;
    let body = html_unescape(&page.body);
    assert!(
        body.contains(&format!(
            "signed by key <code>fleet-audit+{} (retired at event",
            key.key_id()
        )),
        "{body}"
    );
    assert!(
        body.contains("verifies</span> under this installation"),
        "{body}"
    );
}

#[tokio::test]
async fn an_attestation_by_an_unknown_key_is_shown_as_not_verifying() {
    let env = env().await;
    let run = env.run_to_gate().await;
    decide_go(&env, &run.id).await;
    let key = env
        .engine
        .signing_key()
        .unwrap_or_else(|e| panic!("{e}"))
        .verifier();
    let refs = env
        .store()
        .artifacts(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let att = refs
        .iter()
        .find(|r| r.path.ends_with(".intoto.json"))
        .unwrap_or_else(|| panic!("no attestation"));
    let bytes = env
        .store()
        .artifact_bytes(&att.sha256)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_default();
    let envelope: Envelope = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let payload = envelope.verify(&key).unwrap_or_else(|e| panic!("{e}"));
    // The same statement signed by a key this installation never had,
    // stored as a newer revision of the attestation.
    let stranger =
        fleet_evidence::SigningKey::generate("fleet-audit").unwrap_or_else(|e| panic!("{e}"));
    let forged = Envelope::sign(&stranger, &envelope.payload_type, &payload);
    let current = env
        .store()
        .get_run(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut t = fleet_store::Transition::new(&current, current.state.clone());
    t.artifacts.push(fleet_store::NewArtifact {
        step: att.step.clone(),
        path: att.path.clone(),
        bytes: serde_json::to_vec(&forged).unwrap_or_default(),
    });
    env.store()
        .commit(t)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let app = env.app();
    let body = html_unescape(
        &send(&app, get_as_operator(&format!("/runs/{}", run.id)))
            .await
            .body,
    );
    assert!(body.contains("does not verify</span>"), "{body}");
    assert!(
        body.contains(&format!("key id {}", stranger.verifier().key_id())),
        "names the unknown key: {body}"
    );
    assert!(!body.contains("verifies</span> under"), "{body}");
}
