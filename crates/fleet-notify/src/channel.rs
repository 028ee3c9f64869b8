//! What a channel sends, and the registry of channels a notifier uses.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An email with a plain-text and an HTML alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `<...@...>`, derived from the delivery key.
    pub message_id: String,
}

/// A JSON POST (signed webhook or Slack incoming webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPost {
    pub url: String,
    pub body: Vec<u8>,
    /// Sent as `X-Fleet-Delivery` so a receiver can drop a repeat.
    pub delivery_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Email(Email),
    Webhook(HttpPost),
    Slack(HttpPost),
}

impl Outgoing {
    /// The channel name it goes through (`email`, `webhook`, `slack`).
    pub fn channel(&self) -> &'static str {
        match self {
            Outgoing::Email(_) => "email",
            Outgoing::Webhook(_) => "webhook",
            Outgoing::Slack(_) => "slack",
        }
    }

    /// What went out, in a line: the subject, or the kind of post.
    pub fn summary(&self) -> String {
        match self {
            Outgoing::Email(e) => e.subject.clone(),
            Outgoing::Webhook(p) => format!("signed JSON POST ({} bytes)", p.body.len()),
            Outgoing::Slack(p) => format!("Slack message ({} bytes)", p.body.len()),
        }
    }

    /// The id the receiver sees (Message-ID or `X-Fleet-Delivery`).
    pub fn id(&self) -> &str {
        match self {
            Outgoing::Email(e) => &e.message_id,
            Outgoing::Webhook(p) | Outgoing::Slack(p) => &p.delivery_id,
        }
    }
}

/// Proof that the other side accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: String,
    /// The SMTP reply (`250 ...`) or HTTP status (`200 OK`).
    pub response: String,
}

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: connection refused, timeout, SMTP 4xx, HTTP 429/5xx.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help: SMTP 5xx, HTTP 4xx, a bad address, missing credentials.
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
}

#[async_trait]
pub trait Channel: Send + Sync {
    async fn send(&self, message: &Outgoing) -> Result<Receipt, SendError>;
}

/// The channels available by name, and why the others are not.
#[derive(Clone, Default)]
pub struct Channels {
    by_name: BTreeMap<String, Arc<dyn Channel>>,
    unavailable: BTreeMap<String, String>,
}

impl Channels {
    pub fn insert(&mut self, name: &str, channel: Arc<dyn Channel>) {
        self.unavailable.remove(name);
        self.by_name.insert(name.to_owned(), channel);
    }

    pub fn unavailable(&mut self, name: &str, why: String) {
        self.by_name.remove(name);
        self.unavailable.insert(name.to_owned(), why);
    }

    pub fn get(&self, name: &str) -> Result<Arc<dyn Channel>, String> {
        if let Some(c) = self.by_name.get(name) {
            return Ok(c.clone());
        }
        Err(self
            .unavailable
            .get(name)
            .cloned()
            .unwrap_or_else(|| format!("no `{name}` channel is configured")))
    }
}
