//! Signed JSON webhooks and Slack-compatible incoming webhooks (reqwest, rustls).
//!
//! Signature: `X-Fleet-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`
//! with the Unix time in `X-Fleet-Timestamp`. Covering the timestamp lets a
//! receiver refuse replays of an old body; [`verify_signature`] is what a
//! receiver runs.

use crate::NotifyError;
use crate::channel::{Channel, HttpPost, Outgoing, Receipt, SendError};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "X-Fleet-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Fleet-Timestamp";
pub const DELIVERY_HEADER: &str = "X-Fleet-Delivery";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Fleet-Signature` value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a received signature in constant time.
pub fn verify_signature(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let (Ok(ts), Some(hex_tag)) = (
        timestamp.trim().parse::<i64>(),
        signature.trim().strip_prefix("sha256="),
    ) else {
        return false;
    };
    match hex::decode(hex_tag) {
        Ok(tag) => mac(secret, ts, body).verify_slice(&tag).is_ok(),
        Err(_) => false,
    }
}

/// An HTTP client built on first use: building one loads the system's root
/// certificates (milliseconds), which every `fleet` command would otherwise
/// pay for whether or not it ever posts anything.
struct LazyClient {
    timeout: Duration,
    client: std::sync::OnceLock<reqwest::Client>,
}

impl LazyClient {
    fn new(timeout: Option<Duration>) -> LazyClient {
        LazyClient {
            timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
            client: std::sync::OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&reqwest::Client, SendError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        crate::smtp::install_crypto_provider();
        let built = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(concat!("fleet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(self.client.get_or_init(|| built))
    }
}

async fn post(
    client: &reqwest::Client,
    p: &HttpPost,
    headers: &[(&str, String)],
) -> Result<Receipt, SendError> {
    let mut req = client
        .post(&p.url)
        .header("Content-Type", "application/json")
        .header(DELIVERY_HEADER, &p.delivery_id)
        .body(p.body.clone());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let label = crate::url_label(&p.url);
    let resp = req.send().await.map_err(|e| {
        // The URL may hold a secret (Slack's do): name only its host.
        let e = e.without_url();
        // Connection errors and timeouts may clear up; a URL that cannot be
        // requested at all (builder error) will not.
        if e.is_builder() {
            SendError::Permanent(format!("POST {label}: {e}"))
        } else {
            SendError::Transient(format!("POST {label}: {e}"))
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(Receipt {
            message_id: p.delivery_id.clone(),
            response: format!("HTTP {status}"),
        });
    }
    let text = format!("POST {label}: HTTP {status}");
    if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
        Err(SendError::Transient(text))
    } else {
        Err(SendError::Permanent(text))
    }
}

/// Signed JSON POSTs.
pub struct WebhookChannel {
    client: LazyClient,
    secret: Vec<u8>,
}

impl WebhookChannel {
    pub fn new(secret: Vec<u8>, timeout: Option<Duration>) -> Result<WebhookChannel, NotifyError> {
        if secret.is_empty() {
            return Err(NotifyError::Webhook("the signing secret is empty".into()));
        }
        Ok(WebhookChannel {
            client: LazyClient::new(timeout),
            secret,
        })
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    async fn send(&self, message: &Outgoing) -> Result<Receipt, SendError> {
        let Outgoing::Webhook(p) = message else {
            return Err(SendError::Permanent(format!(
                "the webhook channel cannot send a {} message",
                message.channel()
            )));
        };
        let ts = jiff::Timestamp::now().as_second();
        let headers = [
            (TIMESTAMP_HEADER, ts.to_string()),
            (SIGNATURE_HEADER, sign(&self.secret, ts, &p.body)),
        ];
        post(self.client.get()?, p, &headers).await
    }
}

/// Slack-compatible incoming webhooks (`{"text": ...}`); the URL is the credential.
pub struct SlackChannel {
    client: LazyClient,
}

impl SlackChannel {
    pub fn new(timeout: Option<Duration>) -> Result<SlackChannel, NotifyError> {
        Ok(SlackChannel {
            client: LazyClient::new(timeout),
        })
    }
}

#[async_trait]
impl Channel for SlackChannel {
    async fn send(&self, message: &Outgoing) -> Result<Receipt, SendError> {
        let Outgoing::Slack(p) = message else {
            return Err(SendError::Permanent(format!(
                "the slack channel cannot send a {} message",
                message.channel()
            )));
        };
        post(self.client.get()?, p, &[]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_binds_secret_timestamp_and_body() {
        let sig = sign(b"s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("sha256="));
        assert!(verify_signature(
            b"s3cret",
            "1700000000",
            b"{\"a\":1}",
            &sig
        ));
        assert!(!verify_signature(
            b"other",
            "1700000000",
            b"{\"a\":1}",
            &sig
        ));
        assert!(!verify_signature(
            b"s3cret",
            "1700000001",
            b"{\"a\":1}",
            &sig
        ));
        assert!(!verify_signature(
            b"s3cret",
            "1700000000",
            b"{\"a\":2}",
            &sig
        ));
        assert!(!verify_signature(b"s3cret", "x", b"{\"a\":1}", &sig));
        assert!(!verify_signature(
            b"s3cret",
            "1700000000",
            b"{\"a\":1}",
            "sha256=zz"
        ));
    }
}
