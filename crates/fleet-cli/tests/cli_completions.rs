//! `fleet completions SHELL` and `fleet man` through the real binary: both
//! come from the clap definitions, so they name the real subcommands.

use assert_cmd::Command;

fn fleet() -> Command {
    let mut cmd = Command::cargo_bin("fleet").expect("fleet binary");
    cmd.env_remove("FLEET_CONFIG");
    cmd
}

fn stdout_of(args: &[&str]) -> String {
    let out = fleet().args(args).assert().success().get_output().clone();
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn bash_completions_name_the_subcommands_and_their_flags() {
    let script = stdout_of(&["completions", "bash"]);
    assert!(script.contains("complete -F"), "{script}");
    for word in ["run", "approve", "serve", "worker", "completions", "man"] {
        assert!(
            script.split_whitespace().any(|w| w == word),
            "no `{word}` in:\n{script}"
        );
    }
    assert!(
        script.contains("--log-format"),
        "serve's flags are completed"
    );
}

#[test]
fn every_shell_gets_a_script() {
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("approve"), "{shell}:\n{script}");
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    fleet()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("possible values"));
}

#[test]
fn the_man_page_is_roff_with_the_subcommands() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH fleet 1"), "{page}");
    for word in ["run", "approve", "serve", "completions"] {
        assert!(
            page.lines().any(|l| l.contains(&format!("fleet\\-{word}"))),
            "no `{word}` in:\n{page}"
        );
    }
}

#[test]
fn man_out_writes_a_page_per_command() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("man1");
    fleet()
        .arg("-C")
        .arg(tmp.path())
        .args(["man", "--out", "man1"])
        .assert()
        .success();
    for page in ["fleet.1", "fleet-serve.1", "fleet-gate-link.1"] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}:\n{text}");
    }
    let serve = std::fs::read_to_string(dir.join("fleet-serve.1")).expect("fleet-serve.1");
    assert!(serve.contains("log\\-format"), "{serve}");
}
