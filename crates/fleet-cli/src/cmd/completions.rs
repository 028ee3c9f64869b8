//! `fleet completions SHELL` and `fleet man`: generated from the same clap
//! definitions that parse the arguments, so they cannot drift from them.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Prints the completion script for `shell` on stdout.
pub fn completions(mut cmd: clap::Command, shell: clap_complete::Shell) -> Result<()> {
    let name = cmd.get_name().to_owned();
    // Into memory first: `generate` panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("writing the completions")?;
    Ok(())
}

/// Prints `fleet.1` on stdout, or writes a page per command (`fleet.1`,
/// `fleet-run.1`, ...) into `out`.
pub fn man(cmd: clap::Command, out: Option<&Path>) -> Result<()> {
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .context("rendering the man page")?;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&page).context("writing the man page")?;
            stdout.flush().context("writing the man page")?;
        }
    }
    Ok(())
}
