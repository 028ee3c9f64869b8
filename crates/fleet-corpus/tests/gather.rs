mod common;

use common::{entry, globs, paths, write};
use fleet_corpus::{CorpusError, Inclusion, Limits, gather, gather_globs};
use std::os::unix::fs::symlink;

fn gather_default(root: &std::path::Path, list: &[&str]) -> fleet_corpus::Corpus {
    gather_globs(root, &globs(list), false, &Limits::default()).unwrap()
}

#[test]
fn star_stays_in_one_directory_and_double_star_crosses() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docs/a.md", "a\n");
    write(root, "docs/sub/b.md", "b\n");
    write(root, "docs/sub/deep/c.md", "c\n");
    write(root, "docs/notes.txt", "n\n");
    write(root, "top.md", "t\n");

    assert_eq!(paths(&gather_default(root, &["docs/*.md"])), ["docs/a.md"]);
    assert_eq!(
        paths(&gather_default(root, &["docs/**/*.md"])),
        ["docs/a.md", "docs/sub/b.md", "docs/sub/deep/c.md"]
    );
    assert_eq!(
        paths(&gather_default(root, &["**/*.md"])),
        ["docs/a.md", "docs/sub/b.md", "docs/sub/deep/c.md", "top.md"]
    );
    assert_eq!(paths(&gather_default(root, &["*.md"])), ["top.md"]);
    // `**` also matches zero directories.
    assert_eq!(
        paths(&gather_default(root, &["docs/**/a.md"])),
        ["docs/a.md"]
    );
    assert_eq!(
        paths(&gather_default(root, &["docs/sub/**"])),
        ["docs/sub/b.md", "docs/sub/deep/c.md"]
    );
    // A brace holding `/` is matched without directory pruning: `*` must
    // still stop at `/` there.
    assert_eq!(
        paths(&gather_default(root, &["{docs/sub,nothing/here}/*.md"])),
        ["docs/sub/b.md"]
    );
}

#[test]
fn braces_classes_and_dot_slash_globs_match_like_globset() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docs/a.md", "a\n");
    write(root, "notes/b.md", "b\n");
    write(root, "notes/x/c.md", "c\n");
    write(root, "misc/d.md", "d\n");
    write(root, "v1/e.txt", "e\n");
    write(root, "v2/f.txt", "f\n");

    assert_eq!(
        paths(&gather_default(root, &["{docs,notes}/*.md"])),
        ["docs/a.md", "notes/b.md"]
    );
    // A brace spanning directories cannot be pruned per component; it must still match.
    assert_eq!(
        paths(&gather_default(root, &["{docs/a,notes/x/c}.md"])),
        ["docs/a.md", "notes/x/c.md"]
    );
    assert_eq!(
        paths(&gather_default(root, &["v[12]/*.txt"])),
        ["v1/e.txt", "v2/f.txt"]
    );
    assert_eq!(
        paths(&gather_default(root, &["./misc//d.md"])),
        ["misc/d.md"]
    );
    // Several globs matching the same file give one document.
    assert_eq!(
        paths(&gather_default(root, &["docs/*.md", "**/a.md", "docs/**"])),
        ["docs/a.md"]
    );
}

#[test]
fn hidden_and_gitignored_files_are_skipped_without_a_git_repo_unless_include_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, ".gitignore", "ignored.md\nbuild/\n");
    write(root, "visible.md", "v\n");
    write(root, "ignored.md", "i\n");
    write(root, ".hidden.md", "h\n");
    write(root, "build/out.md", "o\n");
    write(root, ".secret/x.md", "x\n");
    write(root, "sub/.gitignore", "local.md\n");
    write(root, "sub/local.md", "l\n");
    write(root, "sub/kept.md", "k\n");

    let corpus = gather_default(root, &["**/*.md"]);
    assert_eq!(paths(&corpus), ["sub/kept.md", "visible.md"]);

    let all = gather_globs(root, &globs(&["**/*.md"]), true, &Limits::default()).unwrap();
    assert_eq!(
        paths(&all),
        [
            ".hidden.md",
            ".secret/x.md",
            "build/out.md",
            "ignored.md",
            "sub/kept.md",
            "sub/local.md",
            "visible.md"
        ]
    );
}

