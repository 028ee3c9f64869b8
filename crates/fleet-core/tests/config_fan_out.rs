//! `for_each` fan-out: validation at line:column, and the expansion a run
//! stores (one instance per file, wired to its own upstream instance, joined
//! at the gate).

use fleet_core::config::{Config, CorpusEntry, Diagnostic, Genflow, ParamError, check_str};
use std::collections::BTreeMap;

fn headlines(diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            d.headline("c.yaml")
                .trim_start_matches("c.yaml:")
                .to_owned()
        })
        .collect()
}

/// A genflow with the given steps (flow-style, one per line).
fn flow(steps: &[&str]) -> String {
    let mut text = String::from(
        "genflows:\n  - name: kb\n    params: [{name: area, default: incidents}]\n    steps:\n",
    );
    for s in steps {
        text.push_str(&format!("      - {s}\n"));
    }
    text
}

fn errors(steps: &[&str]) -> Vec<String> {
    headlines(&check_str(&flow(steps)).diagnostics)
}

const KB: &[&str] = &[
    r#"{name: draft, kind: report, for_each: "{{ params.area }}/*.md", max_items: 5, prompt: "Write up {{ item.name }}.", out: "kb/{{ item.stem }}.md"}"#,
    r#"{name: check, kind: review, depends_on: [draft], prompt: "Review {{ item.path }}.", on_flag: {redraft: draft, max: 1}}"#,
    r#"{name: go, kind: approval, depends_on: [check], approvers: [a@x.io]}"#,
    r#"{name: ship, kind: publish, depends_on: [go], from: draft, destinations: [{path: "site/{{ item.stem }}.md"}, {command: [cat]}]}"#,
    r#"{name: tell, kind: notify, depends_on: [go], channels: [file]}"#,
];

fn kb() -> Genflow {
    let checked = check_str(&flow(KB));
    assert_eq!(headlines(&checked.diagnostics), Vec::<String>::new());
    let config: Config = checked.config.expect("valid");
    config.genflows[0].clone()
}

fn items(files: &[&str]) -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([(
        "draft".to_owned(),
        files.iter().map(|f| f.to_string()).collect(),
    )])
}

#[test]
fn a_valid_fan_out_is_typed() {
    let g = kb();
    let draft = g.step("draft").expect("draft");
    assert_eq!(draft.for_each.as_deref(), Some("{{ params.area }}/*.md"));
    assert_eq!(draft.max_items, Some(5));
    let globs = g.for_each_globs(&BTreeMap::new()).expect("globs");
    assert_eq!(globs.len(), 1);
    assert_eq!(
        (
            globs[0].step.as_str(),
            globs[0].glob.as_str(),
            globs[0].max_items
        ),
        ("draft", "incidents/*.md", 5)
    );
}

#[test]
fn each_file_gets_its_own_chain_joined_at_the_gate() {
    let g = kb();
    let run = g
        .bind_run(
            &BTreeMap::new(),
            &items(&["incidents/a.md", "incidents/b[1].md"]),
        )
        .expect("binds");
    let names: Vec<&str> = run.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "draft[incidents/a.md]",
            "draft[incidents/b[1].md]",
            "check[incidents/a.md]",
            "check[incidents/b[1].md]",
            "go",
            "ship[incidents/a.md]",
            "ship[incidents/b[1].md]",
            "tell",
        ]
    );
    let a = run.step("draft[incidents/a.md]").expect("instance");
    assert_eq!(a.prompt.as_deref(), Some("Write up a.md."));
    assert_eq!(a.out.as_deref(), Some("kb/a.md"));
    assert_eq!(a.for_each, None);
    let instance = a.instance.as_ref().expect("instance");
    assert_eq!(
        (instance.of.as_str(), instance.key.as_str()),
        ("draft", "incidents/a.md")
    );
    // The file is read with glob metacharacters escaped, so `b[1].md` is
    // that file and not a character class.
    let b = run.step("draft[incidents/b[1].md]").expect("instance");
    assert_eq!(
        b.corpus,
        vec![CorpusEntry::Glob("incidents/b[[]1[]].md".into())]
    );
    let check = run.step("check[incidents/b[1].md]").expect("review");
    assert_eq!(check.depends_on, ["draft[incidents/b[1].md]"]);
    assert_eq!(check.prompt.as_deref(), Some("Review incidents/b[1].md."));
    assert_eq!(
        check.on_flag.as_ref().map(|o| o.redraft.as_str()),
        Some("draft[incidents/b[1].md]")
    );
    assert_eq!(check.out.as_deref(), Some("check/incidents/b[1].md"));
    let go = run.step("go").expect("gate");
    assert_eq!(
        go.depends_on,
        ["check[incidents/a.md]", "check[incidents/b[1].md]"]
    );
    let ship = run.step("ship[incidents/a.md]").expect("publish");
    assert_eq!(ship.from.as_deref(), Some("draft[incidents/a.md]"));
    assert_eq!(ship.depends_on, ["go"]);
    assert_eq!(
        serde_json::to_value(&ship.destinations).expect("json")[0],
        serde_json::json!({"path": "site/a.md"})
    );
    assert_eq!(run.step("tell").expect("notify").depends_on, ["go"]);
    // Which files is on the record: another list is another definition.
    let other = g
        .bind_run(&BTreeMap::new(), &items(&["incidents/a.md"]))
        .expect("binds");
    assert_ne!(run.definition_hash(), other.definition_hash());
}

