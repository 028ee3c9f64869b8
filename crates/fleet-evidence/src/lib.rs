//! Evidence a third party can check without trusting Fleet's database.
//!
//! - [`key`]: the installation's ed25519 signing key (created on first need,
//!   mode 0600, never logged or stored in the database) and its public half
//!   in the signed-note `vkey` text form, `NAME+KEYHASH+BASE64`.
//! - [`dsse`]: DSSE envelopes (the in-toto attestation wrapper): a payload,
//!   its type, and signatures over `PAE(type, payload)`.
//! - [`checkpoint`]: checkpoints of the audit chain as C2SP signed notes:
//!   origin, event count and head hash, signed with the key.
//! - [`ring`]: every key the installation signed with, current and retired;
//!   a retired key vouches only for the log before its retirement.
//!
//! Everything here is standard and checkable with standard tools: DSSE's PAE
//! and ed25519 (RFC 8032) need nothing of Fleet's.

pub mod checkpoint;
pub mod dsse;
pub mod key;
pub mod ring;

pub use checkpoint::Checkpoint;
pub use dsse::Envelope;
pub use key::{SigningKey, Verifier};
pub use ring::{KeyRing, KnownKey};

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("signing key {path}: {message}")]
    Key { path: String, message: String },
    #[error("{0}")]
    Malformed(String),
    #[error("bad signature: {0}")]
    BadSignature(String),
}
