//! `changed_since` through the real binary: a repository with two tagged
//! releases, each with its own migrations; the report of a run scoped to the
//! first tag reads only the second release's, and says which revisions it
//! compared.

mod common;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use std::path::Path;

const OWNER: &str = "release-owner@example.com";

/// What the machine's git config and identity must not change.
fn isolated(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Fleet Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Fleet Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = isolated(
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir),
    )
    .output()
    .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn fleet(dir: &Path) -> Command {
    let mut cmd = common::fleet(dir);
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        // A temporary directory is never taken for part of an enclosing repository.
        .env(
            "GIT_CEILING_DIRECTORIES",
            dir.parent().expect("temporary directories have a parent"),
        );
    cmd
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn config(since: &str) -> String {
    format!(
        r#"approvers: [{OWNER}]
genflows:
  - name: release-gate
    release: "4.2.0"
    steps:
      - name: readiness
        kind: report
        prompt: Assemble the readiness report for this release.
        corpus:
          - {{glob: "db/migrate/**", changed_since: "{since}"}}
          - docs/*.md
      - {{name: risk-review, kind: review, depends_on: [readiness], prompt: Find what the report underplays.}}
      - {{name: go-no-go, kind: approval, depends_on: [readiness, risk-review]}}
"#
    )
}

const FIRST: [&str; 2] = [
    "db/migrate/20240105_create_users.rb",
    "db/migrate/20240110_add_email_to_users.rb",
];
const SECOND: [&str; 2] = [
    "db/migrate/20240301_create_orders.rb",
    "db/migrate/20240302_drop_legacy_tax_rates.rb",
];

/// v4.1.0 with two migrations, v4.2.0 with two more.
fn two_releases(since: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    git(root, &["init", "-q", "-b", "main"]);
    write(root, ".fleet/config.yaml", &config(since));
    write(root, ".gitignore", ".fleet/*\n!.fleet/config.yaml\n");
    write(
        root,
        "docs/release-notes.md",
        "# Release notes\n\n## 4.2.0\n\n- Orders.\n\n## Rollback\n\nRevert the deploy.\n",
    );
    write(
        root,
        FIRST[0],
        "class CreateUsers < ActiveRecord::Migration[7.1]\n  def change\n    create_table :users do |t|\n      t.string :name\n    end\n  end\nend\n",
    );
    write(
        root,
        FIRST[1],
        "class AddEmailToUsers < ActiveRecord::Migration[7.1]\n  def change\n    add_column :users, :email, :string\n  end\nend\n",
    );
    git(root, &["add", "-A"]);
    git(
        root,
        &["commit", "-q", "--no-verify", "-m", "Release 4.1.0"],
    );
    git(root, &["tag", "-a", "v4.1.0", "-m", "4.1.0"]);
    write(
        root,
        SECOND[0],
        "class CreateOrders < ActiveRecord::Migration[7.1]\n  def change\n    create_table :orders do |t|\n      t.references :user\n    end\n  end\nend\n",
    );
    write(
        root,
        SECOND[1],
        "class DropLegacyTaxRates < ActiveRecord::Migration[7.1]\n  def up\n    drop_table :legacy_tax_rates\n  end\n\n  def down\n    raise ActiveRecord::IrreversibleMigration\n  end\nend\n",
    );
    git(root, &["add", "-A"]);
    git(
        root,
        &["commit", "-q", "--no-verify", "-m", "Release 4.2.0"],
    );
    git(root, &["tag", "-a", "v4.2.0", "-m", "4.2.0"]);
    tmp
}

fn json_of(assert: assert_cmd::assert::Assert) -> Value {
    let out = assert.get_output().stdout.clone();
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out)))
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

#[test]
fn a_run_scoped_to_the_first_tag_reads_only_the_second_release() {
    let tmp = two_releases("v4.1.0");
    let root = tmp.path();
    let base = git(root, &["rev-parse", "v4.1.0^{commit}"]);
    let head = git(root, &["rev-parse", "HEAD"]);
    let range = format!("{}..{}", &base[..7], &head[..7]);

    let run = json_of(
        fleet(root)
            .args(["run", "release-gate", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(run["status"], "waiting", "{run}");
    let id = run["run_id"].as_str().expect("run_id");
    let report = std::fs::read_to_string(root.join(".fleet/runs").join(id).join("readiness.md"))
        .expect("readiness.md");
    for path in SECOND {
        assert!(report.contains(path), "{path} missing from:\n{report}");
    }
    for path in FIRST {
        assert!(
            !report.contains(path),
            "{path} is from 4.1.0 but in:\n{report}"
        );
    }
    assert!(report.contains("docs/release-notes.md"), "{report}");
    assert!(
        report.contains(&format!(
            "Scoped to changes since `v4.1.0` ({range}): `db/migrate/**` (2 files)"
        )),
        "{report}"
    );

    // The evidence records what "this release" meant.
    let out = root.join("evidence");
    fleet(root)
        .args(["audit", "export", id, "--out"])
        .arg(&out)
        .assert()
        .success();
    let attempt: Value = serde_json::from_slice(
        &std::fs::read(out.join("steps/readiness.attempt1.json")).expect("step record"),
    )
    .expect("json");
    let scopes = &attempt["manifest"]["scopes"];
    assert_eq!(
        scopes,
        &serde_json::json!([{
            "glob": "db/migrate/**",
            "since": "v4.1.0",
            "since_commit": base,
            "base_commit": base,
            "head": "HEAD",
            "head_commit": head,
            "files": 2,
        }]),
        "{attempt}"
    );
    let genflow: Value =
        serde_json::from_slice(&std::fs::read(out.join("genflow.json")).expect("genflow"))
            .expect("json");
    assert_eq!(genflow["release"], "4.2.0", "{genflow}");

    // `fleet corpus` shows the range too.
    fleet(root)
        .args(["corpus", "release-gate", "readiness"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "db/migrate/**: changed since `v4.1.0` ({range}), 2 files"
        )))
        .stdout(predicate::str::contains(SECOND[0]))
        .stdout(predicate::str::contains(FIRST[0]).not());

    // The review reads the same scoped corpus.
    let corpus = json_of(
        fleet(root)
            .args(["corpus", "release-gate", "risk-review", "--json"])
            .assert()
            .success(),
    );
    let paths: Vec<&str> = corpus["manifest"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(paths, [SECOND[0], SECOND[1], "docs/release-notes.md"]);
}

#[test]
fn a_hosted_model_is_told_the_release_and_the_range() {
    let tmp = two_releases("v4.1.0");
    let root = tmp.path();
    // An agent that answers with the prompt it was given.
    let config = config("v4.1.0")
        .replace(
            "        prompt: Assemble the readiness report for this release.\n",
            "        prompt: Assemble the readiness report for this release.\n        model: echo\n",
        )
        .replace(
            "genflows:\n",
            "models:\n  echo: {provider: command, command: [\"cat\"]}\ngenflows:\n",
        );
    write(root, ".fleet/config.yaml", &config);
    let base = git(root, &["rev-parse", "v4.1.0^{commit}"]);
    let head = git(root, &["rev-parse", "HEAD"]);

    let run = json_of(
        fleet(root)
            .args(["run", "release-gate", "--json"])
            .assert()
            .success(),
    );
    let id = run["run_id"].as_str().expect("run_id");
    let prompt = std::fs::read_to_string(root.join(".fleet/runs").join(id).join("readiness.md"))
        .expect("readiness.md");
    assert!(
        prompt.contains("This run gates release `4.2.0`."),
        "{prompt}"
    );
    assert!(
        prompt.contains(&format!(
            "- `db/migrate/**`: changed since `v4.1.0` (commits {}..{}), 2 files",
            &base[..7],
            &head[..7]
        )),
        "{prompt}"
    );
    assert!(
        prompt.contains(SECOND[1]) && !prompt.contains(FIRST[1]),
        "{prompt}"
    );
}

#[test]
fn an_unknown_revision_fails_the_step_naming_it() {
    let tmp = two_releases("v9.9.9");
    let root = tmp.path();
    let run = json_of(
        fleet(root)
            .args(["run", "release-gate", "--json"])
            .assert()
            .code(1),
    );
    assert_eq!(run["status"], "failed", "{run}");
    let error = step(&run, "readiness")["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("unknown git revision `v9.9.9`") && error.contains("db/migrate/**"),
        "{run}"
    );

    fleet(root)
        .args(["corpus", "release-gate", "readiness"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown git revision `v9.9.9`"));
}

#[test]
fn changed_since_outside_a_git_repository_fails_clearly() {
    let tmp = two_releases("v4.1.0");
    let root = tmp.path();
    std::fs::remove_dir_all(root.join(".git")).expect("remove .git");

    let run = json_of(
        fleet(root)
            .args(["run", "release-gate", "--json"])
            .assert()
            .code(1),
    );
    let error = step(&run, "readiness")["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("is not a git repository"), "{run}");

    fleet(root)
        .args(["corpus", "release-gate", "readiness"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not a git repository"));
}
