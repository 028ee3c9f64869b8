//! Notifications: approver emails with signed deep links, announcements by
//! email, signed webhooks and Slack-compatible incoming webhooks, delivered
//! through the store's outbox.
//!
//! The shape:
//! - [`plan`] decides which deliveries a transition calls for (a gate
//!   opening: one email per approver; a notify step: its `to`, `webhook`
//!   and `channels`). The engine puts them in the transition's outbox, so
//!   they are queued atomically with the state change.
//! - [`Notifier`] is the delivery worker: it claims due outbox rows,
//!   composes each message from what the store holds *now* (templates,
//!   flags, decisions, the approver's link), sends it through a [`Channel`]
//!   and records the outcome. Transient failures are retried with backoff;
//!   after [`DeliveryPolicy::max_attempts`] the delivery gives up.
//! - Delivery is at-least-once: a process killed after the SMTP server
//!   accepted a message but before `sent` was committed sends it again on
//!   restart. Every delivery has a Message-ID (webhooks: `X-Fleet-Delivery`)
//!   derived from its unique key, so the repeat carries the same id and mail
//!   clients and receivers can drop it. A row committed as `sent` is never
//!   sent again.

mod channel;
mod compose;
pub mod plan;
mod smtp;
mod templates;
mod webhook;
mod worker;

pub use channel::{Channel, Channels, Email, HttpPost, Outgoing, Receipt, SendError};
pub use compose::Composed;
pub use plan::{GatePlan, announce_deliveries, announce_round, gate_deliveries};
pub use smtp::SmtpChannel;
pub use templates::Templates;
pub use webhook::{
    SIGNATURE_HEADER, SlackChannel, TIMESTAMP_HEADER, WebhookChannel, sign, verify_signature,
};
pub use worker::{DeliveryPolicy, Notifier, OutcomeHook, PassReport, sent_report};

use fleet_store::Delivery;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Store(#[from] fleet_store::StoreError),
    #[error("notify.smtp: {0}")]
    Smtp(String),
    #[error("notify.webhook: {0}")]
    Webhook(String),
    #[error("template `notify.templates.{name}`: {message}")]
    Template { name: String, message: String },
    /// What was asked needs a channel this installation does not have.
    #[error("{0}")]
    Unavailable(String),
}

/// Builds an approver's personal deep link to a gate's decision page,
/// `{public_url}/runs/{run_id}/gates/{step}?t={signed token}`. Implemented
/// by whoever holds the server secret (the CLI, from fleet-server's signer);
/// `None` when no link can be made, and the email then says how to decide
/// with the CLI.
pub trait ApproverLinks: Send + Sync + std::fmt::Debug {
    fn link(&self, run_id: &str, step: &str, approver: &str) -> Option<String>;
}

/// The delivery's stable identity: a hash of its unique key. A resend after
/// a crash carries the same value.
pub fn delivery_key_hash(d: &Delivery) -> String {
    let mut h = Sha256::new();
    for part in [
        d.run_id.as_str(),
        d.step.as_str(),
        &d.round.to_string(),
        &d.purpose.as_key(),
        d.channel.as_str(),
        d.recipient.as_str(),
    ] {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// The Message-ID of an email delivery: `<{key hash}@{domain}>`.
pub fn message_id(d: &Delivery, domain: &str) -> String {
    format!("<{}.fleet@{domain}>", delivery_key_hash(d))
}

/// A URL as logs and `sent.md` may show it: scheme and host only, since
/// incoming-webhook URLs carry their secret in the path.
pub fn url_label(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "(url)".into(),
    }
}
