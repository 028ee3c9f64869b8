//! Walking the workspace for a step's corpus globs and reading what matches.

use crate::error::{CorpusError, EscapingSymlink};
use crate::read::{Content, classify_file, count_lines, read_capped, whole_lines_within};
use crate::render::human_bytes;
use crate::{Corpus, Document, Inclusion, Limits, Manifest, ManifestEntry, run_sources};
use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use ignore::{DirEntry, WalkBuilder};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Gathers what `step` reads (its corpus globs and sources) under `root`.
///
/// Sources run while the files are walked. For the total cap, source outputs
/// count first (there are few, and each was asked for by name), then files in
/// path order.
pub fn gather(
    root: &Path,
    step: &fleet_core::config::Step,
    limits: &Limits,
) -> Result<Corpus, CorpusError> {
    let root = canonical_root(root)?;
    let (files, sources) = std::thread::scope(|scope| {
        let sources = (!step.sources.is_empty())
            .then(|| scope.spawn(|| run_sources(&root, &step.sources, limits)));
        let files = collect_files(&root, &step.corpus, step.include_ignored, limits);
        let sources = match sources {
            None => Ok(Vec::new()),
            Some(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        };
        (files, sources)
    });
    let (files, warnings) = files?;
    Ok(assemble(files, sources?, warnings, limits.max_total_bytes))
}

/// Gathers the files matching `globs` under `root` (no sources).
pub fn gather_globs(
    root: &Path,
    globs: &[String],
    include_ignored: bool,
    limits: &Limits,
) -> Result<Corpus, CorpusError> {
    let root = canonical_root(root)?;
    let (files, warnings) = collect_files(&root, globs, include_ignored, limits)?;
    Ok(assemble(
        files,
        Vec::new(),
        warnings,
        limits.max_total_bytes,
    ))
}

fn canonical_root(root: &Path) -> Result<PathBuf, CorpusError> {
    let canonical = std::fs::canonicalize(root).map_err(|source| CorpusError::Root {
        root: root.to_path_buf(),
        source,
    })?;
    if !canonical.is_dir() {
        return Err(CorpusError::Root {
            root: root.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    Ok(canonical)
}

/// A file considered by the walk, before the total cap is applied.
struct FileRecord {
    entry: ManifestEntry,
    /// Present when the file is text.
    text: Option<String>,
}

/// Walks `root` and reads every file a glob matches. Returns the records
/// sorted by path, plus warnings.
fn collect_files(
    root: &Path,
    globs: &[String],
    include_ignored: bool,
    limits: &Limits,
) -> Result<(Vec<FileRecord>, Vec<String>), CorpusError> {
    if globs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let compiled = CompiledGlobs::get(globs)?;
    let CompiledGlobs {
        globs,
        set,
        matchers,
        pruner,
    } = &*compiled;
    let pruner = Arc::clone(pruner);

    let mut walk = WalkBuilder::new(root);
    walk.standard_filters(!include_ignored)
        // .gitignore is honoured even in a tree that is not (yet) a git repository.
        .require_git(false)
        // The user's global excludes (core.excludesFile) are not: the corpus
        // must be the same on the server and every reviewer's machine.
        .git_global(false)
        .follow_links(false);
    {
        let root = root.to_path_buf();
        walk.filter_entry(move |entry| keep_entry(&root, &pruner, entry));
    }

    let context = VisitContext {
        root,
        set,
        max_file_bytes: limits.max_file_bytes,
    };
    // One thread: `ignore`'s parallel walker spawns its threads per walk and
    // they poll for work with 1 ms sleeps, which cost more than a typical
    // corpus (a few dozen files under pruned globs) takes to read; the engine
    // gets its parallelism from running steps and runs side by side.
    let mut collector = Collector {
        context: &context,
        found: Found::default(),
    };
    for entry in walk.build() {
        collector.visit(entry);
    }

    let Found {
        mut records,
        mut warnings,
        mut escapes,
    } = collector.found;
    if !escapes.is_empty() {
        escapes.sort_by(|a, b| a.path.cmp(&b.path));
        return Err(CorpusError::SymlinkEscapes { links: escapes });
    }
    // Directory listing order varies by filesystem; the corpus must not.
    records.sort_unstable_by(|a, b| a.entry.path.cmp(&b.entry.path));
    warnings.sort();

    for ((original, _), matcher) in globs.iter().zip(matchers) {
        if !records.iter().any(|r| matcher.is_match(&r.entry.path)) {
            let hint = if include_ignored {
                ""
            } else {
                " (hidden and git-ignored files are skipped unless the step sets include_ignored: true)"
            };
            warnings.push(format!("glob `{original}` matched no file{hint}"));
        }
    }
    Ok((records, warnings))
}

/// A step's globs, checked and compiled. Every run of a genflow walks with
/// the same globs, and compiling them (regexes, a prefix automaton) cost
/// more than walking a small tree, so they are compiled once per process.
struct CompiledGlobs {
    /// (as written, normalized)
    globs: Vec<(String, String)>,
    set: GlobSet,
    /// One per glob, to warn about a glob that matched nothing.
    matchers: Vec<GlobMatcher>,
    pruner: Arc<Pruner>,
}

impl CompiledGlobs {
    /// Bounds the cache; configs name a handful of glob lists.
    const CACHED: usize = 64;

    fn get(globs: &[String]) -> Result<Arc<CompiledGlobs>, CorpusError> {
        static CACHE: std::sync::OnceLock<
            std::sync::Mutex<std::collections::HashMap<Vec<String>, Arc<CompiledGlobs>>>,
        > = std::sync::OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let lock = || {
            cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(hit) = lock().get(globs) {
            return Ok(Arc::clone(hit));
        }
        let compiled = Arc::new(CompiledGlobs::compile(globs)?);
        let mut cache = lock();
        if cache.len() >= Self::CACHED {
            cache.clear();
        }
        cache.insert(globs.to_vec(), Arc::clone(&compiled));
        Ok(compiled)
    }

    fn compile(globs: &[String]) -> Result<CompiledGlobs, CorpusError> {
        let globs = globs
            .iter()
            .map(|g| normalize_glob(g).map(|n| (g.clone(), n)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut set = GlobSetBuilder::new();
        let mut matchers = Vec::with_capacity(globs.len());
        for (original, normalized) in &globs {
            let glob = compile_glob(original, normalized)?;
            matchers.push(glob.compile_matcher());
            set.add(glob);
        }
        let set = set.build().map_err(|e| CorpusError::InvalidGlob {
            glob: globs
                .iter()
                .map(|(g, _)| g.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            reason: e.kind().to_string(),
        })?;
        let pruner = Arc::new(Pruner::new(globs.iter().map(|(_, n)| n.as_str())));
        Ok(CompiledGlobs {
            globs,
            set,
            matchers,
            pruner,
        })
    }
}

/// Checks a glob stays inside the workspace and normalizes `./` and `//` away.
fn normalize_glob(glob: &str) -> Result<String, CorpusError> {
    let trimmed = glob.trim();
    let escapes = || CorpusError::GlobEscapes {
        glob: glob.to_string(),
    };
    if trimmed.starts_with('/') || trimmed.starts_with('\\') || trimmed.starts_with('~') {
        return Err(escapes());
    }
    let bytes = trimmed.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(escapes());
    }
    let parts: Vec<&str> = trimmed
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(escapes());
    }
    if parts.is_empty() {
        return Err(CorpusError::InvalidGlob {
            glob: glob.to_string(),
            reason: "it names no file".into(),
        });
    }
    Ok(parts.join("/"))
}

fn compile_glob(original: &str, normalized: &str) -> Result<globset::Glob, CorpusError> {
    GlobBuilder::new(normalized)
        // `*` stays within one directory; only `**` crosses `/`.
        .literal_separator(true)
        .build()
        .map_err(|e| CorpusError::InvalidGlob {
            glob: original.to_string(),
            reason: e.kind().to_string(),
        })
}

/// Decides which directories can hold a match, so the walk skips the rest of
/// the tree instead of listing it.
struct Pruner {
    /// Per glob: its `/`-separated segments, or `None` when it cannot be split
    /// safely (e.g. `{a,b/c}`), in which case it may match anywhere.
    globs: Vec<Option<Vec<Segment>>>,
}

enum Segment {
    Literal(String),
    Pattern(GlobMatcher),
    /// `**`: any number of directories.
    AnyDepth,
}

impl Pruner {
    fn new<'a>(globs: impl Iterator<Item = &'a str>) -> Pruner {
        Pruner {
            globs: globs.map(segments).collect(),
        }
    }

    /// Can a file under directory `dir` (workspace-relative, `/`-separated,
    /// `""` for the root) match some glob?
    fn may_contain(&self, dir: &str) -> bool {
        if dir.is_empty() {
            return true;
        }
        self.globs.iter().any(|glob| match glob {
            None => true,
            Some(segments) => {
                for (depth, component) in dir.split('/').enumerate() {
                    match segments.get(depth) {
                        Some(Segment::AnyDepth) => return true,
                        // The last segment names the file itself, so a
                        // directory this deep cannot hold a match.
                        _ if depth + 1 >= segments.len() => return false,
                        Some(Segment::Literal(l)) if l != component => return false,
                        Some(Segment::Pattern(p)) if !p.is_match(component) => return false,
                        _ => {}
                    }
                }
                true
            }
        })
    }
}

fn segments(glob: &str) -> Option<Vec<Segment>> {
    // A `/` inside `{...}` or `[...]` would make splitting on `/` wrong.
    let mut depth = 0i32;
    for c in glob.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            '/' if depth > 0 => return None,
            _ => {}
        }
    }
    glob.split('/')
        .map(|component| {
            if component == "**" {
                Some(Segment::AnyDepth)
            } else if component.contains("**") {
                None
            } else if component.contains(['*', '?', '[', '{', '\\']) {
                let glob = GlobBuilder::new(component)
                    .literal_separator(true)
                    .build()
                    .ok()?;
                Some(Segment::Pattern(glob.compile_matcher()))
            } else {
                Some(Segment::Literal(component.to_string()))
            }
        })
        .collect()
}

fn keep_entry(root: &Path, pruner: &Pruner, entry: &DirEntry) -> bool {
    let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
    if !is_dir {
        return true;
    }
    // Repository internals are never corpus, even with include_ignored.
    if entry.depth() > 0 && entry.file_name() == ".git" {
        return false;
    }
    match entry.path().strip_prefix(root) {
        Ok(rel) => pruner.may_contain(&relative_string(rel)),
        Err(_) => true,
    }
}

/// Workspace-relative path with `/` separators.
fn relative_string(rel: &Path) -> String {
    let text = rel.to_string_lossy();
    if std::path::MAIN_SEPARATOR == '/' {
        text.into_owned()
    } else {
        text.replace(std::path::MAIN_SEPARATOR, "/")
    }
}

#[derive(Default)]
struct Found {
    records: Vec<FileRecord>,
    warnings: Vec<String>,
    escapes: Vec<EscapingSymlink>,
}

struct VisitContext<'a> {
    root: &'a Path,
    set: &'a GlobSet,
    max_file_bytes: u64,
}

/// Collects what the walk finds.
struct Collector<'a> {
    context: &'a VisitContext<'a>,
    found: Found,
}

impl Collector<'_> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                self.found
                    .warnings
                    .push(format!("part of the workspace could not be read: {err}"));
                return;
            }
        };
        let Some(file_type) = entry.file_type() else {
            return;
        };
        if file_type.is_dir() {
            return;
        }
        let Ok(rel) = entry.path().strip_prefix(self.context.root) else {
            return;
        };
        if !self.context.set.is_match(rel) {
            return;
        }
        let path = relative_string(rel);
        if file_type.is_symlink() {
            self.symlink(entry.path(), path);
        } else if file_type.is_file() {
            let record = read_file(entry.path(), path, self.context.max_file_bytes);
            self.found.records.push(record);
        } else {
            // FIFOs, sockets, devices: reading could block or never end.
            self.found.records.push(FileRecord {
                entry: entry_without_content(path, "not a regular file", Inclusion::Omitted),
                text: None,
            });
        }
    }

    /// Symlinks are not followed: one pointing outside the workspace is an
    /// error; one inside is recorded (its target is read only if a glob
    /// matches the target itself, so ignore rules cannot be sidestepped).
    fn symlink(&mut self, absolute: &Path, path: String) {
        let written = std::fs::read_link(absolute).unwrap_or_default();
        let link_text = written.to_string_lossy().into_owned();
        let note = match std::fs::canonicalize(absolute) {
            Ok(target) => match target.strip_prefix(self.context.root) {
                Ok(inside) => format!("symlink to `{}`; not followed", relative_string(inside)),
                Err(_) => {
                    self.found.escapes.push(EscapingSymlink { path, target });
                    return;
                }
            },
            Err(_) => format!("broken symlink to `{link_text}`; not followed"),
        };
        // Like git, a symlink's content is the path it holds.
        self.found.records.push(FileRecord {
            entry: ManifestEntry {
                path,
                size: link_text.len() as u64,
                blake3: blake3::hash(link_text.as_bytes()).to_hex().to_string(),
                lines: 0,
                inclusion: Inclusion::SkippedSymlink,
                note: Some(note),
            },
            text: None,
        });
    }
}

