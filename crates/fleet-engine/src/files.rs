//! Readable copies of artifacts under `.fleet/runs/<run-id>/<out>`. The store
//! is the source of truth; these files are rewritten from it whenever they
//! are missing or differ (e.g. the process died between commit and write).

use crate::EngineError;
use fleet_store::audit::sha256_hex;
use fleet_store::{NewArtifact, RunRecord, Store};
use std::path::{Component, Path, PathBuf};

pub fn run_dir(state_dir: &Path, run_id: &str) -> PathBuf {
    state_dir.join("runs").join(run_id)
}

/// `dir/rel`, refusing anything that could land outside `dir`.
fn safe_join(dir: &Path, rel: &str) -> Result<PathBuf, EngineError> {
    let p = Path::new(rel);
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(EngineError::Io {
            path: rel.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "output path must stay inside the run directory",
            ),
        });
    }
    Ok(dir.join(p))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temp file + rename), so a reader never
/// sees half a document.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Writes just-committed artifacts into the run directory.
pub(crate) fn write_artifacts(
    run: &RunRecord,
    artifacts: &[NewArtifact],
    state_dir: &Path,
) -> Result<(), EngineError> {
    let dir = run_dir(state_dir, &run.id);
    for a in artifacts {
        write_atomic(&safe_join(&dir, &a.path)?, &a.bytes)?;
    }
    Ok(())
}

/// Makes the run directory hold the latest revision of every artifact.
pub async fn materialize(
    store: &dyn Store,
    run: &RunRecord,
    state_dir: &Path,
) -> Result<(), EngineError> {
    let refs = store.artifacts(&run.id).await?;
    let dir = run_dir(state_dir, &run.id);
    for r in fleet_store::latest_revisions(&refs).into_values() {
        let path = safe_join(&dir, &r.path)?;
        let current = std::fs::read(&path).ok();
        if current.as_deref().map(sha256_hex).as_deref() == Some(r.sha256.as_str()) {
            continue;
        }
        if let Some(bytes) = store.artifact_bytes(&r.sha256).await? {
            write_atomic(&path, &bytes)?;
        }
    }
    Ok(())
}
