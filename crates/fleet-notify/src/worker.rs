//! The delivery worker: claim due outbox rows, compose, send, record.

use crate::channel::{Channel, Channels};
use crate::compose::{ComposeError, Composed, compose};
use crate::smtp::SmtpChannel;
use crate::templates::Templates;
use crate::webhook::{SlackChannel, WebhookChannel};
use crate::{ApproverLinks, NotifyError};
use fleet_core::config::{Config, StepKind};
use fleet_core::run::StepStatus;
use fleet_store::{
    Delivery, DeliveryOutcome, DeliveryPurpose, DeliveryScope, DeliveryStatus, NewDelivery,
    RunRecord, Store,
};
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// Store failures in a row a notify step's delivery loop rides out (waiting
/// 0.2 s, 0.4 s, ... 12.8 s: about 25 s in all) before failing the step.
const STEP_STORE_RETRIES: u32 = 7;

/// Retries and leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Attempts before a transiently failing delivery gives up.
    pub max_attempts: u32,
    /// Wait after the first failure; doubles after each further one.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a claimed delivery stays ours; longer than one send can take
    /// (SMTP times out after 30 s), else a slow send could be claimed twice.
    pub lease: Duration,
    /// Deliveries claimed per pass.
    pub batch: u32,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            max_attempts: 5,
            first_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(600),
            lease: Duration::from_secs(120),
            batch: 32,
        }
    }
}

impl DeliveryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub sent: u32,
    pub retrying: u32,
    pub failed: u32,
    pub skipped: u32,
    /// One line per delivery that did not go out this pass.
    pub problems: Vec<String>,
}

impl PassReport {
    pub fn is_empty(&self) -> bool {
        self.sent + self.retrying + self.failed + self.skipped == 0
    }
}

/// Sends what the outbox holds.
pub struct Notifier {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: Arc<Config>,
    pub(crate) templates: Result<Templates, String>,
    pub(crate) links: Option<Arc<dyn ApproverLinks>>,
    pub(crate) domain: String,
    channels: Channels,
    policy: DeliveryPolicy,
    owner: String,
    pause_after: Option<String>,
    on_outcome: Option<OutcomeHook>,
}

/// Told (channel, outcome) after each delivery attempt is recorded; the
/// outcome is `sent`, `retrying`, `failed` or `skipped`. The engine counts
/// them for `/metrics`.
pub type OutcomeHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

