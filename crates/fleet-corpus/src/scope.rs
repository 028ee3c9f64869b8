//! `changed_since`: corpus globs limited to the files a release changed.
//!
//! The range is committed history: from the merge base of the revision and
//! `HEAD` to `HEAD` (`git diff REV...HEAD`), i.e. what the commits on `HEAD`
//! since the revision changed. A release is what is committed, so edits not
//! yet committed do not widen it; when the revision is an ancestor of `HEAD`
//! (a tag on the same line of history) the merge base is the revision itself,
//! and for a revision on another branch (a hotfix tag) changes made only
//! there do not count as this release's. Added, modified and type-changed
//! files are kept; deleted ones have nothing to read, and renames count as
//! additions. The files themselves are read from the working tree like every
//! other corpus file.
//!
//! git is run as an argv (never through a shell) in the workspace root, with
//! `--relative`, so paths come back relative to the workspace even when it
//! is a subdirectory of the repository. The changed paths are asked for on
//! every gather (HEAD moves while the files stay put); the cached walk is
//! filtered after the fact and stays valid.

use crate::ScopeRange;
use crate::error::CorpusError;
use crate::gather::glob_matcher;
use fleet_core::config::CorpusEntry;
use globset::GlobMatcher;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// The scoped entries of a step's corpus, resolved against the repository.
pub(crate) struct Scope {
    /// Globs without `changed_since`: what they match is kept whatever changed.
    plain: Vec<GlobMatcher>,
    scoped: Vec<Scoped>,
}

struct Scoped {
    matcher: GlobMatcher,
    /// Paths (workspace-relative, `/`-separated) changed in the range; shared
    /// by the entries that name the same revision.
    changed: Arc<HashSet<String>>,
    range: ScopeRange,
}

impl Scope {
    /// `None` when no entry has `changed_since` (git is then never run).
    pub(crate) fn resolve(
        root: &Path,
        corpus: &[CorpusEntry],
    ) -> Result<Option<Scope>, CorpusError> {
        let Some(first) = corpus
            .iter()
            .find_map(|e| e.changed_since().map(|r| (e.glob(), r)))
        else {
            return Ok(None);
        };
        let git = Git { root };
        git.check_work_tree(first.0)?;
        let head = git.commit("HEAD").map_err(|e| {
            e.unwrap_or_else(|| CorpusError::NoHead {
                root: root.to_path_buf(),
                revision: first.1.to_owned(),
            })
        })?;
        let mut ranges: BTreeMap<&str, (String, String, Arc<HashSet<String>>)> = BTreeMap::new();
        let mut plain = Vec::new();
        let mut scoped = Vec::new();
        for entry in corpus {
            let matcher = glob_matcher(entry.glob())?;
            let Some(revision) = entry.changed_since() else {
                plain.push(matcher);
                continue;
            };
            if !ranges.contains_key(revision) {
                let since = git.commit(revision).map_err(|e| {
                    e.unwrap_or_else(|| CorpusError::UnknownRevision {
                        revision: revision.to_owned(),
                        glob: entry.glob().to_owned(),
                        root: root.to_path_buf(),
                    })
                })?;
                let base = git.merge_base(&since, &head, revision)?;
                let changed = git.changed_paths(&base, &head)?;
                ranges.insert(revision, (since, base, Arc::new(changed)));
            }
            let (since, base, changed) = &ranges[revision];
            scoped.push(Scoped {
                matcher,
                changed: Arc::clone(changed),
                range: ScopeRange {
                    glob: entry.glob().to_owned(),
                    since: revision.to_owned(),
                    since_commit: since.clone(),
                    base_commit: base.clone(),
                    head: "HEAD".to_owned(),
                    head_commit: head.clone(),
                    files: 0,
                },
            });
        }
        Ok(Some(Scope { plain, scoped }))
    }

