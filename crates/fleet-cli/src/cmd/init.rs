//! `fleet init`: writes a working example project.

use crate::workspace::{CONFIG_DIR, CONFIG_FILE, UsageError};
use anyhow::{Context, Result, bail};
use rust_embed::RustEmbed;
use std::path::Path;

/// The release-gate example: a small but realistic product repository (runbooks,
/// release notes, migrations) and its `.fleet/config.yaml`.
#[derive(RustEmbed)]
#[folder = "example/release-gate/"]
struct ReleaseGateExample;

pub const EXAMPLES: &[&str] = &["release-gate"];

/// Whether an embedded file belongs to the example. Of `.fleet/` only the
/// config does: whatever else a local run or benchmark left there (a
/// signing key, a database) must never be baked into the binary's example
/// and handed to every new workspace.
fn is_example_file(name: &str) -> bool {
    match name.strip_prefix(".fleet/") {
        Some(rest) => rest == CONFIG_FILE,
        None => true,
    }
}

pub fn run(dir: &Path, example: &str, force: bool) -> Result<()> {
    if !EXAMPLES.contains(&example) {
        bail!(UsageError(format!(
            "unknown example `{example}` (available: {})",
            EXAMPLES.join(", ")
        )));
    }
    let mut files: Vec<(String, Vec<u8>)> = ReleaseGateExample::iter()
        .filter(|name| is_example_file(name))
        .filter_map(|name| {
            ReleaseGateExample::get(&name).map(|f| (name.to_string(), f.data.into_owned()))
        })
        .collect();
    files.sort();
    let schema = serde_json::to_string_pretty(&fleet_core::config::json_schema())?;
    files.push((format!("{CONFIG_DIR}/schema.json"), schema.into_bytes()));

    if !force {
        let existing: Vec<&str> = files
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| dir.join(name).exists())
            .collect();
        if !existing.is_empty() {
            bail!(UsageError(format!(
                "{} already has {} of the example's files (e.g. {}); refusing to overwrite\n\
                 hint: pass --force to overwrite them, or choose another directory",
                dir.display(),
                existing.len(),
                existing[0]
            )));
        }
    }
    for (name, data) in &files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, data).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "Wrote the {example} example ({} files) to {}",
        files.len(),
        dir.display()
    );
    println!(
        "  config: {}",
        dir.join(CONFIG_DIR).join(CONFIG_FILE).display()
    );
    println!("Next:");
    println!("  fleet -C {} validate", dir.display());
    println!("  fleet -C {} flows", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_example_file;

    #[test]
    fn only_the_config_is_taken_from_the_examples_state_dir() {
        assert!(is_example_file(".fleet/config.yaml"));
        assert!(is_example_file("docs/runbooks/deploy.md"));
        for stray in [
            ".fleet/signing.key",
            ".fleet/fleet.db",
            ".fleet/runs/x/readiness.md",
        ] {
            assert!(!is_example_file(stray), "{stray}");
        }
    }
}
