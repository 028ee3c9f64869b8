//! The installation's signing keys: the current key (re-read when its file
//! changes, so a rotation reaches running servers and workers), the log's
//! record of every key (`audit.key` events: the chain itself vouches for
//! the list), and rotation.

use crate::{Engine, EngineError, attest};
use fleet_evidence::{KeyRing, SigningKey, Verifier};
use fleet_store::{AuditEvent, NewEvent};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The kind of the events that record a key (`status`: `current` when
/// first used, `retired` when rotated out).
pub const KEY_EVENT: &str = "audit.key";

/// What identifies a key file's content without reading it: a rotation
/// renames a new file into place, which changes the inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

/// The key this process signs with, and whether the log lists it.
pub(crate) struct KeySlot {
    key: Arc<SigningKey>,
    stamp: Option<FileStamp>,
    recorded: bool,
}

/// The `audit.key` event recording `key` with `status`.
pub fn key_event(key: &Verifier, status: &str, successor: Option<&Verifier>) -> NewEvent {
    let mut payload = json!({"key": key.vkey(), "keyid": key.key_id(), "status": status});
    if let Some(next) = successor {
        payload["successor"] = next.vkey().into();
    }
    NewEvent {
        kind: KEY_EVENT.into(),
        payload,
    }
}

/// The keys `audit.key` events list, in the order the log recorded them.
/// A malformed record is skipped (`fleet audit verify` checks the chain
/// that holds it).
pub fn ring_from_events(events: &[AuditEvent]) -> KeyRing {
    let mut ring = KeyRing::default();
    for e in events.iter().filter(|e| e.kind == KEY_EVENT) {
        let Some(v) = e.payload["key"]
            .as_str()
            .and_then(|k| Verifier::parse(k).ok())
        else {
            continue;
        };
        if e.payload["status"] == "retired" {
            ring.retire(v, e.seq, fleet_store::audit::format_time(e.at));
        } else {
            ring.add(v, e.seq);
        }
    }
    ring
}

/// `path` with `suffix` added to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// What `fleet audit rotate-key` did.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub retired: Verifier,
    pub current: Verifier,
    /// The retiring `audit.key` event's seq: the old key vouches only for
    /// events before it.
    pub retired_at: i64,
    /// A rotation interrupted earlier was finished rather than a new one made.
    pub resumed: bool,
}

impl Engine {
    /// The current signing key, loaded (or created) on first use and
    /// loaded again whenever its file changed (a rotation by another
    /// process).
    pub fn signing_key(&self) -> Result<Arc<SigningKey>, EngineError> {
        Ok(self.key_slot()?.0)
    }

    /// The key and whether the log is known to list it.
    fn key_slot(&self) -> Result<(Arc<SigningKey>, bool), EngineError> {
        let path = &self.settings.signing_key_file;
        let now = stamp(path);
        let mut slot = self
            .signing_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = slot.as_ref().filter(|s| s.stamp == now && now.is_some()) {
            return Ok((s.key.clone(), s.recorded));
        }
        let key = Arc::new(
            SigningKey::load_or_create(path, attest::KEY_NAME)
                .map_err(|e| EngineError::Signing(e.to_string()))?,
        );
        let recorded = slot
            .as_ref()
            .is_some_and(|s| s.recorded && s.key.verifier() == key.verifier());
        *slot = Some(KeySlot {
            key: key.clone(),
            stamp: stamp(path),
            recorded,
        });
        Ok((key, recorded))
    }

    /// The key to sign evidence with now, and the `audit.key` event to
    /// commit with that evidence when the log does not list the key yet
    /// (so a store always knows every key that signed its evidence). Call
    /// after reading the chain head the evidence binds to: a rotation
    /// renames the new key into place before it records the retirement,
    /// so a head at or past the retirement is always signed by the new key.
    pub(crate) async fn evidence_key(
        &self,
    ) -> Result<(Arc<SigningKey>, Option<NewEvent>), EngineError> {
        let (key, recorded) = self.key_slot()?;
        if recorded {
            return Ok((key, None));
        }
        let listed = ring_from_events(&self.store.events_of_kind(KEY_EVENT, None).await?)
            .keys()
            .iter()
            .any(|k| k.verifier == key.verifier());
        if listed {
            self.key_recorded(&key.verifier());
            return Ok((key, None));
        }
        let event = key_event(&key.verifier(), "current", None);
        Ok((key, Some(event)))
    }

    /// The log now lists `key` (its `audit.key` event committed).
    pub(crate) fn key_recorded(&self, key: &Verifier) {
        let mut slot = self
            .signing_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = slot.as_mut().filter(|s| &s.key.verifier() == key) {
            s.recorded = true;
        }
    }

