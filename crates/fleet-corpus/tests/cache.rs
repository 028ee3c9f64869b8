//! Repeated gathers reuse the previous walk only while nothing it depends on
//! changed. Each test takes its own copy of one tree, already gathered once
//! (so cached), checks the cache serves it, changes one thing, and checks the
//! next gather equals a fresh, uncached walk.
//!
//! The cache trusts only stamps older than its racy margin (2 s), so the trees
//! are all built first, left to settle once, then gathered. They live under
//! the target directory rather than /tmp: a parent directory that other
//! processes keep changing would (correctly) keep the cache from serving them.

mod common;

use common::{globs, write};
use fleet_corpus::{
    Corpus, Limits, gather, gather_globs, gather_globs_is_cached, gather_globs_uncached,
};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

const GLOBS: &[&str] = &["**/*.md"];

/// One tree per test, named after it.
const SCENARIOS: &[&str] = &[
    "unchanged",
    "edited_in_place",
    "added",
    "deleted",
    "renamed",
    "gitignore_in_subdirectory",
    "gitignore_in_parent",
    "gitignore_edited",
    "gitignore_removed",
    "ignore_file_added",
    "directory_added",
    "directory_removed",
    "symlink_swapped",
    "root_symlink_swapped",
    "git_exclude_added",
    "sources",
];

struct Fixture {
    roots: Vec<(&'static str, PathBuf)>,
}

/// `outer/ws` is the workspace root; `outer` is a parent directory whose
/// ignore files apply to it.
fn build(root: &Path) {
    write(root, "docs/a.md", "alpha\n");
    write(root, "docs/b.md", "bravo\n");
    write(root, "docs/secret.md", "secret\n");
    write(root, "docs/sub/c.md", "charlie\n");
    write(root, "notes/n.md", "note\n");
    write(root, "notes/old/o.md", "old\n");
    write(root, ".gitignore", "*.tmp.md\n");
    write(root, "build.tmp.md", "ignored\n");
    write(root, "counter.txt", "1\n");
    symlink("a.md", root.join("docs/link.md")).unwrap();
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // A static is never dropped, so a `TempDir` would be left behind on
        // every run: one fixed directory instead, emptied at the start.
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-corpus-cache-tests");
        match std::fs::remove_dir_all(&base) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{e}"),
            _ => {}
        }
        let roots: Vec<_> = SCENARIOS
            .iter()
            .map(|name| {
                let outer = base.join(name).join("outer");
                build(&outer.join("ws"));
                if *name == "root_symlink_swapped" {
                    // The workspace is reached through `current`, a symlink.
                    build(&outer.join("ws2"));
                    write(&outer.join("ws2"), "docs/a.md", "alpha two\n");
                    symlink("ws", outer.join("current")).unwrap();
                    return (*name, outer.join("current"));
                }
                if *name == "git_exclude_added" {
                    std::fs::create_dir_all(outer.join("ws/.git/info")).unwrap();
                }
                (*name, outer.join("ws"))
            })
            .collect();
        // Past the cache's racy margin, so the first gathers are kept.
        std::thread::sleep(Duration::from_millis(2300));
        for (_, root) in &roots {
            gather_default(root);
        }
        Fixture { roots }
    })
}

fn gather_default(root: &Path) -> Corpus {
    gather_globs(root, &globs(GLOBS), false, &Limits::default()).unwrap()
}

fn fresh(root: &Path) -> Corpus {
    gather_globs_uncached(root, &globs(GLOBS), false, &Limits::default()).unwrap()
}

/// The scenario's root, checked to be served from the cache as it is, and
/// what a gather returns before the change.
fn cached_root(name: &str) -> (PathBuf, Corpus) {
    let root = fixture()
        .roots
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, root)| root.clone())
        .unwrap();
    assert!(
        gather_globs_is_cached(&root, &globs(GLOBS), false, &Limits::default()),
        "{name}: the first gather was not cached; nothing would be tested"
    );
    let before = gather_default(&root);
    assert_eq!(before, fresh(&root), "{name}: cached gather differs");
    (root, before)
}

/// After a change: the gather equals a fresh walk, and the change did show.
fn assert_sees_change(root: &Path, before: &Corpus) {
    let after = gather_default(root);
    let expected = fresh(root);
    assert_ne!(&expected, before, "the change should alter the corpus");
    assert_eq!(
        after, expected,
        "a gather after the change returned stale data"
    );
    // And again, whether or not the new walk was kept.
    assert_eq!(gather_default(root), expected);
}

fn paths(corpus: &Corpus) -> Vec<&str> {
    corpus
        .manifest
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect()
}

#[test]
fn an_unchanged_tree_is_served_from_the_cache_and_equals_a_fresh_walk() {
    let (root, before) = cached_root("unchanged");
    assert_eq!(
        paths(&before),
        [
            "docs/a.md",
            "docs/b.md",
            "docs/link.md",
            "docs/secret.md",
            "docs/sub/c.md",
            "notes/n.md",
            "notes/old/o.md"
        ]
    );
    for _ in 0..3 {
        assert_eq!(gather_default(&root), before);
    }
    assert!(gather_globs_is_cached(
        &root,
        &globs(GLOBS),
        false,
        &Limits::default()
    ));
}

