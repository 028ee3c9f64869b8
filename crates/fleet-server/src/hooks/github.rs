//! GitHub deliveries: the `X-Hub-Signature-256` check and the `issues` /
//! `pull_request` `labeled` events.

use super::ticket::Ticket;
use super::{Event, Refused};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

pub type HmacSha256 = Hmac<Sha256>;

/// Checks `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`
/// over the raw bytes, in constant time (`verify_slice`).
pub fn verify(keyed: &HmacSha256, header: Option<&str>, body: &[u8]) -> Result<(), Refused> {
    let header = header.ok_or(Refused::Unauthorized(
        "missing X-Hub-Signature-256 header (set the webhook's secret on GitHub)",
    ))?;
    let tag = header
        .strip_prefix("sha256=")
        .and_then(|hex_tag| hex::decode(hex_tag.trim()).ok())
        .ok_or(Refused::Unauthorized(
            "X-Hub-Signature-256 is not `sha256=<hex>`",
        ))?;
    let mut mac = keyed.clone();
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| {
        Refused::Unauthorized("X-Hub-Signature-256 does not match the body and the secret")
    })
}

#[derive(Deserialize)]
struct Payload {
    action: Option<String>,
    label: Option<Label>,
    issue: Option<Item>,
    pull_request: Option<Item>,
    repository: Option<Repository>,
    sender: Option<User>,
}

#[derive(Deserialize)]
struct Label {
    name: String,
}

#[derive(Deserialize)]
struct Item {
    number: u64,
    #[serde(default)]
    title: String,
    /// `null` for an issue written without a description.
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    html_url: String,
    user: Option<User>,
    #[serde(default)]
    labels: Vec<Label>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

/// What a delivery of event `kind` (`X-GitHub-Event`) means for Fleet.
pub fn event(kind: &str, body: &[u8]) -> Result<Event, Refused> {
    let item_key = match kind {
        "ping" => return Ok(Event::Ping),
        "issues" => "issue",
        "pull_request" => "pull_request",
        other => return Ok(Event::Ignored(format!("`{other}` events start nothing"))),
    };
    let payload: Payload = serde_json::from_slice(body).map_err(super::not_json)?;
    let action = payload.action.unwrap_or_default();
    if action != "labeled" {
        return Ok(Event::Ignored(format!(
            "`{kind}` action `{action}` starts nothing (only `labeled` does)"
        )));
    }
    let item = if item_key == "issue" {
        payload.issue
    } else {
        payload.pull_request
    };
    let (Some(item), Some(label)) = (item, payload.label) else {
        return Err(Refused::BadRequest(format!(
            "a `{kind}` `labeled` payload needs `{item_key}` and `label`"
        )));
    };
    let repo = payload.repository.map(|r| r.full_name).unwrap_or_default();
    Ok(Event::Labeled(Ticket {
        provider: "github",
        repo,
        sigil: '#',
        number: item.number,
        title: item.title,
        body: item.body.unwrap_or_default(),
        url: item.html_url,
        author: item.user.map(|u| u.login).unwrap_or_default(),
        actor: payload.sender.map(|u| u.login).unwrap_or_default(),
        labels: item.labels.into_iter().map(|l| l.name).collect(),
        added: vec![label.name],
    }))
}