#[test]
fn include_ignored_still_never_reads_the_git_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, ".git/config", "[core]\n");
    write(root, ".git/HEAD", "ref: refs/heads/main\n");
    write(root, "a.txt", "a\n");
    let corpus = gather_globs(root, &globs(&["**/*"]), true, &Limits::default()).unwrap();
    assert_eq!(paths(&corpus), ["a.txt"]);
}

#[test]
fn a_symlink_pointing_outside_the_workspace_is_an_error_naming_it() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.md", "top secret\n");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docs/ok.md", "fine\n");
    symlink(outside.path().join("secret.md"), root.join("docs/leak.md")).unwrap();

    let err = gather_globs(root, &globs(&["docs/*.md"]), false, &Limits::default()).unwrap_err();
    assert!(matches!(err, CorpusError::SymlinkEscapes { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("docs/leak.md"), "{message}");
    assert!(message.contains("secret.md"), "{message}");

    // A glob that does not match the link is unaffected by it.
    assert_eq!(
        paths(&gather_default(root, &["docs/ok.md"])),
        ["docs/ok.md"]
    );
}

#[test]
fn a_directory_symlink_pointing_outside_is_an_error_and_never_walked() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "etc/passwd", "root:x:0:0\n");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docs/ok.md", "fine\n");
    symlink(outside.path().join("etc"), root.join("docs/etc")).unwrap();

    let err = gather_globs(root, &globs(&["docs/**"]), false, &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("docs/etc"), "{err}");
    // Not followed: nothing under it is found even by a glob aimed inside it.
    let corpus = gather_default(root, &["docs/etc/*"]);
    assert!(corpus.documents.is_empty());
}

#[test]
fn a_symlink_inside_the_workspace_is_recorded_but_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docs/real.md", "real\n");
    write(root, ".private/hidden.md", "should stay hidden\n");
    symlink("real.md", root.join("docs/alias.md")).unwrap();
    symlink("../.private/hidden.md", root.join("docs/sneaky.md")).unwrap();
    symlink("missing.md", root.join("docs/broken.md")).unwrap();

    let corpus = gather_default(root, &["docs/*.md"]);
    assert_eq!(paths(&corpus), ["docs/real.md"]);
    let alias = entry(&corpus, "docs/alias.md");
    assert_eq!(alias.inclusion, Inclusion::SkippedSymlink);
    assert!(alias.note.as_deref().unwrap().contains("docs/real.md"));
    assert_eq!(alias.blake3, blake3::hash(b"real.md").to_hex().to_string());
    assert_eq!(
        entry(&corpus, "docs/sneaky.md").inclusion,
        Inclusion::SkippedSymlink
    );
    let broken = entry(&corpus, "docs/broken.md");
    assert_eq!(broken.inclusion, Inclusion::SkippedSymlink);
    assert!(broken.note.as_deref().unwrap().contains("broken"));
}

#[test]
fn globs_that_leave_the_workspace_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["../x", "/etc/passwd", "docs/../../x", "~/notes.md", "a/.."] {
        let err = gather_globs(dir.path(), &globs(&[bad]), false, &Limits::default()).unwrap_err();
        assert!(
            matches!(err, CorpusError::GlobEscapes { .. }),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains(bad), "{err}");
    }
    let err = gather_globs(
        dir.path(),
        &globs(&["docs/[.md"]),
        false,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CorpusError::InvalidGlob { .. }), "{err:?}");
}

#[test]
fn a_glob_matching_nothing_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docs/a.md", "a\n");
    let corpus = gather_default(root, &["docs/*.md", "dcos/*.md"]);
    assert_eq!(paths(&corpus), ["docs/a.md"]);
    assert_eq!(
        corpus.manifest.warnings.len(),
        1,
        "{:?}",
        corpus.manifest.warnings
    );
    assert!(corpus.manifest.warnings[0].contains("`dcos/*.md`"));
    assert!(corpus.manifest.warnings[0].contains("include_ignored"));
}

