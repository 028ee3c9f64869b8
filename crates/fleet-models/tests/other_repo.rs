//! The rules on a repository they were not written around
//! (tests/fixtures/shopfront): Rails, Alembic and Flyway migrations, a Keep a
//! Changelog file, an upgrade guide with setext headings and no rollback
//! section, an inline `**Rollback:** TODO`, and a `gh issue list` style
//! command snapshot.

mod common;

use common::{load_corpus, report_request, review_request};
use fleet_core::flags::{Flag, FlagSet, FlagSeverity};
use fleet_corpus::{Corpus, Document};
use fleet_models::{Builtin, check_citations};
use std::path::Path;

fn corpus() -> Corpus {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shopfront");
    let mut corpus = load_corpus(&root, &["CHANGELOG.md", "alembic", "db", "docs", "sql"]);
    corpus.documents.push(Document {
        path: "source:open-issues".into(),
        text: "#812\tOPEN\tCheckout times out for carts over 200 items\tbug, P1\t2024-03-02\n\
               #799\tOPEN\tTypo on the settings page\tbug, P3\t2024-02-20\n\
               #790\tCLOSED\tDiscount codes applied twice\tbug, regression\t2024-02-10\n"
            .into(),
    });
    corpus
}

fn flags() -> FlagSet {
    let report = Builtin
        .complete_now(&report_request(corpus()))
        .expect("report")
        .text;
    let review = Builtin
        .complete_now(&review_request(corpus(), &report))
        .expect("review");
    review.flags.expect("flags")
}

fn find<'f>(flags: &'f FlagSet, what: &str, path: &str, line: u64) -> &'f Flag {
    flags
        .flags
        .iter()
        .find(|f| {
            f.claim.contains(what) && f.evidence.iter().any(|c| c.path == path && c.line == line)
        })
        .unwrap_or_else(|| panic!("no flag about {what:?} citing {path}:{line} in {flags:#?}"))
}

#[test]
fn report_reads_other_shapes() {
    let text = Builtin
        .complete_now(&report_request(corpus()))
        .expect("report")
        .text;
    for expected in [
        // Rails: def change is reversible; def down raising IrreversibleMigration is not.
        "| 20240301120000_add_loyalty_points_to_customers | yes | — | — |",
        "| 20240305090000_remove_legacy_coupons | **no** | drop_table | — |",
        "| 20240310100000_backfill_loyalty_points | yes | — | yes |",
        "db/migrate/20240305090000_remove_legacy_coupons.rb:7 `raise ActiveRecord::IrreversibleMigration`",
        // Alembic: downgrade() that only passes.
        "| 3f2a_add_audit_table | yes | — | — |",
        "| 9c1d_drop_fax_column | **no** | op.drop_column | — |",
        // Flyway: V7 has its U7; V8 has none.
        "| V7__add_orders_index | yes | — | — |",
        "| V8__purge_sessions | **no** | TRUNCATE, DROP TABLE | — |",
        // Changelog known issues and the issue-tracker snapshot.
        "**#812** (high, high) — CHANGELOG.md:16",
        "**#812** (P1, high) — source:open-issues:1",
        "**#799** (P3, low) — source:open-issues:2",
        // Rollback coverage in ops docs.
        "| docs/ops/upgrade-to-v5.md | runbook | **missing** | — |",
        "| docs/ops/maintenance-window.md | runbook | **TBD** | docs/ops/maintenance-window.md:6 |",
        "docs/ops/upgrade-to-v5.md:12 `` Note: once `",
        "`new_checkout` at 50% — docs/ops/upgrade-to-v5.md:10",
        "pending — docs/ops/maintenance-window.md:8",
    ] {
        assert!(
            text.contains(expected),
            "report lacks {expected:?}\n\n{text}"
        );
    }
    // Fixed and closed items are history, not open issues.
    assert!(!text.contains("**#790**"), "{text}");
    assert!(!text.contains("**#781**"), "{text}");
    // A changelog is not a plan: it is not held to having a rollback section.
    assert!(!text.contains("| CHANGELOG.md | release notes |"), "{text}");
    assert!(!text.contains("| CHANGELOG.md | runbook |"), "{text}");
    assert_eq!(check_citations(&text, &corpus(), &[]), vec![]);
}

