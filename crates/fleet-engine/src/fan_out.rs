//! The I/O half of `for_each`: listing the files a run fans out over, with
//! the corpus rules (inside the workspace, ignore files honoured, binary
//! files and symlinks left out). Expanding the list into steps is pure and
//! lives in `fleet_core::config::fan_out`.

use crate::EngineError;
use fleet_core::config::Genflow;
use fleet_corpus::{Inclusion, Limits};
use std::collections::BTreeMap;
use std::path::Path;

/// For each `for_each` step of `genflow` (its glob rendered with `params`),
/// the workspace-relative paths of the files it matches, in path order.
/// Lists every match, so a glob matching more than `max_items` is refused
/// by `bind_run` with the real count.
pub(crate) async fn list_items(
    root: &Path,
    genflow: &Genflow,
    params: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<String>>, EngineError> {
    let mut items = BTreeMap::new();
    for each in genflow.for_each_globs(params)? {
        let root = root.to_path_buf();
        let glob = each.glob.clone();
        let corpus = tokio::task::spawn_blocking(move || {
            fleet_corpus::gather_globs(&root, &[glob], each.include_ignored, &Limits::default())
        })
        .await
        .map_err(|e| EngineError::FanOut {
            step: each.step.clone(),
            message: format!("listing stopped: {e}"),
        })?
        .map_err(|e| EngineError::FanOut {
            step: each.step.clone(),
            message: e.to_string(),
        })?;
        let mut paths: Vec<String> = corpus
            .manifest
            .entries
            .into_iter()
            .filter(|e| {
                !matches!(
                    e.inclusion,
                    Inclusion::SkippedBinary | Inclusion::SkippedSymlink
                )
            })
            .map(|e| e.path)
            .collect();
        paths.sort();
        items.insert(each.step, paths);
    }
    Ok(items)
}
