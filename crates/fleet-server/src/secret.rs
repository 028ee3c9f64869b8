//! The server secret that signs approver links, CSRF tokens and operator
//! sessions: `FLEET_SECRET`, else `.fleet/secret`, generated once.

use crate::ServerError;
use std::io::Write;
use std::path::Path;

/// Bytes of a generated secret.
const GENERATED_LEN: usize = 32;
/// A secret shorter than this is refused: HMAC keys must not be guessable.
const MIN_LEN: usize = 16;

/// The signing key. Debug output never shows it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Secret, ServerError> {
        if bytes.len() < MIN_LEN {
            return Err(ServerError::Secret(format!(
                "the secret is {} bytes; use at least {MIN_LEN}",
                bytes.len()
            )));
        }
        Ok(Secret(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `env_value` (from `FLEET_SECRET`) when set, else the contents of
    /// `<state_dir>/secret`, created with 32 random bytes and mode 0600 when
    /// missing. Two processes racing to create it both end up with the
    /// winner's file, because creation is exclusive.
    pub fn load_or_create(
        state_dir: &Path,
        env_value: Option<&str>,
    ) -> Result<Secret, ServerError> {
        if let Some(v) = env_value.map(str::trim).filter(|v| !v.is_empty()) {
            return Secret::from_bytes(v.as_bytes().to_vec());
        }
        let path = state_dir.join("secret");
        match std::fs::read_to_string(&path) {
            Ok(text) => return Secret::from_bytes(text.trim().as_bytes().to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ServerError::io(&path, e)),
        }
        std::fs::create_dir_all(state_dir).map_err(|e| ServerError::io(state_dir, e))?;
        let mut raw = [0u8; GENERATED_LEN];
        getrandom::fill(&mut raw)
            .map_err(|e| ServerError::Secret(format!("no system randomness: {e}")))?;
        let text = hex::encode(raw);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| ServerError::io(&path, e))?;
                Secret::from_bytes(text.into_bytes())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).map_err(|e| ServerError::io(&path, e))?;
                Secret::from_bytes(text.trim().as_bytes().to_vec())
            }
            Err(e) => Err(ServerError::io(&path, e)),
        }
    }
}