#[test]
fn a_same_size_edit_with_the_mtime_put_back_is_seen() {
    let (root, before) = cached_root("edited_in_place");
    let path = root.join("docs/a.md");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    // Same size, same inode; only the ctime (which cannot be set) changes.
    std::fs::write(&path, "ALPHA\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    assert_sees_change(&root, &before);
}

#[test]
fn an_added_file_is_seen() {
    let (root, before) = cached_root("added");
    write(&root, "docs/new.md", "new\n");
    assert_sees_change(&root, &before);
}

#[test]
fn a_deleted_file_is_seen() {
    let (root, before) = cached_root("deleted");
    std::fs::remove_file(root.join("docs/b.md")).unwrap();
    assert_sees_change(&root, &before);
}

#[test]
fn a_renamed_file_is_seen() {
    let (root, before) = cached_root("renamed");
    std::fs::rename(root.join("docs/b.md"), root.join("docs/d.md")).unwrap();
    assert_sees_change(&root, &before);
}

#[test]
fn a_new_gitignore_in_a_subdirectory_is_seen() {
    let (root, before) = cached_root("gitignore_in_subdirectory");
    write(&root, "docs/sub/.gitignore", "c.md\n");
    assert_sees_change(&root, &before);
}

#[test]
fn a_new_gitignore_in_a_parent_of_the_root_is_seen() {
    let (root, before) = cached_root("gitignore_in_parent");
    write(root.parent().unwrap(), ".gitignore", "secret.md\n");
    assert_sees_change(&root, &before);
    assert!(!paths(&gather_default(&root)).contains(&"docs/secret.md"));
}

#[test]
fn an_edited_gitignore_is_seen() {
    let (root, before) = cached_root("gitignore_edited");
    let path = root.join(".gitignore");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    // Same size and mtime as before.
    std::fs::write(&path, "*/secret.md\n").unwrap();
    std::fs::write(&path, "*/secr*t.md\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_sees_change(&root, &before);
}

#[test]
fn a_removed_gitignore_is_seen() {
    let (root, before) = cached_root("gitignore_removed");
    std::fs::remove_file(root.join(".gitignore")).unwrap();
    assert_sees_change(&root, &before);
    assert!(paths(&gather_default(&root)).contains(&"build.tmp.md"));
}

#[test]
fn a_new_ignore_file_is_seen() {
    let (root, before) = cached_root("ignore_file_added");
    write(&root, ".ignore", "notes/\n");
    assert_sees_change(&root, &before);
}

#[test]
fn a_new_directory_with_matching_files_is_seen() {
    let (root, before) = cached_root("directory_added");
    write(&root, "docs/sub/deeper/d.md", "delta\n");
    assert_sees_change(&root, &before);
}

#[test]
fn a_removed_directory_is_seen() {
    let (root, before) = cached_root("directory_removed");
    std::fs::remove_dir_all(root.join("notes/old")).unwrap();
    assert_sees_change(&root, &before);
}

#[test]
fn a_swapped_symlink_is_seen() {
    let (root, before) = cached_root("symlink_swapped");
    // A symlink re-pointed, and a file replaced by a symlink, both atomically.
    symlink("b.md", root.join("docs/link.tmp")).unwrap();
    std::fs::rename(root.join("docs/link.tmp"), root.join("docs/link.md")).unwrap();
    symlink("a.md", root.join("docs/b.tmp")).unwrap();
    std::fs::rename(root.join("docs/b.tmp"), root.join("docs/b.md")).unwrap();
    assert_sees_change(&root, &before);
}

#[test]
fn a_swapped_symlink_to_the_root_is_seen() {
    let (root, before) = cached_root("root_symlink_swapped");
    let outer = root.parent().unwrap();
    symlink("ws2", outer.join("current.tmp")).unwrap();
    std::fs::rename(outer.join("current.tmp"), &root).unwrap();
    assert_sees_change(&root, &before);
}

#[test]
fn a_new_git_exclude_file_is_seen_while_other_git_activity_is_not_a_change() {
    let (root, before) = cached_root("git_exclude_added");
    // What git does to `.git` on most commands: no effect on the corpus.
    write(&root, ".git/index.lock", "");
    std::fs::rename(root.join(".git/index.lock"), root.join(".git/index")).unwrap();
    assert!(gather_globs_is_cached(
        &root,
        &globs(GLOBS),
        false,
        &Limits::default()
    ));
    write(&root, ".git/info/exclude", "secret.md\n");
    assert_sees_change(&root, &before);
}

#[test]
fn sources_run_on_every_gather() {
    let (root, _) = cached_root("sources");
    let step: fleet_core::config::Step = serde_json::from_value(serde_json::json!({
        "name": "r", "kind": "report", "prompt": "p", "corpus": GLOBS,
        "sources": [{"name": "counter", "command": ["cat", "counter.txt"]}]
    }))
    .unwrap();
    let text = |corpus: &Corpus| corpus.documents.last().unwrap().text.clone();
    assert_eq!(
        text(&gather(&root, &step, &Limits::default()).unwrap()),
        "1\n"
    );
    // Not a corpus file: the walk's cache still holds.
    std::fs::write(root.join("counter.txt"), "2\n").unwrap();
    assert!(gather_globs_is_cached(
        &root,
        &globs(GLOBS),
        false,
        &Limits::default()
    ));
    assert_eq!(
        text(&gather(&root, &step, &Limits::default()).unwrap()),
        "2\n"
    );
}
