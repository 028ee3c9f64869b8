//! Email over SMTP with lettre (rustls; no native TLS).

use crate::NotifyError;
use crate::channel::{Channel, Outgoing, Receipt, SendError};
use async_trait::async_trait;
use fleet_core::config::{SmtpConfig, SmtpTls};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one SMTP conversation may take; shorter than a delivery lease.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// True for `localhost` and loopback addresses: the only hosts `tls: none` may use.
fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl SmtpChannel {
    /// Builds the transport. Credentials come only from the environment
    /// variables the config names (`env` looks them up).
    pub fn from_config(
        config: &SmtpConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SmtpChannel, NotifyError> {
        let host = config.host.trim();
        let err = |m: String| NotifyError::Smtp(m);
        let builder = match config.tls {
            SmtpTls::None => {
                if !is_loopback(host) {
                    return Err(err(format!(
                        "`tls: none` is only allowed for a loopback host, not `{host}`"
                    )));
                }
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(config.port.unwrap_or(25))
                    .tls(Tls::None)
            }
            SmtpTls::Starttls | SmtpTls::Implicit => {
                install_crypto_provider();
                let params = TlsParameters::new(host.to_owned())
                    .map_err(|e| err(format!("TLS setup for `{host}`: {e}")))?;
                let (tls, port) = if config.tls == SmtpTls::Starttls {
                    (Tls::Required(params), 587)
                } else {
                    (Tls::Wrapper(params), 465)
                };
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(config.port.unwrap_or(port))
                    .tls(tls)
            }
        };
        let lookup = |field: &str, name: &Option<String>| -> Result<Option<String>, NotifyError> {
            match name {
                None => Ok(None),
                Some(var) => env(var).filter(|v| !v.is_empty()).map(Some).ok_or_else(|| {
                    err(format!(
                        "`{field}` names the environment variable {var}, which is not set"
                    ))
                }),
            }
        };
        let user = lookup("username_env", &config.username_env)?;
        let password = lookup("password_env", &config.password_env)?;
        let builder = match (user, password) {
            (Some(u), Some(p)) => builder.credentials(Credentials::new(u, p)),
            (None, None) => builder,
            _ => {
                return Err(err(
                    "set both `username_env` and `password_env`, or neither".into(),
                ));
            }
        };
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| err(format!("`from: {}` is not a mailbox: {e}", config.from)))?;
        Ok(SmtpChannel {
            transport: builder.timeout(Some(SMTP_TIMEOUT)).build(),
            from,
        })
    }

    /// The From address's domain, for Message-IDs.
    pub fn domain(&self) -> &str {
        self.from.email.domain()
    }
}

/// reqwest and lettre are built without a bundled provider choice; ring it is.
pub(crate) fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let text = e.to_string();
    if e.is_permanent() {
        SendError::Permanent(format!("the SMTP server refused the message: {text}"))
    } else {
        // 4xx, connection refused, timeouts, TLS hiccups: try again later.
        SendError::Transient(format!("SMTP: {text}"))
    }
}

#[async_trait]
impl Channel for SmtpChannel {
    async fn send(&self, message: &Outgoing) -> Result<Receipt, SendError> {
        let Outgoing::Email(email) = message else {
            return Err(SendError::Permanent(format!(
                "the SMTP channel cannot send a {} message",
                message.channel()
            )));
        };
        let to: Mailbox = email.to.parse().map_err(|e| {
            SendError::Permanent(format!("`{}` is not an email address: {e}", email.to))
        })?;
        let built = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(email.message_id.clone()))
            .user_agent(format!("fleet/{}", env!("CARGO_PKG_VERSION")))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))?;
        let response = self.transport.send(built).await.map_err(|e| classify(&e))?;
        let reply: Vec<&str> = response.message().collect();
        Ok(Receipt {
            message_id: email.message_id.clone(),
            response: format!("{} {}", response.code(), reply.join(" "))
                .trim()
                .to_owned(),
        })
    }
}
