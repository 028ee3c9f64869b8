//! Finding the project: the workspace root and its `.fleet/config.yaml`,
//! located the way git finds `.git` (walk up from the working directory),
//! with `-C DIR` and `--config PATH` as overrides.

use anyhow::{Context, Result, bail};
use fleet_core::config::{self, Config, Diagnostic};
use std::path::{Path, PathBuf};

pub const CONFIG_DIR: &str = ".fleet";
pub const CONFIG_FILE: &str = "config.yaml";

/// A located, loaded and validated project.
pub struct Workspace {
    /// The directory that holds `.fleet/`; corpus globs are relative to it.
    pub root: PathBuf,
    pub config_path: PathBuf,
    pub config: Config,
    /// Warnings from validation (printed by the caller where useful).
    pub warnings: Vec<Diagnostic>,
    pub source: String,
}

/// Error type for "the config is invalid": the rendered diagnostics; the
/// binary maps it to exit code 2.
#[derive(Debug)]
pub struct InvalidConfig(pub String);

impl std::fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.trim_end())
    }
}
impl std::error::Error for InvalidConfig {}

/// Error type for usage problems (missing config, bad arguments): exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

/// Where to look: the working directory (after `-C`) and an explicit config path.
pub struct Locator {
    pub cwd: PathBuf,
    pub config: Option<PathBuf>,
    /// `--database-url` / `FLEET_DATABASE_URL`; `None` = the embedded
    /// SQLite database at `.fleet/fleet.db`.
    pub database_url: Option<String>,
}

impl Locator {
    pub fn new(dir: Option<&Path>, config: Option<&Path>) -> Result<Self> {
        let here = std::env::current_dir().context("cannot read the current directory")?;
        let cwd = match dir {
            Some(d) => {
                let d = here.join(d);
                if !d.is_dir() {
                    bail!(UsageError(format!("-C {}: not a directory", d.display())));
                }
                d
            }
            None => here,
        };
        Ok(Locator {
            config: config.map(|c| cwd.join(c)),
            cwd,
            database_url: None,
        })
    }

    /// The config path and the workspace root.
    pub fn find(&self) -> Result<(PathBuf, PathBuf)> {
        if let Some(path) = &self.config {
            if !path.is_file() {
                bail!(UsageError(format!(
                    "--config {}: no such file",
                    path.display()
                )));
            }
            // `X/.fleet/config.yaml` belongs to workspace X; any other file is
            // taken to describe the working directory.
            let root = path
                .parent()
                .filter(|p| p.file_name().is_some_and(|n| n == CONFIG_DIR))
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.cwd.clone());
            return Ok((path.clone(), root));
        }
        for dir in self.cwd.ancestors() {
            let candidate = dir.join(CONFIG_DIR).join(CONFIG_FILE);
            if candidate.is_file() {
                return Ok((candidate, dir.to_path_buf()));
            }
        }
        bail!(UsageError(format!(
            "no {CONFIG_DIR}/{CONFIG_FILE} in {} or any parent directory\n\
             hint: run `fleet init` to create an example project, or pass -C DIR / --config PATH",
            self.cwd.display()
        )))
    }

    /// Finds, reads and validates the config. Errors are rendered with the
    /// path as the user would type it.
    pub fn load(&self) -> Result<Workspace> {
        let (config_path, root) = self.find()?;
        let source = std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?;
        let shown = display_path(&config_path, &self.cwd);
        let checked = config::check_str(&source);
        match checked.config {
            Some(config) => Ok(Workspace {
                root,
                config_path,
                config,
                warnings: checked.diagnostics,
                source,
            }),
            None => bail!(InvalidConfig(config::render_all(
                &checked.diagnostics,
                &shown,
                &source
            ))),
        }
    }
}

impl Workspace {
    pub fn display_config_path(&self, cwd: &Path) -> String {
        display_path(&self.config_path, cwd)
    }

    /// Prints validation warnings to stderr.
    pub fn print_warnings(&self, cwd: &Path) {
        if !self.warnings.is_empty() {
            let shown = self.display_config_path(cwd);
            eprint!(
                "{}",
                config::render_all(&self.warnings, &shown, &self.source)
            );
        }
    }
}

/// `path` relative to `base` when it is inside it, else as is.
pub fn display_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}
