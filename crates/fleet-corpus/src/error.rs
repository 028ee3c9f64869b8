use std::path::PathBuf;

/// Why a corpus could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("workspace root `{}` cannot be used: {source}", root.display())]
    Root {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "corpus glob `{glob}` escapes the workspace: globs are relative to the workspace root and may not be absolute or contain `..`"
    )]
    GlobEscapes { glob: String },

    #[error("corpus glob `{glob}` is invalid: {reason}")]
    InvalidGlob { glob: String, reason: String },

    #[error("{}", describe_escapes(links))]
    SymlinkEscapes { links: Vec<EscapingSymlink> },

    #[error("source `{name}` has an empty command")]
    EmptySourceCommand { name: String },

    #[error("source `{name}` (`{command}`) could not be started: {source}")]
    SourceSpawn {
        name: String,
        command: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "source `{name}` (`{command}`) failed with {status}{}",
        quote_stderr(stderr)
    )]
    SourceFailed {
        name: String,
        command: String,
        /// e.g. `exit status 2` or `signal 9`.
        status: String,
        /// The end of what the command wrote to stderr.
        stderr: String,
    },

    #[error("source `{name}` (`{command}`) timed out after {} and was killed", seconds(*timeout))]
    SourceTimedOut {
        name: String,
        command: String,
        timeout: std::time::Duration,
    },

    #[error("source `{name}` (`{command}`): {source}")]
    SourceIo {
        name: String,
        command: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "corpus glob `{glob}` has `changed_since`, which reads git history, but the workspace `{}` is not a git repository ({detail})",
        root.display()
    )]
    NotAGitRepository {
        root: PathBuf,
        glob: String,
        /// What git said.
        detail: String,
    },

    #[error(
        "unknown git revision `{revision}` in `changed_since` of corpus glob `{glob}`: no tag, branch or commit by that name in the repository at `{}`",
        root.display()
    )]
    UnknownRevision {
        revision: String,
        glob: String,
        root: PathBuf,
    },

    #[error(
        "git revision `{revision}` in `changed_since` is not usable: a revision must not be empty or start with `-`"
    )]
    InvalidRevision { revision: String },

    #[error(
        "the git repository at `{}` has no commit yet (HEAD names none), so there are no changes since `{revision}` to read",
        root.display()
    )]
    NoHead { root: PathBuf, revision: String },

    #[error(
        "git revision `{revision}` in `changed_since` shares no history with HEAD, so nothing can be compared to it"
    )]
    NoCommonHistory { revision: String },

    #[error("`changed_since` needs the `git` program, which could not be started: {source}")]
    GitSpawn {
        #[source]
        source: std::io::Error,
    },

    #[error("`{command}` failed in `{}`: {message}", root.display())]
    Git {
        command: String,
        root: PathBuf,
        message: String,
    },
}

/// A symlink matched by a corpus glob whose target lies outside the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscapingSymlink {
    /// Workspace-relative path of the link.
    pub path: String,
    /// Where it points (as resolved, or as written when it cannot be resolved).
    pub target: PathBuf,
}

fn describe_escapes(links: &[EscapingSymlink]) -> String {
    let listed: Vec<String> = links
        .iter()
        .map(|l| format!("`{}` -> `{}`", l.path, l.target.display()))
        .collect();
    format!(
        "symlink{} in the corpus point{} outside the workspace: {}",
        if links.len() == 1 { "" } else { "s" },
        if links.len() == 1 { "s" } else { "" },
        listed.join(", ")
    )
}

fn quote_stderr(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        " (no stderr)".to_string()
    } else {
        format!("; stderr:\n{trimmed}")
    }
}

pub(crate) fn seconds(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
