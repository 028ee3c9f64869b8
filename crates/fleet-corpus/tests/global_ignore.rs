//! A corpus is a function of the workspace: the user's global git excludes
//! (`core.excludesFile`, `$XDG_CONFIG_HOME/git/ignore`) do not change it, so
//! the server and every reviewer's machine gather the same files. Its own
//! test binary: it sets process-wide environment variables.

mod common;

use common::{globs, paths, write};
use fleet_corpus::{Limits, gather_globs};

#[test]
fn global_git_excludes_do_not_change_the_corpus() {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "config/git/ignore", "*.md\n");
    write(
        home.path(),
        ".gitconfig",
        format!(
            "[core]\n\texcludesFile = {}\n",
            home.path().join("config/git/ignore").display()
        ),
    );
    // SAFETY: the only test in this binary; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("HOME", home.path());
        std::env::set_var("XDG_CONFIG_HOME", home.path().join("config"));
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docs/a.md", "a\n");
    write(root, ".gitignore", "docs/skip.md\n");
    write(root, "docs/skip.md", "s\n");
    let corpus = gather_globs(root, &globs(&["docs/*.md"]), false, &Limits::default()).unwrap();
    // The workspace's own .gitignore still applies; the global excludes do not.
    assert_eq!(paths(&corpus), ["docs/a.md"]);
}
