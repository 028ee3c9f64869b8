//! Walking the workspace for a step's corpus globs and reading what matches.

use crate::cache::{Cache, Key, Recorder, Stamp};
use crate::error::{CorpusError, EscapingSymlink};
use crate::parallel::map_files;
use crate::read::{Content, classify_file, count_lines, read_capped, whole_lines_within};
use crate::render::human_bytes;
use crate::{Corpus, Document, Inclusion, Limits, Manifest, ManifestEntry, run_sources};
use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use ignore::{DirEntry, WalkBuilder};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

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
    // Asked of git on every gather, never cached: HEAD moves while the files stay put.
    let mut changed = crate::scope::Scope::resolve(&root, &step.corpus)?;
    let globs = step.corpus_globs();
    let (files, sources) = std::thread::scope(|scope| {
        let sources = (!step.sources.is_empty())
            .then(|| scope.spawn(|| run_sources(&root, &step.sources, limits)));
        let files = collect_files(&root, &globs, step.include_ignored, limits, true);
        let sources = match sources {
            None => Ok(Vec::new()),
            Some(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        };
        (files, sources)
    });
    let (mut files, mut warnings) = files?;
    // Judged before the changed_since filter: a scoped glob whose files did
    // not change in the range read nothing new, which is not a gap.
    let unmatched = {
        let paths: Vec<&str> = files.iter().map(|f| f.entry.path.as_str()).collect();
        crate::gaps::unmatched_globs(&root, &globs, &paths)
    };
    if let Some(changed) = &mut changed {
        changed.filter(&mut files, |f| &f.entry.path, &mut warnings);
    }
    let mut corpus = assemble(files, sources?, warnings, limits.max_total_bytes);
    corpus.manifest.scopes = changed.map(|c| c.into_ranges()).unwrap_or_default();
    corpus.manifest.gaps = crate::gaps::find(unmatched, &corpus);
    Ok(corpus)
}

/// Gathers the files matching `globs` under `root` (no sources).
pub fn gather_globs(
    root: &Path,
    globs: &[String],
    include_ignored: bool,
    limits: &Limits,
) -> Result<Corpus, CorpusError> {
    gather_globs_with(root, globs, include_ignored, limits, true)
}

/// [`gather_globs`] without the cache: always walks and reads, and keeps
/// nothing. What a cached gather must equal (tests compare the two).
#[doc(hidden)]
pub fn gather_globs_uncached(
    root: &Path,
    globs: &[String],
    include_ignored: bool,
    limits: &Limits,
) -> Result<Corpus, CorpusError> {
    gather_globs_with(root, globs, include_ignored, limits, false)
}

/// Would [`gather_globs`] with these arguments be served from the cache now?
/// For tests; reads nothing but metadata.
#[doc(hidden)]
pub fn gather_globs_is_cached(
    root: &Path,
    globs: &[String],
    include_ignored: bool,
    limits: &Limits,
) -> bool {
    let Ok(root) = canonical_root(root) else {
        return false;
    };
    let key = Key {
        root,
        globs: globs.to_vec(),
        include_ignored,
        max_file_bytes: limits.max_file_bytes,
    };
    WALKS.get(&key).is_some_and(|snapshot| snapshot.valid())
}

