//! What a step did not read is recorded in the manifest as gaps: a glob that
//! matched no file (with a hint when it names a directory), a source that
//! printed nothing, an empty corpus.

mod common;

use common::{globs, write};
use fleet_corpus::{CorpusGap, Limits, gather, gather_globs};

fn step(corpus: &[&str], sources: serde_json::Value) -> fleet_core::config::Step {
    serde_json::from_value(serde_json::json!({
        "name": "readiness", "kind": "report", "prompt": "p",
        "corpus": corpus, "sources": sources,
    }))
    .unwrap()
}

#[test]
fn a_glob_matching_nothing_is_a_gap_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "docs/runbooks/deploy.md", "# Deploy\n");
    let corpus = gather_globs(
        dir.path(),
        &globs(&["docs/runbooks/*.md", "docs/runbok/*.md"]),
        false,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        corpus.manifest.gaps,
        [CorpusGap::GlobMatchedNothing {
            glob: "docs/runbok/*.md".into(),
            hint: None
        }]
    );
    assert!(
        corpus.manifest.gaps[0]
            .describe()
            .contains("`docs/runbok/*.md`")
    );
}

#[test]
fn a_glob_naming_a_directory_suggests_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "templates/docs/a.md", "a\n");
    let corpus = gather_globs(
        dir.path(),
        &globs(&["templates/docs"]),
        false,
        &Limits::default(),
    )
    .unwrap();
    let [
        CorpusGap::GlobMatchedNothing { glob, hint },
        CorpusGap::NothingRead,
    ] = corpus.manifest.gaps.as_slice()
    else {
        panic!("{:?}", corpus.manifest.gaps);
    };
    assert_eq!(glob, "templates/docs");
    assert!(
        hint.as_deref()
            .is_some_and(|h| h.contains("`templates/docs/**`")),
        "{hint:?}"
    );
    assert!(
        corpus.manifest.warnings[0].contains("`templates/docs/**`"),
        "{:?}",
        corpus.manifest.warnings
    );
}

#[test]
fn a_glob_matching_only_a_skipped_file_is_not_a_gap() {
    // The file was matched and is in the manifest (as binary): the glob is right.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "docs/a.md", "a\n");
    write(dir.path(), "assets/logo.png", b"\x89PNG\0\0\0");
    let corpus = gather_globs(
        dir.path(),
        &globs(&["docs/*.md", "assets/*.png"]),
        false,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(corpus.manifest.gaps, []);
}

#[test]
fn an_empty_source_and_an_empty_corpus_are_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = gather(
        dir.path(),
        &step(
            &[],
            serde_json::json!([{"name": "open-bugs", "command": "true"}]),
        ),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        corpus.manifest.gaps,
        [CorpusGap::SourceEmpty {
            name: "open-bugs".into()
        }]
    );

    let corpus = gather(
        dir.path(),
        &step(&["docs/**"], serde_json::json!([])),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        corpus.manifest.gaps,
        [
            CorpusGap::GlobMatchedNothing {
                glob: "docs/**".into(),
                hint: None
            },
            CorpusGap::NothingRead
        ]
    );
}

#[test]
fn a_full_corpus_has_no_gaps_and_old_manifests_still_read() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "docs/a.md", "a\n");
    let corpus = gather(
        dir.path(),
        &step(
            &["docs/*.md"],
            serde_json::json!([{"name": "ci", "command": "echo green"}]),
        ),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(corpus.manifest.gaps, []);
    // A manifest stored before gaps existed has no `gaps` key.
    let json = serde_json::to_value(&corpus.manifest).unwrap();
    assert!(json.get("gaps").is_none(), "{json}");
    let back: fleet_corpus::Manifest = serde_json::from_value(json).unwrap();
    assert_eq!(back, corpus.manifest);
}
