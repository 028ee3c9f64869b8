//! Checking the audit log against signed checkpoints: the ones stored in
//! the log (`audit.checkpoint` events: one per decision, others on a cadence) and one somebody
//! kept elsewhere (`fleet audit verify --checkpoint FILE`). The chain check
//! proves the log is internally consistent; a checkpoint proves it is still
//! the log that was signed, so truncation and a rewrite with recomputed
//! hashes show.

use fleet_evidence::{Checkpoint, KeyRing};
use fleet_store::AuditEvent;
use std::collections::BTreeMap;

/// What the checkpoints said.
#[derive(Debug, Default)]
pub struct Findings {
    /// Checkpoints whose event is in the log with the signed hash.
    pub matched: usize,
    /// The first problem, naming the events concerned.
    pub problem: Option<String>,
    /// Per signing key (`NAME+KEYID`): its status and the events holding
    /// the checkpoints it signed that matched.
    pub by_key: BTreeMap<String, (String, Vec<i64>)>,
}

/// `(seq, hash)` of every event, in order (seq 1, 2, ... when intact).
pub struct Log {
    hashes: Vec<(i64, String)>,
}

impl Log {
    pub fn new(events: &[AuditEvent]) -> Log {
        Log {
            hashes: events.iter().map(|e| (e.seq, e.hash.clone())).collect(),
        }
    }

    fn last(&self) -> i64 {
        self.hashes.last().map_or(0, |(s, _)| *s)
    }

    fn hash_of(&self, seq: i64) -> Option<&str> {
        self.hashes
            .binary_search_by_key(&seq, |(s, _)| *s)
            .ok()
            .map(|i| self.hashes[i].1.as_str())
    }

    /// Whether `cp` still holds: its event is in the log with its hash.
    /// Otherwise, what is wrong, with `known_good` (the largest event count
    /// another checkpoint confirmed) narrowing where the change is.
    pub fn check(&self, cp: &Checkpoint, signer: &str, known_good: i64) -> Result<(), String> {
        let size = i64::try_from(cp.size).unwrap_or(i64::MAX);
        let by = format!("checkpoint of {} events signed by key {signer}", cp.size);
        if size == 0 {
            return Ok(());
        }
        if size > self.last() {
            return Err(format!(
                "the log was truncated: the {by} covers events 1..{size}, but the log ends at event {}; event {} is the first missing",
                self.last(),
                self.last() + 1
            ));
        }
        match self.hash_of(size) {
            None => Err(format!(
                "event {size} is missing, though the {by} covers it"
            )),
            Some(hash) if hash == cp.head => Ok(()),
            Some(hash) => Err(format!(
                "the log was rewritten: event {size} now hashes to {hash}, but the {by} says {}; the change is in events {}..{size}",
                cp.head,
                known_good + 1
            )),
        }
    }
}

/// Every `audit.checkpoint` event's note, checked against the log with
/// the keys of `ring` (a retired key only for events before its retirement).
pub fn check_stored(events: &[AuditEvent], log: &Log, ring: &KeyRing) -> Findings {
    let mut findings = Findings::default();
    let mut good = 0i64;
    for e in events.iter().filter(|e| e.kind == "audit.checkpoint") {
        let note = e.payload["note"].as_str().unwrap_or_default();
        let result = match ring.open_checkpoint(note) {
            Ok((cp, signer)) => log
                .check(&cp, &signer.label(), good)
                .map(|()| (cp.size, signer)),
            Err(why) => Err(format!("the checkpoint in event {}: {why}", e.seq)),
        };
        match result {
            Ok((size, signer)) => {
                findings.matched += 1;
                findings
                    .by_key
                    .entry(signer.label())
                    .or_insert_with(|| (signer.status(), Vec::new()))
                    .1
                    .push(e.seq);
                good = good.max(i64::try_from(size).unwrap_or(0));
            }
            Err(why) => {
                findings.problem.get_or_insert(why);
            }
        }
    }
    findings
}

/// The largest event count a stored checkpoint confirms (0: none).
pub fn confirmed_prefix(events: &[AuditEvent], log: &Log, ring: &KeyRing) -> i64 {
    events
        .iter()
        .filter(|e| e.kind == "audit.checkpoint")
        .filter_map(|e| ring.open_checkpoint(e.payload["note"].as_str()?).ok())
        .filter(|(cp, signer)| log.check(cp, &signer.label(), 0).is_ok())
        .map(|(cp, _)| i64::try_from(cp.size).unwrap_or(0))
        .max()
        .unwrap_or(0)
}