fn gather_globs_with(
    root: &Path,
    globs: &[String],
    include_ignored: bool,
    limits: &Limits,
    cached: bool,
) -> Result<Corpus, CorpusError> {
    let root = canonical_root(root)?;
    let (files, warnings) = collect_files(&root, globs, include_ignored, limits, cached)?;
    let unmatched = {
        let paths: Vec<&str> = files.iter().map(|f| f.entry.path.as_str()).collect();
        crate::gaps::unmatched_globs(&root, globs, &paths)
    };
    let mut corpus = assemble(files, Vec::new(), warnings, limits.max_total_bytes);
    corpus.manifest.gaps = crate::gaps::find(unmatched, &corpus);
    Ok(corpus)
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
#[derive(Clone)]
struct FileRecord {
    entry: ManifestEntry,
    /// Present when the file is text.
    text: Option<String>,
}

/// What the walk found at one path, and what a cached copy of it needs.
#[derive(Clone)]
enum Item {
    /// A regular file; its record holds while its stamp (taken from the open
    /// file before reading it) does.
    File {
        absolute: PathBuf,
        stamp: Option<Stamp>,
        record: FileRecord,
    },
    /// A symlink: its note depends on paths anywhere (where it points, and
    /// whether that exists), so it is resolved again on every gather.
    Symlink { absolute: PathBuf, path: String },
    /// Not a regular file (FIFO, socket, device): the record depends only on
    /// the type, which cannot change without the directory changing.
    Other(FileRecord),
}

/// A walk's result, sorted by path, as the cache keeps it.
struct Walked {
    items: Vec<Item>,
    warnings: Vec<String>,
    /// Every directory the walk listed (the root included).
    dirs: Vec<PathBuf>,
    /// Part of the tree could not be read: the result is not cached.
    walk_errors: bool,
}

/// Walk results of this process; see `cache.rs`.
static WALKS: Cache<Walked> = Cache::new();

/// Walks `root` and reads every file a glob matches. Returns the records
/// sorted by path, plus warnings. With `cached`, a previous walk with the same
/// arguments is reused when nothing it depends on changed.
fn collect_files(
    root: &Path,
    globs: &[String],
    include_ignored: bool,
    limits: &Limits,
    cached: bool,
) -> Result<(Vec<FileRecord>, Vec<String>), CorpusError> {
    if globs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let compiled = CompiledGlobs::get(globs)?;
    let key = Key {
        root: root.to_path_buf(),
        globs: globs.to_vec(),
        include_ignored,
        max_file_bytes: limits.max_file_bytes,
    };
    if cached && let Some(snapshot) = WALKS.get(&key) {
        if snapshot.valid() {
            return resolve(root, &snapshot.value.items, snapshot.value.warnings.clone());
        }
        WALKS.remove(&key);
    }

    // Taken before anything is read: every stamp must be older than this by
    // the racy margin for the result to be kept.
    let started = SystemTime::now();
    let walked = walk(root, &compiled, include_ignored, limits);
    let text_bytes = walked
        .items
        .iter()
        .map(|item| match item {
            Item::File { record, .. } => record.text.as_ref().map_or(0, String::len),
            _ => 0,
        })
        .sum();
    if !(cached && !walked.walk_errors && WALKS.fits(text_bytes)) {
        // Not kept: the records move out instead of being copied.
        return resolve_owned(root, walked.items, walked.warnings);
    }
    let result = resolve(root, &walked.items, walked.warnings.clone());
    if result.is_ok() {
        let recorder = record_dependencies(root, &walked, include_ignored, started);
        WALKS.put(key, recorder, text_bytes, walked);
    }
    result
}

/// What a walk's result depends on: every file read, the listing of every
/// directory walked and, when ignore files apply, those in the walked
/// directories and in every parent directory (`ignore` reads the parents'
/// too), each directory's listing covering the ignore files it does not hold.
fn record_dependencies(
    root: &Path,
    walked: &Walked,
    include_ignored: bool,
    started: SystemTime,
) -> Recorder {
    let mut recorder = Recorder::new(started);
    for item in &walked.items {
        if let Item::File {
            absolute, stamp, ..
        } = item
        {
            recorder.stamped(absolute, *stamp);
        }
    }
    // A file changed moments ago makes the result unkeepable: stop here.
    if !recorder.ok() {
        return recorder;
    }
    for dir in &walked.dirs {
        recorder.listed_dir(dir);
        if !include_ignored {
            recorder.ignore_files_in(dir);
        }
    }
    if !include_ignored {
        for parent in root.ancestors().skip(1) {
            recorder.listed_dir(parent);
            recorder.ignore_files_in(parent);
        }
    }
    recorder
}

/// Turns a walk's items into records: symlinks are resolved now.
fn resolve(
    root: &Path,
    items: &[Item],
    warnings: Vec<String>,
) -> Result<(Vec<FileRecord>, Vec<String>), CorpusError> {
    let records = items.iter().map(|item| match item {
        Item::File { record, .. } | Item::Other(record) => Ok(record.clone()),
        Item::Symlink { absolute, path } => symlink_record(root, absolute, path),
    });
    collect_records(records, items.len(), warnings)
}

/// [`resolve`] for items that are not kept.
fn resolve_owned(
    root: &Path,
    items: Vec<Item>,
    warnings: Vec<String>,
) -> Result<(Vec<FileRecord>, Vec<String>), CorpusError> {
    let count = items.len();
    let records = items.into_iter().map(|item| match item {
        Item::File { record, .. } | Item::Other(record) => Ok(record),
        Item::Symlink { absolute, path } => symlink_record(root, &absolute, &path),
    });
    collect_records(records, count, warnings)
}

fn collect_records(
    records: impl Iterator<Item = Result<FileRecord, EscapingSymlink>>,
    count: usize,
    warnings: Vec<String>,
) -> Result<(Vec<FileRecord>, Vec<String>), CorpusError> {
    let mut escapes = Vec::new();
    let mut kept = Vec::with_capacity(count);
    for record in records {
        match record {
            Ok(record) => kept.push(record),
            Err(escape) => escapes.push(escape),
        }
    }
    if !escapes.is_empty() {
        escapes.sort_by(|a, b| a.path.cmp(&b.path));
        return Err(CorpusError::SymlinkEscapes { links: escapes });
    }
    Ok((kept, warnings))
}

/// The walk itself: finds and reads the matching files.
fn walk(root: &Path, compiled: &CompiledGlobs, include_ignored: bool, limits: &Limits) -> Walked {
    let CompiledGlobs {
        globs,
        set,
        matchers,
        pruner,
    } = compiled;
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

    let context = VisitContext { root, set };
    // One thread: `ignore`'s parallel walker spawns its threads per walk and
    // they poll for work with 1 ms sleeps, which cost more than a typical
    // corpus (a few dozen files under pruned globs) takes to read; the engine
    // gets its parallelism from running steps and runs side by side. The
    // files matched are read afterwards, in parallel when there are many
    // (`parallel.rs`): on a large tree that is most of the work.
    let mut collector = Collector {
        context: &context,
        found: Found::default(),
    };
    for entry in walk.build() {
        collector.visit(entry);
    }

    let Found {
        mut items,
        mut warnings,
        dirs,
        walk_errors,
        to_read,
    } = collector.found;
    // Read after the walk, on several cores when there are many.
    let max_file_bytes = limits.max_file_bytes;
    items.extend(map_files(to_read, |(absolute, path)| {
        let (record, stamp) = read_file(&absolute, path, max_file_bytes);
        Item::File {
            absolute,
            stamp,
            record,
        }
    }));
    // Directory listing order varies by filesystem; the corpus must not.
    items.sort_unstable_by(|a, b| a.path().cmp(b.path()));
    warnings.sort();

    for ((original, _), matcher) in globs.iter().zip(matchers) {
        if !items.iter().any(|item| matcher.is_match(item.path())) {
            let hint = match crate::gaps::directory_hint(root, original) {
                Some(directory) => format!(" ({directory})"),
                None if include_ignored => String::new(),
                None => " (hidden and git-ignored files are skipped unless the step sets include_ignored: true)".to_string(),
            };
            warnings.push(format!("glob `{original}` matched no file{hint}"));
        }
    }

    Walked {
        items,
        warnings,
        dirs,
        walk_errors,
    }
}

impl Item {
    /// Workspace-relative path.
    fn path(&self) -> &str {
        match self {
            Item::File { record, .. } | Item::Other(record) => &record.entry.path,
            Item::Symlink { path, .. } => path,
        }
    }
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

/// For each of `globs`, whether it matches one of `paths` (workspace-relative),
/// by the very matchers the walk uses. Globs that do not compile match nothing.
pub(crate) fn matched_globs(globs: &[String], paths: &[&str]) -> Vec<bool> {
    let Ok(compiled) = CompiledGlobs::get(globs) else {
        return vec![false; globs.len()];
    };
    compiled
        .matchers
        .iter()
        .map(|m| paths.iter().any(|p| m.is_match(p)))
        .collect()
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

/// One glob's matcher, compiled as the walk compiles it.
pub(crate) fn glob_matcher(glob: &str) -> Result<GlobMatcher, CorpusError> {
    Ok(compile_glob(glob, &normalize_glob(glob)?)?.compile_matcher())
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
    items: Vec<Item>,
    warnings: Vec<String>,
    /// Every directory the walk listed (the root included).
    dirs: Vec<PathBuf>,
    /// Part of the tree could not be read: the result is not cached.
    walk_errors: bool,
    /// Regular files matched, (absolute, workspace-relative), read once the
    /// walk is done.
    to_read: Vec<(PathBuf, String)>,
}

struct VisitContext<'a> {
    root: &'a Path,
    set: &'a GlobSet,
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
                self.found.walk_errors = true;
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
            // `filter_entry` already dropped the directories not walked.
            self.found.dirs.push(entry.into_path());
            return;
        }
        let Ok(rel) = entry.path().strip_prefix(self.context.root) else {
            return;
        };
        if !self.context.set.is_match(rel) {
            return;
        }
        let path = relative_string(rel);
        let item = if file_type.is_symlink() {
            Item::Symlink {
                absolute: entry.into_path(),
                path,
            }
        } else if file_type.is_file() {
            self.found.to_read.push((entry.into_path(), path));
            return;
        } else {
            // FIFOs, sockets, devices: reading could block or never end.
            Item::Other(FileRecord {
                entry: entry_without_content(path, "not a regular file", Inclusion::Omitted),
                text: None,
            })
        };
        self.found.items.push(item);
    }
}