    /// Keeps the items a plain glob matches or a scoped glob matches and its
    /// range changed; counts what each scoped glob kept and warns about one
    /// that kept nothing of what it matched (the walk already warned about
    /// one that matched nothing at all).
    pub(crate) fn filter<T>(
        &mut self,
        items: &mut Vec<T>,
        path: impl Fn(&T) -> &str,
        warnings: &mut Vec<String>,
    ) {
        let mut matched = vec![false; self.scoped.len()];
        items.retain(|item| {
            let path = path(item);
            let mut keep = self.plain.iter().any(|m| m.is_match(path));
            for (s, matched) in self.scoped.iter_mut().zip(&mut matched) {
                if s.matcher.is_match(path) {
                    *matched = true;
                    if s.changed.contains(path) {
                        s.range.files += 1;
                        keep = true;
                    }
                }
            }
            keep
        });
        for (s, matched) in self.scoped.iter().zip(matched) {
            if matched && s.range.files == 0 {
                warnings.push(format!(
                    "glob `{}` matched no file changed since `{}` ({})",
                    s.range.glob,
                    s.range.since,
                    s.range.short()
                ));
            }
        }
    }

    /// What the manifest records: each scoped glob's range.
    pub(crate) fn into_ranges(self) -> Vec<ScopeRange> {
        self.scoped.into_iter().map(|s| s.range).collect()
    }
}

struct Git<'a> {
    root: &'a Path,
}

impl Git<'_> {
    /// Runs `git ARGS` in the workspace root.
    fn run(&self, args: &[&str]) -> Result<std::process::Output, CorpusError> {
        Command::new("git")
            .args(args)
            .current_dir(self.root)
            // Never prompt, never take the index lock: this only reads history.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| CorpusError::GitSpawn { source })
    }

    fn failed(&self, args: &[&str], output: &std::process::Output) -> CorpusError {
        CorpusError::Git {
            command: format!("git {}", args.join(" ")),
            root: self.root.to_path_buf(),
            message: stderr(output),
        }
    }

    fn check_work_tree(&self, glob: &str) -> Result<(), CorpusError> {
        let not_a_repo = |detail: String| CorpusError::NotAGitRepository {
            root: self.root.to_path_buf(),
            glob: glob.to_owned(),
            detail,
        };
        let output = self.run(&["rev-parse", "--is-inside-work-tree"])?;
        if !output.status.success() {
            return Err(not_a_repo(stderr(&output)));
        }
        if output.stdout.trim_ascii() != b"true" {
            return Err(not_a_repo(
                "it is inside a git directory, not a work tree".into(),
            ));
        }
        Ok(())
    }

    /// The commit id `revision` names. `Err(None)`: it names no commit.
    fn commit(&self, revision: &str) -> Result<String, Option<CorpusError>> {
        // A revision is an argument of its own, after `--end-of-options`;
        // one that reads as an option is refused anyway (validation does too).
        if revision.starts_with('-') || revision.is_empty() {
            return Err(Some(CorpusError::InvalidRevision {
                revision: revision.to_owned(),
            }));
        }
        let spec = format!("{revision}^{{commit}}");
        let args = [
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ];
        let output = self.run(&args).map_err(Some)?;
        let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        // `--verify --quiet` fails silently when nothing by that name is a commit.
        if !output.status.success() || id.is_empty() {
            return Err(None);
        }
        Ok(id)
    }

    fn merge_base(&self, since: &str, head: &str, revision: &str) -> Result<String, CorpusError> {
        let args = ["merge-base", since, head];
        let output = self.run(&args)?;
        match output.status.code() {
            Some(0) => Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned()),
            // Exit 1 without a message: the two commits share no history.
            Some(1) if output.stderr.trim_ascii().is_empty() => Err(CorpusError::NoCommonHistory {
                revision: revision.to_owned(),
            }),
            _ => Err(self.failed(&args, &output)),
        }
    }

    fn changed_paths(&self, base: &str, head: &str) -> Result<HashSet<String>, CorpusError> {
        // Plumbing, so no diff config (external diff, rename detection,
        // `diff.relative`) of the user's applies.
        let args = [
            "diff-tree",
            "-r",
            "-z",
            "--name-only",
            "--no-renames",
            "--diff-filter=d",
            "--relative",
            base,
            head,
        ];
        let output = self.run(&args)?;
        if !output.status.success() {
            return Err(self.failed(&args, &output));
        }
        Ok(output
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect())
    }
}

/// What git said on stderr, or its exit status when it said nothing.
fn stderr(output: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if text.is_empty() {
        output.status.to_string()
    } else {
        text
    }
}