#[test]
fn binary_and_non_utf8_files_are_skipped_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    write(root, "img.png", &png);
    let latin1 = b"caf\xe9 cr\xe8me\n".to_vec();
    write(root, "latin1.txt", &latin1);
    write(root, "ok.txt", "fine\n");

    let corpus = gather_default(root, &["*"]);
    assert_eq!(paths(&corpus), ["ok.txt"]);
    let img = entry(&corpus, "img.png");
    assert_eq!(img.inclusion, Inclusion::SkippedBinary);
    assert_eq!(img.size, png.len() as u64);
    assert_eq!(img.blake3, blake3::hash(&png).to_hex().to_string());
    assert_eq!(img.lines, 0);
    assert!(img.note.as_deref().unwrap().contains("NUL"));
    let latin = entry(&corpus, "latin1.txt");
    assert_eq!(latin.inclusion, Inclusion::SkippedBinary);
    assert!(latin.note.as_deref().unwrap().contains("UTF-8"));
}

#[test]
fn a_nul_byte_after_the_first_8_kib_does_not_make_a_file_binary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut contents = "x".repeat(9000).into_bytes();
    contents.extend_from_slice(b"\n\0\n");
    write(root, "late-nul.txt", &contents);
    let corpus = gather_default(root, &["*.txt"]);
    assert_eq!(entry(&corpus, "late-nul.txt").inclusion, Inclusion::Whole);
}

#[test]
fn per_file_cap_keeps_whole_lines_and_the_manifest_describes_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let big: String = (1..=500)
        .map(|i| format!("line {i} of the big log\n"))
        .collect();
    write(root, "big.log", &big);
    write(root, "small.log", "tiny\n");
    let limits = Limits {
        max_file_bytes: 1000,
        ..Limits::default()
    };
    let corpus = gather_globs(root, &globs(&["*.log"]), false, &limits).unwrap();
    let doc = &corpus.documents[0];
    assert_eq!(doc.path, "big.log");
    assert!(
        doc.text.len() <= 1000 && doc.text.len() > 900,
        "{}",
        doc.text.len()
    );
    assert!(doc.text.ends_with('\n'));
    assert!(big.starts_with(&doc.text));

    let e = entry(&corpus, "big.log");
    assert_eq!(e.inclusion, Inclusion::Truncated);
    assert_eq!(e.size, big.len() as u64);
    assert_eq!(e.lines, 500);
    assert_eq!(e.blake3, blake3::hash(big.as_bytes()).to_hex().to_string());
    assert!(e.note.as_deref().unwrap().contains("per-file cap"));
    assert_eq!(entry(&corpus, "small.log").inclusion, Inclusion::Whole);
}

#[test]
fn a_file_exactly_at_the_cap_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "exact.txt", "0123456789\n".repeat(10));
    let limits = Limits {
        max_file_bytes: 110,
        ..Limits::default()
    };
    let corpus = gather_globs(root, &globs(&["*.txt"]), false, &limits).unwrap();
    assert_eq!(entry(&corpus, "exact.txt").inclusion, Inclusion::Whole);
    assert_eq!(corpus.documents[0].text.len(), 110);
}

#[test]
fn total_cap_truncates_the_document_that_crosses_it_and_omits_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let body = "0123456789\n".repeat(4); // 44 bytes, 4 lines
    for name in ["a.txt", "b.txt", "c.txt", "d.txt"] {
        write(root, name, &body);
    }
    let limits = Limits {
        max_total_bytes: 100,
        ..Limits::default()
    };
    let corpus = gather_globs(root, &globs(&["*.txt"]), false, &limits).unwrap();
    assert_eq!(paths(&corpus), ["a.txt", "b.txt", "c.txt"]);
    assert_eq!(corpus.documents[2].text, "0123456789\n");
    let total: usize = corpus.documents.iter().map(|d| d.text.len()).sum();
    assert!(total <= 100);

    assert_eq!(entry(&corpus, "a.txt").inclusion, Inclusion::Whole);
    assert_eq!(entry(&corpus, "b.txt").inclusion, Inclusion::Whole);
    let c = entry(&corpus, "c.txt");
    assert_eq!(c.inclusion, Inclusion::Truncated);
    assert!(c.note.as_deref().unwrap().contains("total cap"));
    assert_eq!(c.size, 44);
    let d = entry(&corpus, "d.txt");
    assert_eq!(d.inclusion, Inclusion::Omitted);
    assert!(d.note.as_deref().unwrap().contains("total cap"));
    assert_eq!(d.blake3, blake3::hash(body.as_bytes()).to_hex().to_string());
}

