//! `changed_since`: corpus globs limited to what changed in a real git
//! repository, built here with the `git` binary.

mod common;

use common::{paths, write};
use fleet_core::config::{CorpusEntry, ScopedGlob, Step};
use fleet_corpus::{CorpusError, Limits, Manifest, gather};
use std::path::Path;
use std::process::Command;

/// Runs git in `dir` independent of the machine's git config and identity.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Fleet Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Fleet Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--no-verify", "-m", message]);
}

fn init(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
}

fn step(corpus: Vec<CorpusEntry>) -> Step {
    let mut step: Step = serde_json::from_value(serde_json::json!({
        "name": "readiness", "kind": "report", "prompt": "p"
    }))
    .expect("step");
    step.corpus = corpus;
    step
}

fn since(glob: &str, revision: &str) -> CorpusEntry {
    CorpusEntry::Scoped(ScopedGlob {
        glob: glob.to_owned(),
        changed_since: revision.to_owned(),
    })
}

/// Two releases with migrations in each: v1 (001, 002), then v2 (003, 004,
/// an edit to 002, 001 deleted).
fn two_releases(root: &Path) {
    init(root);
    write(
        root,
        "db/migrate/001_create_users.sql",
        "CREATE TABLE users (id int);\n",
    );
    write(
        root,
        "db/migrate/002_add_email.sql",
        "ALTER TABLE users ADD email text;\n",
    );
    write(root, "docs/notes.md", "# Notes\n");
    commit_all(root, "release 1");
    git(root, &["tag", "-a", "v1", "-m", "v1"]);
    write(
        root,
        "db/migrate/003_orders.sql",
        "CREATE TABLE orders (id int);\n",
    );
    write(
        root,
        "db/migrate/004_drop_legacy.sql",
        "DROP TABLE legacy;\n",
    );
    write(
        root,
        "db/migrate/002_add_email.sql",
        "ALTER TABLE users ADD email text NOT NULL;\n",
    );
    std::fs::remove_file(root.join("db/migrate/001_create_users.sql")).unwrap();
    commit_all(root, "release 2");
    git(root, &["tag", "v2"]);
}

#[test]
fn changed_since_the_first_tag_reads_only_the_second_release() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_releases(root);

    let corpus = gather(
        root,
        &step(vec![since("db/migrate/**", "v1"), "docs/*.md".into()]),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        paths(&corpus),
        [
            "db/migrate/002_add_email.sql",
            "db/migrate/003_orders.sql",
            "db/migrate/004_drop_legacy.sql",
            "docs/notes.md",
        ]
    );
    let [range] = corpus.manifest.scopes.as_slice() else {
        panic!("one scope: {:#?}", corpus.manifest.scopes);
    };
    // An annotated tag resolves to the commit it tags.
    let v1 = git(root, &["rev-parse", "v1^{commit}"]);
    let head = git(root, &["rev-parse", "HEAD"]);
    assert_eq!(range.glob, "db/migrate/**");
    assert_eq!(range.since, "v1");
    assert_eq!(range.since_commit, v1);
    assert_eq!(range.base_commit, v1);
    assert_eq!(range.head, "HEAD");
    assert_eq!(range.head_commit, head);
    assert_eq!(range.files, 3);
    assert_eq!(range.short(), format!("{}..{}", &v1[..7], &head[..7]));
    let shown = fleet_corpus::render_manifest(&corpus, 0);
    assert!(
        shown.contains(&format!(
            "db/migrate/**: changed since `v1` ({}), 3 files",
            range.short()
        )),
        "{shown}"
    );

    // Scoped to v2 (= HEAD): nothing changed since, and it says so.
    let corpus = gather(
        root,
        &step(vec![since("db/migrate/**", "v2")]),
        &Limits::default(),
    )
    .unwrap();
    assert!(paths(&corpus).is_empty(), "{:?}", paths(&corpus));
    assert!(
        corpus
            .manifest
            .warnings
            .iter()
            .any(|w| w.contains("glob `db/migrate/**` matched no file changed since `v2`")),
        "{:?}",
        corpus.manifest.warnings
    );
}