#[test]
fn the_bound_and_an_empty_match_are_refused() {
    let g = kb();
    let six: Vec<String> = (0..6).map(|i| format!("incidents/{i}.md")).collect();
    let six: Vec<&str> = six.iter().map(String::as_str).collect();
    let err = g.bind_run(&BTreeMap::new(), &items(&six)).err();
    assert!(
        matches!(&err, Some(ParamError::TooManyItems { step, matched: 6, max: 5, .. }) if step == "draft"),
        "{err:?}"
    );
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("matches 6 files, more than its `max_items` (5)"),
        "{message}"
    );
    let err = g.bind_run(&BTreeMap::new(), &items(&[])).err();
    assert!(matches!(err, Some(ParamError::NoItems { .. })), "{err:?}");
}

#[test]
fn the_default_bound_is_100() {
    let text = flow(&[r#"{name: draft, kind: report, for_each: "*.md", prompt: "Write."}"#]);
    let g = check_str(&text).config.expect("valid").genflows[0].clone();
    let files: Vec<String> = (0..101).map(|i| format!("{i}.md")).collect();
    let list = BTreeMap::from([("draft".to_owned(), files.clone())]);
    let err = g.bind_run(&BTreeMap::new(), &list).err();
    assert!(
        matches!(err, Some(ParamError::TooManyItems { max: 100, .. })),
        "{err:?}"
    );
    let list = BTreeMap::from([("draft".to_owned(), files[..100].to_vec())]);
    let run = g.bind_run(&BTreeMap::new(), &list).expect("100 is allowed");
    assert_eq!(run.steps.len(), 100);
    // No `out`: each instance writes under the step's name, at the file's path.
    assert_eq!(run.steps[0].out.as_deref(), Some("draft/0.md"));
}

#[test]
fn fan_out_mistakes_are_reported_where_they_are() {
    let draft = r#"{name: draft, kind: report, for_each: "*.md", prompt: "Write."}"#;
    assert_eq!(
        errors(&[
            draft,
            r#"{name: go, kind: approval, depends_on: [draft], approvers: [a@x.io], for_each: "*.md"}"#
        ]),
        [
            "6:78: error: `for_each` does not belong on an approval step (it applies to report and review steps)"
        ]
    );
    assert_eq!(
        errors(&[
            r#"{name: draft, kind: report, corpus: ["*.md"], prompt: "Write.", max_items: 3}"#
        ]),
        ["5:84: error: `max_items` bounds a `for_each`, and this step has none"]
    );
    assert_eq!(
        errors(&[
            r#"{name: draft, kind: report, for_each: "*.md", max_items: 0, prompt: "Write."}"#
        ]),
        ["5:66: error: `max_items` must be between 1 and 10000, found 0"]
    );
    assert_eq!(
        errors(&[r#"{name: draft, kind: report, for_each: "../*.md", prompt: "Write."}"#]),
        ["5:47: error: corpus glob `../*.md` contains `..` and could leave the workspace"]
    );
    assert_eq!(
        errors(&[
            r#"{name: draft, kind: report, for_each: "*.md", prompt: "Write.", out: all.md}"#
        ]),
        [
            "5:78: error: `out: all.md` of step `draft` is the same for every file of `draft`'s `for_each`"
        ]
    );
    assert_eq!(
        errors(&[
            draft,
            r#"{name: r, kind: review, depends_on: [draft], prompt: "Check {{ item.size }}."}"#
        ]),
        ["6:62: error: `prompt` uses `item.size`, which a file does not have"]
    );
    assert_eq!(
        errors(&[r#"{name: r, kind: report, corpus: ["*.md"], prompt: "Write {{ item.path }}."}"#]),
        ["5:59: error: `prompt` uses `item`, but step `r` does not run once per file"]
    );
    assert_eq!(
        errors(&[
            draft,
            r#"{name: more, kind: report, depends_on: [draft], for_each: "*.txt", prompt: "Write."}"#
        ]),
        [
            "6:67: error: step `more` has `for_each` but depends on `draft`, which already runs once per file of `draft`: a fan-out cannot nest inside another"
        ]
    );
    assert_eq!(
        errors(&[
            draft,
            r#"{name: other, kind: report, for_each: "*.txt", prompt: "Write."}"#,
            r#"{name: both, kind: review, depends_on: [draft, other], prompt: "Check."}"#
        ]),
        [
            "7:16: error: step `both` depends on `draft` (one instance per file of `draft`) and on `other` (one per file of `other`): a step can follow only one fan-out"
        ]
    );
    assert_eq!(
        errors(&[
            draft,
            r#"{name: go, kind: approval, depends_on: [draft], approvers: [a@x.io]}"#,
            r#"{name: ship, kind: publish, depends_on: [go], from: draft, destinations: [{path: notes.md}]}"#
        ]),
        [
            "7:82: error: publish step `ship` runs once per file of `draft`'s `for_each`, and every instance would write `notes.md`"
        ]
    );
    assert_eq!(
        errors(&[
            draft,
            r#"{name: go, kind: approval, depends_on: [draft], approvers: [a@x.io]}"#,
            r#"{name: r, kind: review, depends_on: [go], prompt: "Check.", on_flag: {redraft: draft}}"#
        ]),
        [
            "7:16: error: step `r` redrafts `draft`, which runs once per file, but itself runs once: only an instance of the same fan-out can send one instance back"
        ]
    );
}

#[test]
fn the_schema_knows_the_new_keys() {
    let schema = fleet_core::config::json_schema().to_string();
    assert!(
        schema.contains("\"for_each\""),
        "for_each missing from the schema"
    );
    assert!(
        schema.contains("\"max_items\""),
        "max_items missing from the schema"
    );
    assert!(
        !schema.contains("\"instance\""),
        "a run-only field leaked into the schema"
    );
}