    /// Every key the log lists, current and retired, plus this
    /// installation's key file if it is not recorded yet (read fresh).
    pub async fn key_ring(&self) -> Result<KeyRing, EngineError> {
        let mut ring = ring_from_events(&self.store.events_of_kind(KEY_EVENT, None).await?);
        if self.settings.signing_key_file.exists() {
            ring.add(self.signing_key()?.verifier(), 0);
        }
        let ring = ring;
        *self
            .key_ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(ring.clone()));
        Ok(ring)
    }

    /// The key ring as last read, read again only when it does not know
    /// `key_id` (the run page checks every attestation it shows, and keys
    /// change rarely).
    pub async fn known_keys(&self, key_id: &str) -> Result<Arc<KeyRing>, EngineError> {
        let cached = self
            .key_ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match cached {
            Some(ring) if ring.by_id(key_id).is_some() => Ok(ring),
            _ => Ok(Arc::new(self.key_ring().await?)),
        }
    }

    /// Makes a new key current and retires the old one: the new key file
    /// is written beside the old (`.next`, 0600), the old file hard-linked
    /// to `.retiring`, the new one renamed over the key file (so a key file
    /// always exists), then the retirement and the new key are recorded in
    /// the log in one transaction, and only then is `.retiring` removed. A
    /// rotation interrupted at any point is finished by running it again.
    ///
    /// The old private key is deleted, not kept: a retired key never signs
    /// again, and the log's record of its public key is all old evidence
    /// needs, so a kept copy would only be something more to steal.
    pub async fn rotate_key(&self) -> Result<Rotation, EngineError> {
        let path = self.settings.signing_key_file.clone();
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |source| EngineError::Io { path: p, source }
        };
        let signing = |e: fleet_evidence::EvidenceError| EngineError::Signing(e.to_string());
        let retiring = beside(&path, ".retiring");
        let next = beside(&path, ".next");
        let mut resumed = retiring.exists();
        if resumed
            && SigningKey::load(&retiring).map_err(signing)?.verifier()
                == SigningKey::load(&path).map_err(signing)?.verifier()
        {
            // Stopped after the link, before the new key was renamed in:
            // nothing was recorded, start over.
            std::fs::remove_file(&retiring).map_err(io(&retiring))?;
            resumed = false;
        }
        let (old, new) = if resumed {
            (
                SigningKey::load(&retiring).map_err(signing)?,
                SigningKey::load(&path).map_err(signing)?,
            )
        } else {
            if !path.exists() {
                return Err(EngineError::Signing(format!(
                    "no signing key at {} to rotate (one is created with the first decision, or by `fleet audit pubkey`)",
                    path.display()
                )));
            }
            let old = SigningKey::load(&path).map_err(signing)?;
            let new = SigningKey::generate(attest::KEY_NAME).map_err(signing)?;
            // A `.next` left by an attempt that stopped before the link
            // below was never used: replace it.
            match std::fs::remove_file(&next) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&next)(e)),
                _ => {}
            }
            new.write_new(&next).map_err(io(&next))?;
            std::fs::hard_link(&path, &retiring).map_err(io(&retiring))?;
            std::fs::rename(&next, &path).map_err(io(&path))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                && let Ok(d) = std::fs::File::open(dir)
            {
                let _ = d.sync_all();
            }
            (old, new)
        };
        let (old_v, new_v) = (old.verifier(), new.verifier());
        let ring = ring_from_events(&self.store.events_of_kind(KEY_EVENT, None).await?);
        let known = |v: &Verifier| ring.keys().iter().find(|k| &k.verifier == v);
        let mut events = Vec::new();
        if known(&old_v).is_none() {
            events.push(key_event(&old_v, "current", None));
        }
        if known(&old_v).is_none_or(|k| k.retired.is_none()) {
            events.push(key_event(&old_v, "retired", Some(&new_v)));
        }
        if known(&new_v).is_none() {
            events.push(key_event(&new_v, "current", None));
        }
        if !events.is_empty() {
            self.store.append_events(events).await?;
        }
        let ring = self.key_ring().await?;
        let retired_at = ring
            .keys()
            .iter()
            .find(|k| k.verifier == old_v)
            .and_then(|k| k.retired.as_ref().map(|(seq, _)| *seq))
            .unwrap_or(0);
        std::fs::remove_file(&retiring).map_err(io(&retiring))?;
        self.key_recorded(&new_v);
        Ok(Rotation {
            retired: old_v,
            current: new_v,
            retired_at,
            resumed,
        })
    }
}