#[test]
fn the_range_is_committed_history_asked_for_on_every_gather() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_releases(root);
    let spec = step(vec![since("db/migrate/**", "v2")]);
    assert!(paths(&gather(root, &spec, &Limits::default()).unwrap()).is_empty());

    // Not committed yet: not part of the release.
    write(
        root,
        "db/migrate/005_index.sql",
        "CREATE INDEX i ON orders (id);\n",
    );
    assert!(paths(&gather(root, &spec, &Limits::default()).unwrap()).is_empty());

    // Committed: HEAD moved, and the same step now reads it.
    commit_all(root, "index");
    let corpus = gather(root, &spec, &Limits::default()).unwrap();
    assert_eq!(paths(&corpus), ["db/migrate/005_index.sql"]);

    // A tag moved with no file touched: the answer follows the tag.
    git(root, &["tag", "-f", "v2", "HEAD"]);
    assert!(paths(&gather(root, &spec, &Limits::default()).unwrap()).is_empty());
}

#[test]
fn a_moved_tag_changes_the_answer_while_the_walk_stays_cached() {
    // Under the target directory, not /tmp, and left to settle past the
    // walk cache's racy margin (see tests/cache.rs), so the walk is kept.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-corpus-scope-moved-tag");
    match std::fs::remove_dir_all(&root) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{e}"),
        _ => {}
    }
    std::fs::create_dir_all(&root).unwrap();
    two_releases(&root);
    std::thread::sleep(std::time::Duration::from_millis(2300));

    let spec = step(vec![since("db/migrate/**", "v2")]);
    let globs = spec.corpus_globs();
    // The walk's stamps include the parent directories (for ignore files
    // that may appear there); where a parent is busy (a checkout under
    // /tmp, where this binary's other tests make their directories), a
    // walk is kept only once it settles, so a few tries.
    let mut cached = false;
    for _ in 0..5 {
        assert!(paths(&gather(&root, &spec, &Limits::default()).unwrap()).is_empty());
        cached = fleet_corpus::gather_globs_is_cached(&root, &globs, false, &Limits::default());
        if cached {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2300));
    }
    assert!(cached, "the walk was not cached; nothing would be tested");

    git(&root, &["tag", "-f", "v2", "v1"]);
    let corpus = gather(&root, &spec, &Limits::default()).unwrap();
    assert_eq!(
        paths(&corpus),
        [
            "db/migrate/002_add_email.sql",
            "db/migrate/003_orders.sql",
            "db/migrate/004_drop_legacy.sql",
        ]
    );
    // git was asked again; the files were not walked again.
    assert!(fleet_corpus::gather_globs_is_cached(
        &root,
        &globs,
        false,
        &Limits::default()
    ));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_plain_glob_beside_a_scoped_one_keeps_what_it_matches() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_releases(root);
    let corpus = gather(
        root,
        &step(vec![
            since("db/migrate/**", "v1"),
            "db/migrate/002_*.sql".into(),
            since("docs/*.md", "v1"),
            since("nothing/**", "v1"),
        ]),
        &Limits::default(),
    )
    .unwrap();
    // One warning per glob that came up empty, whichever way it did.
    let warnings = &corpus.manifest.warnings;
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("glob `nothing/**` matched no file"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("glob `docs/*.md` matched no file changed since `v1`"),
        "{warnings:?}"
    );
    assert_eq!(
        paths(&corpus),
        [
            "db/migrate/002_add_email.sql",
            "db/migrate/003_orders.sql",
            "db/migrate/004_drop_legacy.sql",
        ]
    );
    let files: Vec<(&str, usize)> = corpus
        .manifest
        .scopes
        .iter()
        .map(|s| (s.glob.as_str(), s.files))
        .collect();
    assert_eq!(
        files,
        [("db/migrate/**", 3), ("docs/*.md", 0), ("nothing/**", 0)]
    );
}

#[test]
fn a_revision_on_another_branch_counts_from_the_merge_base() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_releases(root);
    // A hotfix on a branch from v1 edits a file main never touched after v1.
    git(root, &["checkout", "-q", "-b", "hotfix", "v1"]);
    write(root, "docs/notes.md", "# Notes\n\nHotfix 1.0.1.\n");
    commit_all(root, "hotfix");
    git(root, &["tag", "v1.0.1"]);
    git(root, &["checkout", "-q", "main"]);

    let corpus = gather(
        root,
        &step(vec![
            since("db/migrate/**", "v1.0.1"),
            since("docs/*.md", "v1.0.1"),
        ]),
        &Limits::default(),
    )
    .unwrap();
    // What main changed since the fork point, not the hotfix's own edits.
    assert_eq!(
        paths(&corpus),
        [
            "db/migrate/002_add_email.sql",
            "db/migrate/003_orders.sql",
            "db/migrate/004_drop_legacy.sql",
        ]
    );
    let range = &corpus.manifest.scopes[0];
    assert_eq!(range.since_commit, git(root, &["rev-parse", "v1.0.1"]));
    assert_eq!(range.base_commit, git(root, &["rev-parse", "v1^{commit}"]));
}

