//! Checkpoints on a cadence: besides the one in every decision's
//! transaction, a signed checkpoint of the chain head is appended once the
//! log has grown by `Settings::checkpoint_events` events since the last
//! one, or `Settings::checkpoint_interval` has passed since it and events
//! were appended. Whichever process commits does it, after its commit.
//!
//! Deciding must cost nothing per commit, so nothing is read then: each
//! process keeps the last checkpoint's size and time in memory and counts
//! the events its own commits append, scaled by how fast the log grew
//! relative to that count at the last look (other processes append too).
//! Only when that estimate says a threshold may be crossed (or its own
//! commits added an eighth of the threshold, to keep the scale measured)
//! does it read the head and the latest checkpoint from the store, and then
//! it decides on the exact numbers. Processes racing past a threshold may both write
//! a checkpoint of nearly the same head, which is harmless.

use crate::{Engine, EngineError, attest};
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// The clock checkpoints are timed by; tests move it instead of sleeping.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    pub fn new(now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new(fleet_store::audit::now)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// What this process knows of the last checkpoint and what came since.
#[derive(Debug)]
pub(crate) struct Mark {
    /// Read from the store at least once.
    known: bool,
    /// Events the log had grown by since the last checkpoint at the last look.
    grown: i64,
    /// When the last checkpoint was written (the process's start if none).
    at: Timestamp,
    /// Events this process's commits appended since the last look (estimated).
    own: u64,
    /// The log's growth per event of ours, as last measured (>= 1).
    scale: f64,
    /// The head at the last look.
    head: i64,
}

impl Mark {
    pub(crate) fn new(now: Timestamp) -> Mark {
        Mark {
            known: false,
            grown: 0,
            at: now,
            own: 0,
            scale: 1.0,
            head: 0,
        }
    }
}

/// Whether `at` is at least `every` before `now`.
fn older_than(at: Timestamp, now: Timestamp, every: Duration) -> bool {
    now.as_millisecond().saturating_sub(at.as_millisecond())
        >= i64::try_from(every.as_millis()).unwrap_or(i64::MAX)
}

impl Engine {
    /// Called after every commit of this process with roughly how many
    /// events it appended; in the common case only arithmetic.
    pub(crate) async fn after_commit(&self, appended: u64) {
        let now = self.settings.clock.now();
        let look = {
            let mut m = self.lock_mark();
            m.own += appended;
            let every = self.settings.checkpoint_events;
            // Also a look every eighth of the way, which keeps the scale
            // measured (a commit's events are only estimated).
            !m.known
                || (m.grown as f64 + m.own as f64 * m.scale) >= every as f64
                || m.own >= (every / 8).max(1)
                || older_than(m.at, now, self.settings.checkpoint_interval)
        };
        if look && let Err(e) = self.checkpoint_if_due().await {
            tracing::warn!(error = %e, "could not write a checkpoint of the audit log");
        }
    }

    /// A decision signed a checkpoint of `size` events in its transaction.
    pub(crate) fn checkpoint_written(&self, size: i64, appended: u64) {
        let now = self.settings.clock.now();
        let mut m = self.lock_mark();
        if m.known {
            m.grown = 0;
            m.own = appended;
            m.at = now;
            m.head = m.head.max(size);
        }
    }

    fn lock_mark(&self) -> std::sync::MutexGuard<'_, Mark> {
        self.checkpoint_mark
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the head and the latest checkpoint and appends a signed
    /// checkpoint if one is due (`fleet serve` and `fleet worker` also call
    /// this on a tick, so a quiet log still gets one after activity).
    /// Returns the size checkpointed, if it wrote one.
    pub async fn checkpoint_if_due(&self) -> Result<Option<i64>, EngineError> {
        // One look at a time per process; a look already under way decides.
        let Ok(_looking) = self.checkpoint_looking.try_lock() else {
            return Ok(None);
        };
        let head = self.store.chain_head().await?;
        let last = self
            .store
            .events_of_kind("audit.checkpoint", Some(1))
            .await?;
        let now = self.settings.clock.now();
        let head_seq = head.as_ref().map_or(0, |(s, _)| *s);
        // Counted from the checkpoint's own event, so a checkpoint is never
        // the activity that makes the next one due.
        let (last_seq, last_at) = match last.first() {
            Some(e) => (e.seq, Some(e.at)),
            None => (0, None),
        };
        let grown = head_seq - last_seq;
        let due = {
            let mut m = self.lock_mark();
            if m.known && m.own > 0 {
                let measured = (head_seq - m.head) as f64 / m.own as f64;
                m.scale = measured.clamp(1.0, 1000.0);
            }
            if let Some(at) = last_at {
                m.at = at;
            }
            m.known = true;
            m.own = 0;
            m.head = head_seq;
            m.grown = grown;
            grown > 0
                && (grown >= i64::try_from(self.settings.checkpoint_events).unwrap_or(i64::MAX)
                    || older_than(m.at, now, self.settings.checkpoint_interval))
        };
        if !due {
            return Ok(None);
        }
        self.write_checkpoint().await
    }

    /// `fleet serve` and `fleet worker`: looks every
    /// `checkpoint_interval` and writes a checkpoint if the log grew since
    /// the last one, so a quiet installation still gets one after activity.
    pub async fn checkpoint_ticks(self: Arc<Self>) {
        let every = self
            .settings
            .checkpoint_interval
            .max(Duration::from_secs(1));
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.checkpoint_if_due().await {
                tracing::warn!(error = %e, "could not write a checkpoint of the audit log");
            }
        }
    }

    /// Appends a checkpoint of the current head, signed, now.
    pub async fn write_checkpoint(&self) -> Result<Option<i64>, EngineError> {
        // Read before the key: see `evidence_key`.
        let head = self.store.chain_head().await?;
        let (key, key_event) = self.evidence_key().await?;
        let Some(checkpoint) = attest::checkpoint_event(&key, &head) else {
            return Ok(None);
        };
        let size = head.as_ref().map_or(0, |(s, _)| *s);
        let mut events: Vec<_> = key_event.into_iter().collect();
        let recorded = !events.is_empty();
        events.push(checkpoint);
        let new_head = self.store.append_events(events).await?;
        if recorded {
            self.key_recorded(&key.verifier());
        }
        let now = self.settings.clock.now();
        let mut m = self.lock_mark();
        m.known = true;
        m.grown = 0;
        m.own = 0;
        m.at = now;
        m.head = new_head.map_or(size, |(s, _)| s);
        drop(m);
        tracing::debug!(size, "checkpoint of the audit log written");
        Ok(Some(size))
    }
}
