//! GitLab deliveries: the `X-Gitlab-Token` check and the Issue Hook /
//! Merge Request Hook events whose `changes.labels` added a label.

use super::ticket::Ticket;
use super::{Event, Refused};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Compares `X-Gitlab-Token` with the token's sha256 in constant time:
/// hashing first means neither the content nor the length of the token
/// shows in the time taken.
pub fn verify(token_digest: &[u8; 32], header: Option<&str>) -> Result<(), Refused> {
    let presented = header.ok_or(Refused::Unauthorized(
        "missing X-Gitlab-Token header (set the webhook's secret token on GitLab)",
    ))?;
    let digest = Sha256::digest(presented.as_bytes());
    if bool::from(digest.as_slice().ct_eq(token_digest)) {
        Ok(())
    } else {
        Err(Refused::Unauthorized(
            "X-Gitlab-Token is not the configured token",
        ))
    }
}

#[derive(Deserialize)]
struct Payload {
    user: Option<User>,
    project: Option<Project>,
    object_attributes: Option<Attributes>,
    #[serde(default)]
    labels: Vec<Label>,
    changes: Option<Changes>,
}

#[derive(Deserialize)]
struct User {
    username: String,
}

#[derive(Deserialize)]
struct Project {
    path_with_namespace: String,
}

#[derive(Deserialize)]
struct Attributes {
    iid: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    url: String,
}

#[derive(Deserialize)]
struct Label {
    title: String,
}

#[derive(Deserialize)]
struct Changes {
    labels: Option<LabelChange>,
}

#[derive(Deserialize)]
struct LabelChange {
    #[serde(default)]
    previous: Vec<Label>,
    #[serde(default)]
    current: Vec<Label>,
}

/// What a delivery of event `kind` (`X-Gitlab-Event`) means for Fleet. A
/// label was added when it is in `changes.labels.current` and not in
/// `previous`.
pub fn event(kind: &str, body: &[u8]) -> Result<Event, Refused> {
    let sigil = match kind {
        "Issue Hook" => '#',
        "Merge Request Hook" => '!',
        other => return Ok(Event::Ignored(format!("`{other}` events start nothing"))),
    };
    let payload: Payload = serde_json::from_slice(body).map_err(super::not_json)?;
    let Some(change) = payload.changes.and_then(|c| c.labels) else {
        return Ok(Event::Ignored(format!(
            "this `{kind}` changed no labels, so it starts nothing"
        )));
    };
    let added: Vec<String> = change
        .current
        .iter()
        .filter(|c| !change.previous.iter().any(|p| p.title == c.title))
        .map(|c| c.title.clone())
        .collect();
    if added.is_empty() {
        return Ok(Event::Ignored(format!(
            "this `{kind}` added no label (only removed), so it starts nothing"
        )));
    }
    let Some(attrs) = payload.object_attributes else {
        return Err(Refused::BadRequest(format!(
            "a `{kind}` payload needs `object_attributes`"
        )));
    };
    // `labels` is the ticket's labels now; `changes.labels.current` says
    // the same when labels changed, and is what was just checked.
    let labels = if payload.labels.is_empty() {
        change.current
    } else {
        payload.labels
    };
    let actor = payload.user.map(|u| u.username).unwrap_or_default();
    Ok(Event::Labeled(Ticket {
        provider: "gitlab",
        repo: payload
            .project
            .map(|p| p.path_with_namespace)
            .unwrap_or_default(),
        sigil,
        number: attrs.iid,
        title: attrs.title,
        body: attrs.description.unwrap_or_default(),
        url: attrs.url,
        // GitLab's payload names the author only by id; the user who
        // changed the labels is the one it names.
        author: actor.clone(),
        actor,
        labels: labels.into_iter().map(|l| l.title).collect(),
        added,
    }))
}