impl Notifier {
    /// Channels come from `config.notify` (credentials and the webhook
    /// secret from the environment variables it names). A channel that
    /// cannot be built is recorded with why: only deliveries through it
    /// fail, with that reason.
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        links: Option<Arc<dyn ApproverLinks>>,
        policy: DeliveryPolicy,
        owner: String,
    ) -> Notifier {
        let env = |name: &str| std::env::var(name).ok();
        let mut channels = Channels::default();
        let mut domain = "fleet.invalid".to_owned();
        match &config.notify.smtp {
            Some(smtp) => match SmtpChannel::from_config(smtp, &env) {
                Ok(c) => {
                    domain = c.domain().to_owned();
                    channels.insert("email", Arc::new(c));
                }
                Err(e) => channels.unavailable("email", e.to_string()),
            },
            None => channels.unavailable("email", "no `notify.smtp` is configured".into()),
        }
        let webhook = config.notify.webhook.as_ref();
        let timeout = webhook.and_then(|w| w.timeout).map(|t| t.as_std());
        match webhook.and_then(|w| w.secret_env.as_deref()) {
            Some(var) => match env(var).filter(|v| !v.is_empty()) {
                Some(secret) => match WebhookChannel::new(secret.into_bytes(), timeout) {
                    Ok(c) => channels.insert("webhook", Arc::new(c)),
                    Err(e) => channels.unavailable("webhook", e.to_string()),
                },
                None => channels.unavailable(
                    "webhook",
                    format!("notify.webhook.secret_env names the environment variable {var}, which is not set"),
                ),
            },
            None => channels.unavailable(
                "webhook",
                "webhooks are signed: set `notify.webhook.secret_env`".into(),
            ),
        }
        match SlackChannel::new(timeout) {
            Ok(c) => channels.insert("slack", Arc::new(c)),
            Err(e) => channels.unavailable("slack", e.to_string()),
        }
        let templates = Templates::new(&config.notify.templates).map_err(|e| e.to_string());
        Notifier {
            store,
            config,
            templates,
            links,
            domain,
            channels,
            policy,
            owner,
            pause_after: None,
            on_outcome: None,
        }
    }

    /// Replaces a channel (tests use an instrumented one).
    pub fn with_channel(mut self, name: &str, channel: Arc<dyn Channel>) -> Notifier {
        self.channels.insert(name, channel);
        self
    }

    /// Crash-test hook (`FLEET_FAULT=pause-after:<point>`): after
    /// `delivery_claimed`, `delivery_accepted` (the server took the message,
    /// `sent` is not committed yet) or `delivery_sent` (committed), the
    /// process says so on stderr and freezes until killed.
    pub fn with_pause_after(mut self, point: Option<String>) -> Notifier {
        self.pause_after = point;
        self
    }

    pub fn with_outcome_hook(mut self, hook: OutcomeHook) -> Notifier {
        self.on_outcome = Some(hook);
        self
    }

    /// A configured channel by name (`webhook`, ...), or why it is unavailable;
    /// publish steps post through it so they are signed the same way.
    pub fn channel(&self, name: &str) -> Result<Arc<dyn Channel>, String> {
        self.channels.get(name)
    }

    pub fn policy(&self) -> &DeliveryPolicy {
        &self.policy
    }

    fn pause(&self, point: &str) {
        if cfg!(feature = "fault-injection") && self.pause_after.as_deref() == Some(point) {
            eprintln!("fault injection: paused after {point}");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }

    /// One pass: claims what is due in `scope` and tries each once.
    pub async fn deliver_due(&self, scope: &DeliveryScope) -> Result<PassReport, NotifyError> {
        let claimed = self
            .store
            .claim_deliveries(scope, &self.owner, self.policy.lease, self.policy.batch)
            .await?;
        if !claimed.is_empty() {
            self.pause("delivery_claimed");
        }
        let mut report = PassReport::default();
        for d in claimed {
            let outcome = self.attempt(&d).await;
            let line = |what: &str| format!("{} to {}: {what}", d.purpose.as_key(), d.label);
            let sent = matches!(outcome, DeliveryOutcome::Sent { .. });
            let status = match &outcome {
                DeliveryOutcome::Sent { .. } => {
                    report.sent += 1;
                    "sent"
                }
                DeliveryOutcome::Retry { error, at } => {
                    report.retrying += 1;
                    report
                        .problems
                        .push(line(&format!("{error} (retrying at {at})")));
                    "retrying"
                }
                DeliveryOutcome::GaveUp { error } => {
                    report.failed += 1;
                    report.problems.push(line(error));
                    "failed"
                }
                DeliveryOutcome::Skipped { .. } => {
                    report.skipped += 1;
                    "skipped"
                }
            };
            let error = match &outcome {
                DeliveryOutcome::Retry { error, .. } | DeliveryOutcome::GaveUp { error } => {
                    Some(error.clone())
                }
                _ => None,
            };
            self.store
                .finish_delivery(d.id, &self.owner, outcome)
                .await?;
            if let Some(hook) = &self.on_outcome {
                hook(&d.channel, status);
            }
            // The label names a mailbox or a URL's host, never a whole URL.
            match error {
                Some(error) => tracing::warn!(
                    run = %d.run_id, step = %d.step, channel = %d.channel,
                    purpose = %d.purpose.as_key(), to = %d.label, status, error = %error,
                    "delivery"
                ),
                None => tracing::info!(
                    run = %d.run_id, step = %d.step, channel = %d.channel,
                    purpose = %d.purpose.as_key(), to = %d.label, status, "delivery"
                ),
            }
            if sent {
                self.pause("delivery_sent");
            }
        }
        Ok(report)
    }

    async fn attempt(&self, d: &Delivery) -> DeliveryOutcome {
        let message = match compose(self, d).await {
            Ok(Composed::Send(m)) => m,
            Ok(Composed::Skip(reason)) => return DeliveryOutcome::Skipped { reason },
            // A store that could not be read is retried like a transient
            // send failure (found by bench/faults: a PostgreSQL connection
            // terminated while composing gave the approval email up).
            Err(ComposeError::Store(error)) if d.attempts < self.policy.max_attempts => {
                return DeliveryOutcome::Retry {
                    at: self.retry_at(d.attempts),
                    error,
                };
            }
            Err(ComposeError::Store(error)) => {
                return DeliveryOutcome::GaveUp {
                    error: format!("gave up after {} attempts: {error}", d.attempts),
                };
            }
            // A template or data problem does not fix itself by waiting.
            Err(ComposeError::Data(error)) => return DeliveryOutcome::GaveUp { error },
        };
        let channel = match self.channels.get(message.channel()) {
            Ok(c) => c,
            Err(error) => return DeliveryOutcome::GaveUp { error },
        };
        match channel.send(&message).await {
            Ok(receipt) => {
                self.pause("delivery_accepted");
                DeliveryOutcome::Sent {
                    message_id: receipt.message_id,
                    response: receipt.response,
                    summary: message.summary(),
                }
            }
            Err(e) if e.is_transient() && d.attempts < self.policy.max_attempts => {
                DeliveryOutcome::Retry {
                    error: e.to_string(),
                    at: self.retry_at(d.attempts),
                }
            }
            Err(e) if e.is_transient() => DeliveryOutcome::GaveUp {
                error: format!("gave up after {} attempts: {e}", d.attempts),
            },
            Err(e) => DeliveryOutcome::GaveUp {
                error: e.to_string(),
            },
        }
    }

    /// When to try again after failed attempt number `attempts`.
    fn retry_at(&self, attempts: u32) -> Timestamp {
        jiff::SignedDuration::try_from(self.policy.backoff(attempts))
            .ok()
            .and_then(|w| Timestamp::now().checked_add(w).ok())
            .unwrap_or_else(Timestamp::now)
    }

    /// Delivers the announcements of notify step `step` (round `round`) of
    /// a run, retrying with backoff, until each is sent or skipped (Ok, in
    /// queue order) or one has given up (Err, naming each failure).
    pub async fn deliver_step(
        &self,
        run_id: &str,
        step: &str,
        round: u32,
    ) -> Result<Vec<Delivery>, String> {
        let scope = DeliveryScope {
            run_id: Some(run_id.to_owned()),
            step: Some(step.to_owned()),
        };
        let mine = |all: Vec<Delivery>| -> Vec<Delivery> {
            all.into_iter()
                .filter(|d| {
                    d.step == step && d.round == round && d.purpose == DeliveryPurpose::Announce
                })
                .collect()
        };
        // A step with nothing queued (only its file to write) needs no claim,
        // which is a write transaction.
        // (A failed read goes on to the loop below, which retries it.)
        if let Ok(queued) = self.store.deliveries(run_id).await
            && mine(queued).is_empty()
        {
            return Ok(Vec::new());
        }
        let mut store_failures = 0u32;
        loop {
            let pass = async {
                self.deliver_due(&scope)
                    .await
                    .map_err(|e| format!("delivery: {e}"))?;
                self.store
                    .deliveries(run_id)
                    .await
                    .map_err(|e| format!("cannot read the outbox: {e}"))
            }
            .await;
            // A store that failed for a moment (a dropped connection) must
            // not fail a step that runs behind a Go: the deliveries stay
            // queued, so try again (found by bench/faults).
            let all = match pass {
                Ok(all) => {
                    store_failures = 0;
                    all
                }
                Err(e) if store_failures < STEP_STORE_RETRIES => {
                    store_failures += 1;
                    tracing::warn!(run = %run_id, step, error = %e, attempt = store_failures,
                        "announcing: the store failed; trying again");
                    tokio::time::sleep(Duration::from_millis(100 << store_failures)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mine = mine(all);
            if mine.iter().all(|d| d.status.is_final()) {
                let failed: Vec<String> = mine
                    .iter()
                    .filter(|d| d.status == DeliveryStatus::Failed)
                    .map(|d| {
                        format!(
                            "{} to {}: {}",
                            d.channel,
                            d.label,
                            d.last_error.as_deref().unwrap_or("failed")
                        )
                    })
                    .collect();
                if failed.is_empty() {
                    return Ok(mine);
                }
                let sent = mine
                    .iter()
                    .filter(|d| d.status == DeliveryStatus::Sent)
                    .count();
                return Err(format!(
                    "{} of {} deliveries failed ({sent} sent): {}",
                    failed.len(),
                    mine.len(),
                    failed.join("; ")
                ));
            }
            // Sleep until the earliest retry is due (or a dead sender's lease lapses).
            let now = Timestamp::now();
            let next = mine
                .iter()
                .filter(|d| d.status == DeliveryStatus::Pending)
                .map(|d| d.next_attempt_at)
                .min()
                .and_then(|t| now.until(t).ok())
                .and_then(|span| span.total(jiff::Unit::Millisecond).ok())
                .map(|ms| Duration::from_millis(ms.max(0.0) as u64))
                .unwrap_or(Duration::from_millis(500));
            tokio::time::sleep(next.clamp(Duration::from_millis(20), Duration::from_secs(5))).await;
        }
    }

    /// Queues the reminder that is due now for each waiting gate of `run`
    /// with `remind_every` (reminder n is due n periods after the approval
    /// emails were queued; missed ones are not sent in a burst). Reminders
    /// only ask; nothing here touches the run's state.
    pub async fn queue_reminders(&self, run: &RunRecord) -> Result<u64, NotifyError> {
        if self.config.notify.smtp.is_none() {
            return Ok(0);
        }
        let existing = self.store.deliveries(&run.id).await?;
        let now = Timestamp::now();
        let mut due = Vec::new();
        for (i, step) in run.definition.steps.iter().enumerate() {
            let (Some(every), StepKind::Approval) = (step.remind_every, step.kind) else {
                continue;
            };
            let state = &run.state.steps[i];
            if state.status != StepStatus::Waiting || every.0 == 0 {
                continue;
            }
            let opened = existing
                .iter()
                .filter(|d| {
                    d.step == step.name
                        && d.round == state.attempt
                        && d.purpose == DeliveryPurpose::Approval
                })
                .map(|d| d.created_at)
                .min();
            let Some(opened) = opened else { continue };
            let waited = now.as_millisecond().saturating_sub(opened.as_millisecond());
            let n = u32::try_from(waited.max(0) as u64 / every.0).unwrap_or(u32::MAX);
            if n == 0 {
                continue;
            }
            for a in &step.approvers {
                due.push(NewDelivery {
                    run_id: run.id.clone(),
                    step: step.name.clone(),
                    round: state.attempt,
                    purpose: DeliveryPurpose::Reminder(n),
                    channel: "email".into(),
                    recipient: a.trim().to_owned(),
                    label: a.trim().to_owned(),
                    payload: serde_json::json!({}),
                });
            }
        }
        if due.is_empty() {
            return Ok(0);
        }
        Ok(self.store.enqueue_deliveries(due).await?)
    }
}

impl Notifier {
    /// Queues an email to `approver` with a fresh decision link for gate
    /// `idx` of `run`, in the gate's current round; returns its number
    /// among such requests. Refused without an SMTP channel or a public
    /// URL to link to: the link must reach the approver's inbox.
    pub async fn queue_requested_link(
        &self,
        run: &RunRecord,
        idx: usize,
        approver: &str,
    ) -> Result<u32, NotifyError> {
        if self.config.notify.smtp.is_none() || self.links.is_none() {
            return Err(NotifyError::Unavailable(
                "decision links are emailed, and this installation has no `notify.smtp` or no `server.public_url`".into(),
            ));
        }
        let step = &run.definition.steps[idx];
        let round = run.state.steps[idx].attempt;
        let asked = self
            .store
            .deliveries(&run.id)
            .await?
            .iter()
            .filter(|d| d.step == step.name && d.round == round && d.recipient == approver)
            .filter_map(|d| match d.purpose {
                DeliveryPurpose::Requested(n) => Some(n),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let n = asked.saturating_add(1);
        self.store
            .enqueue_deliveries(vec![NewDelivery {
                run_id: run.id.clone(),
                step: step.name.clone(),
                round,
                purpose: DeliveryPurpose::Requested(n),
                channel: "email".into(),
                recipient: approver.to_owned(),
                label: approver.to_owned(),
                payload: serde_json::json!({}),
            }])
            .await?;
        Ok(n)
    }
}

/// The deliveries section of a notify step's `out`: exactly what went to
/// whom, when, and what accepted it.
pub fn sent_report(deliveries: &[Delivery]) -> String {
    let mut text = String::from(
        "| channel | recipient | status | at | message id | accepted with |\n|---|---|---|---|---|---|\n",
    );
    for d in deliveries {
        let cell = |s: Option<&str>| s.unwrap_or("-").replace('|', "\\|");
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            d.channel,
            cell(Some(&d.label)),
            d.status.as_str(),
            d.finished_at
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            cell(d.message_id.as_deref()),
            cell(d.response.as_deref().or(d.last_error.as_deref())),
        ));
    }
    text
}
