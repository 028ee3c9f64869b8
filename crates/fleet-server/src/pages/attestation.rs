//! Signed attestations on the run page ("signed by key X", and whether it
//! verifies under the keys the installation knows), and the envelope
//! itself for an operator or the gate's approver (a copy outside Fleet).

use super::*;
use fleet_evidence::Envelope;

/// One gate's latest attestation as the run page shows it.
pub(super) struct AttestationView {
    pub(super) gate: String,
    pub(super) revision: u32,
    pub(super) href: String,
    /// `NAME+KEYID (status)`, or the key id the envelope names.
    pub(super) signer: String,
    pub(super) verified: bool,
    /// Why it does not verify (empty when it does).
    pub(super) problem: String,
}

/// Whether `path` is an attestation artifact (`<gate out stem>.intoto.json`).
fn is_attestation(path: &str) -> bool {
    path.ends_with(".intoto.json")
}

/// The latest attestation of every gate of the run that has one, checked
/// with every key the installation's log lists (current or retired).
pub(super) async fn attestation_views(
    state: &AppState,
    run: &RunRecord,
    refs: &[ArtifactRef],
) -> Result<Vec<AttestationView>, Failure> {
    let store = state.engine.store();
    let mut out = Vec::new();
    for r in latest_by_path(refs)
        .into_values()
        .filter(|r| is_attestation(&r.path))
    {
        let bytes = store
            .artifact_bytes(&r.sha256)
            .await
            .map_err(Failure::from_store)?
            .unwrap_or_default();
        let (signer, problem) = match serde_json::from_slice::<Envelope>(&bytes) {
            Err(e) => (
                "(unreadable)".to_owned(),
                format!("not a DSSE envelope: {e}"),
            ),
            Ok(env) => {
                let named = env
                    .signatures
                    .first()
                    .map(|s| s.keyid.clone())
                    .unwrap_or_default();
                let ring = state
                    .engine
                    .known_keys(&named)
                    .await
                    .map_err(Failure::from_engine)?;
                match ring.open_envelope(&env) {
                    Ok((payload, key)) => {
                        let label = format!("{} ({})", key.label(), key.status());
                        // A retired key vouches only for the log before it retired.
                        let head = serde_json::from_slice::<serde_json::Value>(&payload)
                            .ok()
                            .and_then(|s| s["predicate"]["auditHead"]["seq"].as_i64())
                            .unwrap_or(0);
                        match key.vouches_for(head) {
                            Ok(()) => (label, String::new()),
                            Err(e) => (label, e.to_string()),
                        }
                    }
                    Err(e) => (format!("key id {named}"), e.to_string()),
                }
            }
        };
        out.push(AttestationView {
            gate: r.step.clone(),
            revision: r.revision,
            href: format!(
                "/runs/{}/attestations/{}?rev={}",
                url_segment(&run.id),
                url_segment(&r.step),
                r.revision
            ),
            signer,
            verified: problem.is_empty(),
            problem,
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
pub(super) struct EnvelopeQuery {
    t: Option<String>,
    rev: Option<u32>,
}

/// `GET /runs/{id}/attestations/{gate}`: the gate's attestation envelope
/// (latest, or `?rev=N`) as JSON, for an operator, or for the gate's
/// approver with their signed link's token (`?t=`), as the decision page's
/// documents are.
pub(super) async fn attestation_envelope(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, gate)): Path<(String, String)>,
    Query(q): Query<EnvelopeQuery>,
) -> Result<Response, Failure> {
    let store = state.engine.store();
    let run_id = if auth::is_operator(&state, &headers) {
        store.get_run(&id).await.map_err(Failure::from_store)?.id
    } else {
        verify_link(&state, q.t.as_deref(), &id, &gate)?.run
    };
    let refs = store
        .artifacts(&run_id)
        .await
        .map_err(Failure::from_store)?;
    let revs: Vec<&ArtifactRef> = refs
        .iter()
        .filter(|r| r.step == gate && is_attestation(&r.path))
        .collect();
    let chosen = match q.rev {
        Some(n) => revs.iter().find(|r| r.revision == n),
        None => revs.iter().max_by_key(|r| r.revision),
    }
    .ok_or_else(|| {
        Failure::not_found(format!("an attestation of gate `{gate}` of run {run_id}"))
    })?;
    let bytes = store
        .artifact_bytes(&chosen.sha256)
        .await
        .map_err(Failure::from_store)?
        .ok_or_else(|| Failure::not_found(format!("artifact {}", chosen.sha256)))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}