fn entry_without_content(
    path: String,
    note: impl Into<String>,
    inclusion: Inclusion,
) -> ManifestEntry {
    ManifestEntry {
        path,
        size: 0,
        blake3: String::new(),
        lines: 0,
        inclusion,
        note: Some(note.into()),
    }
}

fn read_file(absolute: &Path, path: String, max_file_bytes: u64) -> FileRecord {
    let raw = std::fs::File::open(absolute).and_then(|file| {
        let size_hint = file.metadata().map(|m| m.len()).unwrap_or(0);
        read_capped(file, size_hint, max_file_bytes)
    });
    let raw = match raw {
        Ok(raw) => raw,
        Err(err) => {
            return FileRecord {
                entry: entry_without_content(
                    path,
                    format!("could not be read: {err}"),
                    Inclusion::Omitted,
                ),
                text: None,
            };
        }
    };
    let snapshot = classify_file(raw);
    let (inclusion, note, text) = match snapshot.content {
        Content::Binary { reason } => (Inclusion::SkippedBinary, Some(reason.to_string()), None),
        Content::Text {
            text,
            truncated: false,
        } => (Inclusion::Whole, None, Some(text)),
        Content::Text {
            text,
            truncated: true,
        } => {
            let note = format!(
                "truncated to the first {} of {} lines ({} of {}): per-file cap {}",
                count_lines(&text),
                snapshot.lines,
                human_bytes(text.len() as u64),
                human_bytes(snapshot.size),
                human_bytes(max_file_bytes),
            );
            (Inclusion::Truncated, Some(note), Some(text))
        }
    };
    FileRecord {
        entry: ManifestEntry {
            path,
            size: snapshot.size,
            blake3: snapshot.blake3,
            lines: snapshot.lines,
            inclusion,
            note,
        },
        text,
    }
}