#[test]
fn a_workspace_below_the_repository_root_sees_its_own_paths() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    init(repo);
    write(repo, "app/db/migrate/001.sql", "a\n");
    write(repo, "other/db/migrate/001.sql", "a\n");
    commit_all(repo, "one");
    git(repo, &["tag", "v1"]);
    write(repo, "app/db/migrate/002.sql", "b\n");
    write(repo, "other/db/migrate/002.sql", "b\n");
    // A top-level path that the workspace's glob would match if paths were not relative.
    write(repo, "db/migrate/009.sql", "c\n");
    commit_all(repo, "two");

    let corpus = gather(
        &repo.join("app"),
        &step(vec![since("db/migrate/*.sql", "v1")]),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(paths(&corpus), ["db/migrate/002.sql"]);
}

#[test]
fn an_unknown_revision_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_releases(root);
    let err = gather(
        root,
        &step(vec![since("db/migrate/**", "v9.9.9")]),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, CorpusError::UnknownRevision { revision, glob, .. } if revision == "v9.9.9" && glob == "db/migrate/**"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("unknown git revision `v9.9.9`"),
        "{message}"
    );

    // Never read as an option, even if validation were bypassed.
    let err = gather(
        root,
        &step(vec![since("db/migrate/**", "--output=/tmp/pwned")]),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, CorpusError::InvalidRevision { .. }),
        "{err:?}"
    );
    assert!(!Path::new("/tmp/pwned").exists());
}

#[test]
fn changed_since_outside_a_git_repository_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "db/migrate/001.sql", "a\n");
    let inside_a_repo = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .current_dir(root)
        .output()
        .is_ok_and(|o| o.status.success());
    if inside_a_repo {
        eprintln!("skipping: the temporary directory is inside a git repository");
        return;
    }
    let err = gather(
        root,
        &step(vec![since("db/migrate/**", "v1")]),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, CorpusError::NotAGitRepository { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("is not a git repository"), "{err}");

    // Without changed_since, git is never asked.
    let corpus = gather(
        root,
        &step(vec!["db/migrate/**".into()]),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(paths(&corpus), ["db/migrate/001.sql"]);
    assert!(corpus.manifest.scopes.is_empty());
}

#[test]
fn a_repository_without_commits_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init(root);
    write(root, "db/migrate/001.sql", "a\n");
    let err = gather(
        root,
        &step(vec![since("db/migrate/**", "v1")]),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CorpusError::NoHead { .. }), "{err:?}");
}

#[test]
fn manifests_stored_before_scopes_existed_still_read() {
    let old =
        r#"{"entries":[{"path":"a.md","size":1,"blake3":"00","lines":1,"inclusion":"whole"}]}"#;
    let manifest: Manifest = serde_json::from_str(old).unwrap();
    assert!(manifest.scopes.is_empty());
    // And one without scopes is written as before.
    assert_eq!(serde_json::to_string(&manifest).unwrap(), old);
}

#[test]
fn a_scoped_glob_with_no_change_in_the_range_is_no_gap_but_a_typo_is() {
    // Nothing under db/migrate changed since v3 (HEAD): nothing new to read, not a
    // gap. A scoped glob that matches no file at all is one, as unscoped.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    two_releases(root);
    git(root, &["tag", "-a", "v3", "-m", "v3"]);
    let corpus = gather(
        root,
        &step(vec![
            since("db/migrate/*.sql", "v3"),
            since("db/migrat/*.sql", "v3"),
            CorpusEntry::Glob("docs/*.md".into()),
        ]),
        &Limits::default(),
    )
    .expect("gather");
    assert_eq!(paths(&corpus), ["docs/notes.md"]);
    assert_eq!(
        corpus.manifest.gaps,
        [fleet_corpus::CorpusGap::GlobMatchedNothing {
            glob: "db/migrat/*.sql".into(),
            hint: None
        }]
    );
}