/// Symlinks are not followed: one pointing outside the workspace is an
/// error; one inside is recorded (its target is read only if a glob matches
/// the target itself, so ignore rules cannot be sidestepped).
fn symlink_record(root: &Path, absolute: &Path, path: &str) -> Result<FileRecord, EscapingSymlink> {
    let written = std::fs::read_link(absolute).unwrap_or_default();
    let link_text = written.to_string_lossy().into_owned();
    let note = match std::fs::canonicalize(absolute) {
        Ok(target) => match target.strip_prefix(root) {
            Ok(inside) => format!("symlink to `{}`; not followed", relative_string(inside)),
            Err(_) => {
                return Err(EscapingSymlink {
                    path: path.to_string(),
                    target,
                });
            }
        },
        Err(_) => format!("broken symlink to `{link_text}`; not followed"),
    };
    // Like git, a symlink's content is the path it holds.
    Ok(FileRecord {
        entry: ManifestEntry {
            path: path.to_string(),
            size: link_text.len() as u64,
            blake3: blake3::hash(link_text.as_bytes()).to_hex().to_string(),
            lines: 0,
            inclusion: Inclusion::SkippedSymlink,
            note: Some(note),
            sha256: None,
        },
        text: None,
    })
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
        sha256: None,
    }
}

/// Reads one regular file. The stamp comes from the open file before it is
/// read, so a later change shows as a different stamp.
fn read_file(absolute: &Path, path: String, max_file_bytes: u64) -> (FileRecord, Option<Stamp>) {
    let mut stamp = None;
    let raw = std::fs::File::open(absolute).and_then(|file| {
        let metadata = file.metadata();
        stamp = metadata.as_ref().ok().and_then(Stamp::of);
        let size_hint = metadata.map(|m| m.len()).unwrap_or(0);
        read_capped(file, size_hint, max_file_bytes)
    });
    let raw = match raw {
        Ok(raw) => raw,
        Err(err) => {
            let record = FileRecord {
                entry: entry_without_content(
                    path,
                    format!("could not be read: {err}"),
                    Inclusion::Omitted,
                ),
                text: None,
            };
            // An unreadable file is not cached: it may become readable
            // without its stamp changing (e.g. a parent's permissions).
            return (record, None);
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
    let record = FileRecord {
        entry: ManifestEntry {
            path,
            size: snapshot.size,
            blake3: snapshot.blake3,
            lines: snapshot.lines,
            inclusion,
            note,
            sha256: None,
        },
        text,
    };
    (record, stamp)
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
        // Formatted only here: most gathers never reach the cap.
        let cap_note = format!("total cap of {} reached", human_bytes(max_total_bytes));
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
            gaps: Vec::new(),
            scopes: Vec::new(),
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