/// Applies the total cap and builds the corpus: files (sorted) then sources
/// (by name) in the output; sources first when spending the total budget.
fn assemble(
    files: Vec<FileRecord>,
    sources: Vec<(Document, ManifestEntry)>,
    warnings: Vec<String>,
    max_total_bytes: u64,
) -> Corpus {
    let mut sources: Vec<FileRecord> = sources
        .into_iter()
        .map(|(doc, entry)| FileRecord {
            entry,
            text: Some(doc.text),
        })
        .collect();
    sources.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));

    let mut remaining = max_total_bytes;
    let mut cap_reached = false;
    let mut capped = |record: FileRecord| -> (ManifestEntry, Option<Document>) {
        let FileRecord { mut entry, text } = record;
        let Some(text) = text else {
            return (entry, None);
        };
        let cap_note = format!("total cap of {} reached", human_bytes(max_total_bytes));
        if !cap_reached && (text.len() as u64) <= remaining {
            remaining -= text.len() as u64;
            let doc = Document {
                path: entry.path.clone(),
                text,
            };
            return (entry, Some(doc));
        }
        let kept = if cap_reached {
            ""
        } else {
            whole_lines_within(&text, usize::try_from(remaining).unwrap_or(usize::MAX))
        };
        cap_reached = true;
        remaining = 0;
        if kept.is_empty() {
            entry.inclusion = Inclusion::Omitted;
            entry.note = Some(append_note(entry.note.take(), cap_note));
            return (entry, None);
        }
        entry.inclusion = Inclusion::Truncated;
        let note = format!(
            "truncated to the first {} lines ({}): {cap_note}",
            count_lines(kept),
            human_bytes(kept.len() as u64)
        );
        entry.note = Some(append_note(entry.note.take(), note));
        let doc = Document {
            path: entry.path.clone(),
            text: kept.to_string(),
        };
        (entry, Some(doc))
    };

    let sources: Vec<_> = sources.into_iter().map(&mut capped).collect();
    let files: Vec<_> = files.into_iter().map(&mut capped).collect();

    let mut corpus = Corpus {
        documents: Vec::new(),
        manifest: Manifest {
            entries: Vec::with_capacity(files.len() + sources.len()),
            warnings,
        },
    };
    for (entry, doc) in files.into_iter().chain(sources) {
        corpus.manifest.entries.push(entry);
        corpus.documents.extend(doc);
    }
    corpus
}

fn append_note(existing: Option<String>, more: String) -> String {
    match existing {
        Some(existing) => format!("{existing}; {more}"),
        None => more,
    }
}

#[cfg(test)]
mod tests {
    use super::Pruner;

    #[test]
    fn pruner_descends_only_where_a_glob_can_match() {
        let pruner = Pruner::new(["docs/runbooks/*.md", "migrations/**", "v[12]/*/x"].into_iter());
        for dir in [
            "",
            "docs",
            "docs/runbooks",
            "migrations",
            "migrations/a/b",
            "v1",
            "v2/any",
        ] {
            assert!(pruner.may_contain(dir), "{dir}");
        }
        for dir in [
            "src",
            "docs/other",
            "docs/runbooks/deeper",
            "v3",
            "v1/any/deeper",
            "target",
        ] {
            assert!(!pruner.may_contain(dir), "{dir}");
        }
        // Not splittable on `/`: never pruned.
        let braces = Pruner::new(["{a/b,c}/*.md"].into_iter());
        assert!(braces.may_contain("anything/at/all"));
    }
}