#[test]
fn order_is_sorted_by_path_whatever_the_walk_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut expected = Vec::new();
    for d in 0..12 {
        for f in (0..25).rev() {
            let rel = format!("d{d:02}/sub{}/f{f:03}.md", f % 3);
            write(root, &rel, format!("{rel}\n"));
            expected.push(rel);
        }
    }
    expected.sort();
    let first = gather_default(root, &["**/*.md"]);
    assert_eq!(paths(&first), expected);
    let entry_paths: Vec<&str> = first
        .manifest
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(entry_paths, expected);
    for _ in 0..3 {
        assert_eq!(gather_default(root, &["**/*.md"]), first);
    }
}

#[test]
fn manifest_hashes_sizes_and_lines_match_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let files = [
        ("a.md", "one\ntwo\nthree\n"),
        ("b.md", "no trailing newline"),
        ("c.md", ""),
        ("d.md", "\n\n"),
    ];
    for (name, body) in files {
        write(root, name, body);
    }
    let corpus = gather_default(root, &["*.md"]);
    for (name, body) in files {
        let e = entry(&corpus, name);
        let on_disk = std::fs::read(root.join(name)).unwrap();
        assert_eq!(
            e.blake3,
            blake3::hash(&on_disk).to_hex().to_string(),
            "{name}"
        );
        assert_eq!(e.size, on_disk.len() as u64, "{name}");
        assert_eq!(e.lines, body.lines().count() as u64, "{name}");
        assert_eq!(e.inclusion, Inclusion::Whole);
    }
}

#[test]
fn fifos_are_recorded_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.txt", "a\n");
    let status = std::process::Command::new("mkfifo")
        .arg(root.join("pipe.txt"))
        .status()
        .unwrap();
    assert!(status.success());
    let corpus = gather_default(root, &["*.txt"]);
    assert_eq!(paths(&corpus), ["a.txt"]);
    assert_eq!(entry(&corpus, "pipe.txt").inclusion, Inclusion::Omitted);
}

#[test]
fn a_missing_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = gather_globs(
        &dir.path().join("nope"),
        &globs(&["*"]),
        false,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CorpusError::Root { .. }), "{err:?}");
}

#[test]
fn gather_reads_a_steps_globs_and_sources_files_first_then_sources_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docs/releases/1.2.md", "# 1.2\n- [ ] migrate\n");
    write(root, "docs/runbooks/deploy.md", "# Deploy\n");
    let step: fleet_core::config::Step = serde_json::from_value(serde_json::json!({
        "name": "readiness",
        "kind": "report",
        "prompt": "Assemble the report",
        "corpus": ["docs/releases/*.md", "docs/runbooks/*.md"],
        "sources": [
            {"name": "z-ci", "command": "echo green"},
            {"name": "open-bugs", "command": ["printf", "REG-1 open\n"]}
        ]
    }))
    .unwrap();
    let corpus = gather(root, &step, &Limits::default()).unwrap();
    assert_eq!(
        paths(&corpus),
        [
            "docs/releases/1.2.md",
            "docs/runbooks/deploy.md",
            "source:open-bugs",
            "source:z-ci"
        ]
    );
    assert_eq!(corpus.documents[2].text, "REG-1 open\n");
    assert_eq!(corpus.documents[3].text, "green\n");
}

#[test]
fn in_the_total_cap_sources_count_before_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.md", "0123456789\n".repeat(5));
    let step: fleet_core::config::Step = serde_json::from_value(serde_json::json!({
        "name": "r", "kind": "report", "prompt": "p", "corpus": ["*.md"],
        "sources": [{"name": "issues", "command": "printf '0123456789\\n%.0s' 1 2 3 4 5"}]
    }))
    .unwrap();
    let limits = Limits {
        max_total_bytes: 80,
        ..Limits::default()
    };
    let corpus = gather(root, &step, &limits).unwrap();
    assert_eq!(entry(&corpus, "source:issues").inclusion, Inclusion::Whole);
    assert_eq!(entry(&corpus, "a.md").inclusion, Inclusion::Truncated);
    assert_eq!(corpus.documents[0].text, "0123456789\n".repeat(2));
}
