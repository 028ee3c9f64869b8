//! Checking the audit log against signed checkpoints: the ones stored in
//! the log (`audit.checkpoint` events, one per decision) and one somebody
//! kept elsewhere (`fleet audit verify --checkpoint FILE`). The chain check
//! proves the log is internally consistent; a checkpoint proves it is still
//! the log that was signed, so truncation and a rewrite with recomputed
//! hashes show.

use fleet_evidence::{Checkpoint, Verifier};
use fleet_store::AuditEvent;

/// What the checkpoints said.
#[derive(Debug, Default)]
pub struct Findings {
    /// Checkpoints whose event is in the log with the signed hash.
    pub matched: usize,
    /// The first problem, naming the events concerned.
    pub problem: Option<String>,
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
    pub fn check(&self, cp: &Checkpoint, signer: &Verifier, known_good: i64) -> Result<(), String> {
        let size = i64::try_from(cp.size).unwrap_or(i64::MAX);
        let by = format!(
            "checkpoint of {} events signed by key {}",
            cp.size,
            signer.key_id()
        );
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

/// Every `audit.checkpoint` event's note, checked against the log.
pub fn check_stored(events: &[AuditEvent], log: &Log, trusted: &[Verifier]) -> Findings {
    let mut findings = Findings::default();
    let mut good = 0i64;
    for e in events.iter().filter(|e| e.kind == "audit.checkpoint") {
        let note = e.payload["note"].as_str().unwrap_or_default();
        let opened = Checkpoint::open(note, trusted);
        let result = match &opened {
            Ok((cp, signer)) => log.check(cp, signer, good).map(|()| cp.size),
            Err(why) => Err(format!("the checkpoint in event {}: {why}", e.seq)),
        };
        match result {
            Ok(size) => {
                findings.matched += 1;
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
pub fn confirmed_prefix(events: &[AuditEvent], log: &Log, trusted: &[Verifier]) -> i64 {
    events
        .iter()
        .filter(|e| e.kind == "audit.checkpoint")
        .filter_map(|e| Checkpoint::open(e.payload["note"].as_str()?, trusted).ok())
        .filter(|(cp, signer)| log.check(cp, signer, 0).is_ok())
        .map(|(cp, _)| i64::try_from(cp.size).unwrap_or(0))
        .max()
        .unwrap_or(0)
}
