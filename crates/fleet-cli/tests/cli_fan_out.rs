//! `for_each` through the real binary: a knowledge-base genflow drafts and
//! reviews one article per incident write-up, one gate decides all of them
//! on the listed revisions, and each approved article is published to its
//! own file; a glob matching more than `max_items` (or nothing) starts no run.

mod common;

use common::{fleet, json_of};

use predicates::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

const OWNER: &str = "kb-owner@example.com";

const CONFIG: &str = r#"approvers: [kb-owner@example.com]
genflows:
  - name: kb
    params: [{name: area, default: incidents}]
    steps:
      - name: write-up
        kind: report
        for_each: "{{ params.area }}/*.md"
        max_items: 3
        prompt: "Turn the incident {{ item.name }} into a knowledge-base article."
        out: "kb/{{ item.stem }}.md"
      - {name: check, kind: review, depends_on: [write-up], prompt: "Find what the article on {{ item.path }} underplays."}
      - {name: go, kind: approval, depends_on: [check], question: "Publish these articles?"}
      - name: publish
        kind: publish
        depends_on: [go]
        from: write-up
        destinations: [{path: "site/{{ item.stem }}.md"}]
"#;

const INCIDENTS: &[(&str, &str)] = &[
    (
        "incidents/2024-01-db.md",
        "# DB outage\n\n- [ ] Rollback plan TBD\n",
    ),
    (
        "incidents/2024-02-cache.md",
        "# Cache stampede\n\n- [ ] Load test the jitter fix\n",
    ),
    (
        "incidents/2024-03-login.md",
        "# Login bug\n\n- [ ] Sign-off from support pending\n",
    ),
];

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), ".fleet/config.yaml", CONFIG);
    for (path, text) in INCIDENTS {
        write(tmp.path(), path, text);
    }
    // Ignore files are honoured: this one is not an incident to write up.
    write(tmp.path(), ".gitignore", "incidents/draft-*.md\n");
    write(tmp.path(), "incidents/draft-unfinished.md", "# WIP\n");
    tmp
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn one_gate_decides_every_instance_and_each_is_published() {
    let tmp = project();
    let dir = tmp.path();
    let run = json_of(fleet(dir).args(["run", "kb", "--json"]));
    assert_eq!(run["status"], "waiting", "{run}");
    let id = run["run_id"].as_str().expect("run_id").to_owned();
    let runs = dir.join(".fleet/runs").join(&id);

    // One instance of each step per incident, keyed by its path, grouped.
    let fan_outs = run["fan_outs"].as_array().expect("fan_outs");
    let groups: Vec<(&str, &str)> = fan_outs
        .iter()
        .map(|g| {
            (
                g["step"].as_str().unwrap_or(""),
                g["statuses"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("write-up", "3 succeeded"),
            ("check", "3 succeeded"),
            ("publish", "3 pending")
        ]
    );
    for (path, text) in INCIDENTS {
        let name = format!("write-up[{path}]");
        let s = step(&run, &name);
        assert_eq!(s["instance"]["key"], *path);
        assert_eq!(s["instance"]["of"], "write-up");
        assert_eq!(s["status"], "succeeded");
        // Each article read its own incident and no other.
        let stem = path
            .trim_start_matches("incidents/")
            .trim_end_matches(".md");
        let article = std::fs::read_to_string(runs.join(format!("kb/{stem}.md"))).expect("article");
        let item = text.lines().nth(2).expect("checklist line");
        assert!(
            article.contains(item),
            "{stem} lacks its own item: {article}"
        );
        for (other, other_text) in INCIDENTS.iter().filter(|(p, _)| p != path) {
            let other_item = other_text.lines().nth(2).expect("line");
            assert!(
                !article.contains(other_item),
                "{stem} read {other}: {article}"
            );
        }
        assert!(
            article.contains(&format!("Turn the incident {stem}.md into")),
            "{article}"
        );
        assert_eq!(step(&run, &format!("check[{path}]"))["status"], "succeeded");
    }
    assert!(
        !run["steps"].to_string().contains("draft-unfinished"),
        "an ignored file was fanned out over"
    );
    assert!(!dir.join("site").exists(), "nothing published before Go");

    // `fleet show` lists them grouped under the step, each by its file.
    fleet(dir)
        .args(["show", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "write-up (report, once per file: 3 files; 3 succeeded)",
        ))
        .stdout(predicate::str::contains("↳ incidents/2024-02-cache.md"));

    // One decision covers the listed revisions of all three articles.
    let decided = json_of(fleet(dir).args(["approve", &id, "--as", OWNER, "--json"]));
    assert_eq!(decided["status"], "succeeded", "{decided}");
    let shown_run = json_of(fleet(dir).args(["show", &id, "--json"]));
    let decisions = shown_run["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    let shown: Vec<&str> = decisions[0]["shown"]
        .as_array()
        .expect("shown")
        .iter()
        .filter_map(|r| r["path"].as_str())
        .collect();
    for stem in ["2024-01-db", "2024-02-cache", "2024-03-login"] {
        assert!(
            shown.contains(&format!("kb/{stem}.md").as_str()),
            "{shown:?}"
        );
        assert!(
            shown.contains(&format!("check/incidents/{stem}.md").as_str()),
            "{shown:?}"
        );
    }
    let record = std::fs::read_to_string(runs.join("go.md")).expect("decision record");
    assert!(record.contains("kb/2024-03-login.md"), "{record}");

    // Each approved article reached its own file, byte for byte.
    for stem in ["2024-01-db", "2024-02-cache", "2024-03-login"] {
        let approved = std::fs::read(runs.join(format!("kb/{stem}.md"))).expect("approved");
        let published = std::fs::read(dir.join(format!("site/{stem}.md"))).expect("published");
        assert_eq!(sha256_hex(&published), sha256_hex(&approved), "{stem}");
    }
}

#[test]
fn a_glob_matching_more_than_max_items_starts_nothing() {
    let tmp = project();
    let dir = tmp.path();
    write(dir, "incidents/2024-04-dns.md", "# DNS\n");
    fleet(dir)
        .args(["run", "kb"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "step `write-up`: `for_each: incidents/*.md` matches 4 files, more than its `max_items` (3)",
        ));
    let runs = json_of(fleet(dir).args(["runs", "--json"]));
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");

    // A param can point the glob elsewhere; matching nothing is refused too.
    fleet(dir)
        .args(["run", "kb", "--param", "area=postmortems"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`for_each: postmortems/*.md` matches no file",
        ));
}