#[test]
fn review_flags_generalise() {
    let flags = flags();
    let high = |what: &str, path: &str, line: u64| {
        assert_eq!(
            find(&flags, what, path, line).severity,
            FlagSeverity::High,
            "{what}"
        );
    };
    high(
        "20240305090000_remove_legacy_coupons is irreversible",
        "db/migrate/20240305090000_remove_legacy_coupons.rb",
        3,
    );
    high(
        "9c1d_drop_fax_column is irreversible",
        "alembic/versions/9c1d_drop_fax_column.py",
        10,
    );
    high(
        "V8__purge_sessions is irreversible",
        "sql/V8__purge_sessions.sql",
        2,
    );
    high(
        "no rollback section in runbook docs/ops/upgrade-to-v5.md",
        "docs/ops/upgrade-to-v5.md",
        1,
    );
    high(
        "rollback plan in runbook docs/ops/maintenance-window.md is still TBD",
        "docs/ops/maintenance-window.md",
        6,
    );
    high("#812", "source:open-issues", 1);
    high("#812", "CHANGELOG.md", 16);
    assert_eq!(
        find(
            &flags,
            "backfill",
            "db/migrate/20240310100000_backfill_loyalty_points.rb",
            5
        )
        .severity,
        FlagSeverity::Medium
    );
    assert_eq!(
        find(
            &flags,
            "`new_checkout` already reaches 50%",
            "docs/ops/upgrade-to-v5.md",
            10
        )
        .severity,
        FlagSeverity::Medium
    );
    // Reversible migrations are not flagged.
    for clean in [
        "add_loyalty_points",
        "3f2a_add_audit_table",
        "V7__add_orders_index",
    ] {
        assert!(
            flags.flags.iter().all(|f| !f.claim.contains(clean)),
            "{clean} flagged: {flags:#?}"
        );
    }
}

/// Findings ranked for a person: the newest destructive migration leads the
/// high flags (not the oldest), and a long tail of low-severity issues is
/// one summary flag with a count, not thirty flags.
#[test]
fn the_newest_drop_leads_and_a_long_tail_is_summarised() {
    let mut documents: Vec<Document> = (1..=12)
        .map(|n| Document {
            path: format!("db/migrations/{n:04}_drop_old_{n}.up.sql"),
            text: format!("DROP TABLE old_{n};\n"),
        })
        .collect();
    documents.push(Document {
        path: "db/migrations/0480_drop_orders_archive.up.sql".into(),
        text: "DROP TABLE orders_archive;\n".into(),
    });
    let mut csv = String::from("Issue key,Summary,Issue Type,Status,Priority\n");
    csv.push_str("OPS-1,\"Checkout fails for EU cards\",Bug,Open,Critical\n");
    for n in 2..=31 {
        csv.push_str(&format!("OPS-{n},\"Cosmetic glitch {n}\",Bug,Open,Minor\n"));
    }
    documents.push(Document {
        path: "source:jira".into(),
        text: csv,
    });
    let corpus = Corpus {
        documents,
        ..Corpus::default()
    };
    let report = Builtin
        .complete_now(&report_request(corpus.clone()))
        .expect("report")
        .text;
    let flags = Builtin
        .complete_now(&review_request(corpus, &report))
        .expect("review")
        .flags
        .expect("flags");
    let first_migration = flags
        .flags
        .iter()
        .find(|f| f.claim.starts_with("migration "))
        .expect("a migration flag");
    assert!(
        first_migration.claim.contains("0480_drop_orders_archive"),
        "{flags:#?}"
    );
    let low: Vec<&Flag> = flags
        .flags
        .iter()
        .filter(|f| f.severity == FlagSeverity::Low)
        .collect();
    assert_eq!(low.len(), 6, "{low:#?}");
    assert!(
        low[5]
            .claim
            .starts_with("25 more open issue findings of low severity"),
        "{}",
        low[5].claim
    );
    assert!(
        report.contains("… and 20 more lower-severity open issues"),
        "{report}"
    );
}
