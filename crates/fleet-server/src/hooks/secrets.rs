//! The secrets the hook endpoints verify deliveries with.

use super::github;
use crate::ServerError;
use fleet_core::config::ServerConfig;
use hmac::Mac;
use sha2::{Digest, Sha256};

/// The hook secrets, read from the environment variables `server.github`
/// and `server.gitlab` name when the server starts. Never logged.
#[derive(Clone, Default)]
pub struct HookSecrets {
    pub(super) github: Option<github::HmacSha256>,
    /// sha256 of the token (see `gitlab::verify`).
    pub(super) gitlab: Option<[u8; 32]>,
}

impl std::fmt::Debug for HookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookSecrets")
            .field("github", &self.github.is_some())
            .field("gitlab", &self.gitlab.is_some())
            .finish()
    }
}

impl HookSecrets {
    /// The secrets the config names, looked up with `var` (the process
    /// environment in `fleet serve`). A named variable that is unset or
    /// empty is an error: the endpoint must never run without its secret.
    pub fn from_config(
        server: &ServerConfig,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<HookSecrets, ServerError> {
        let read = |setting: &str, name: &str| {
            var(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                ServerError::Config(format!(
                    "`{setting}` names the environment variable {name}, which is not set (or empty); \
                     set it to the webhook's secret, or remove `{setting}`"
                ))
            })
        };
        let mut secrets = HookSecrets::default();
        if let Some(g) = &server.github {
            secrets = secrets.with_github(&read("server.github.secret_env", &g.secret_env)?);
        }
        if let Some(g) = &server.gitlab {
            secrets = secrets.with_gitlab(&read("server.gitlab.token_env", &g.token_env)?);
        }
        Ok(secrets)
    }

    pub fn with_github(mut self, secret: &str) -> HookSecrets {
        // HMAC takes a key of any length.
        self.github = github::HmacSha256::new_from_slice(secret.as_bytes()).ok();
        self
    }

    pub fn with_gitlab(mut self, token: &str) -> HookSecrets {
        self.gitlab = Some(Sha256::digest(token.as_bytes()).into());
        self
    }
}
