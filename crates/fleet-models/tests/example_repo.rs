//! End to end on the example repository `fleet init` writes
//! (crates/fleet-cli/example/release-gate): the findings a newcomer sees
//! first, by file and line.

mod common;

use common::{example_corpus, report_request, review_request};
use fleet_core::config::StepKind;
use fleet_core::flags::{Citation, Flag, FlagSet, FlagSeverity};
use fleet_models::{Builtin, Completion, Model, ModelError, ModelRequest, check_citations};
use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Drives a future that must be ready at once (the builtin does no I/O).
fn ready<T>(fut: impl Future<Output = T>) -> T {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the builtin model returned a pending future"),
    }
}

fn complete(model: &dyn Model, req: &ModelRequest) -> Result<Completion, ModelError> {
    ready(model.complete(req))
}

fn report() -> Completion {
    complete(&Builtin, &report_request(example_corpus())).expect("report")
}

fn review_of(report_text: &str) -> (Completion, FlagSet) {
    let done = complete(&Builtin, &review_request(example_corpus(), report_text)).expect("review");
    let flags = done.flags.clone().expect("a review returns flags");
    (done, flags)
}

fn cited(flag: &Flag, path: &str, line: u64) -> bool {
    flag.evidence
        .iter()
        .any(|c| c.path == path && c.line == line)
}

fn find<'f>(flags: &'f FlagSet, what: &str, path: &str, line: u64) -> &'f Flag {
    flags
        .flags
        .iter()
        .find(|f| f.claim.contains(what) && cited(f, path, line))
        .unwrap_or_else(|| panic!("no flag about {what:?} citing {path}:{line} in {flags:#?}"))
}

const NOTES: &str = "docs/releases/2.4.0.md";
const CUTOVER: &str = "docs/runbooks/payments-cutover.md";
const DROP_TAX: &str = "migrations/0043_drop_legacy_tax_rate.up.sql";
const BACKFILL: &str = "migrations/0044_backfill_invoice_currency.up.sql";

#[test]
fn report_lists_the_findings_with_file_and_line() {
    let done = report();
    let text = &done.text;
    assert_eq!(done.model, "builtin");
    assert_eq!(done.flags, None);
    assert_eq!(
        (
            done.usage.input_tokens,
            done.usage.output_tokens,
            done.usage.cost_usd
        ),
        (0, 0, None)
    );
    assert!(
        text.contains("rule-based, not a language model"),
        "header must say it is rule-based"
    );

    for expected in [
        // Open regression with id and severity.
        "**REG-1423** (P1, high) — docs/releases/2.4.0.md:27",
        "**REG-1419** (P3, low) — docs/releases/2.4.0.md:29",
        // Unchecked checklist items.
        "docs/releases/2.4.0.md:36 `- [ ] Load test of PayBridge v2",
        "docs/releases/2.4.0.md:37 `- [ ] Rollback rehearsal",
        "docs/releases/2.4.0.md:39 `- [ ] Status page",
        // Migrations.
        "| 0043_drop_legacy_tax_rate | **no** | DROP COLUMN | — |",
        "| 0044_backfill_invoice_currency | yes | — | yes |",
        "| 0041_add_invoice_currency | yes | — | — |",
        "destructive: DROP COLUMN — migrations/0043_drop_legacy_tax_rate.up.sql:3",
        "backfill — migrations/0044_backfill_invoice_currency.up.sql:10",
        "size — migrations/0044_backfill_invoice_currency.up.sql:3",
        // Rollback coverage.
        "| docs/runbooks/payments-cutover.md | runbook | **TBD** | docs/runbooks/payments-cutover.md:27 |",
        "| docs/runbooks/deploy.md | runbook | present | docs/runbooks/deploy.md:20 |",
        "| docs/runbooks/on-call.md | runbook | present | docs/runbooks/on-call.md:19 |",
        "docs/runbooks/payments-cutover.md:22 `This step is one-way",
        // Flags, sign-offs, support, risk ratings.
        "`multi_currency_invoices` at 100% — docs/releases/2.4.0.md:22",
        "`payments_v2_intents` at 25% — docs/runbooks/payments-cutover.md:18",
        "pending — docs/releases/2.4.0.md:46",
        "pending — docs/releases/2.4.0.md:47",
        "docs/releases/2.4.0.md:52 `Support tickets, last 7 days: 184",
        "docs/releases/2.4.0.md:5 `Overall risk: low",
        // Sources table (the manifest).
        "| migrations/0045_index_payment_intents_status.down.sql | 1 |",
    ] {
        assert!(
            text.contains(expected),
            "report lacks {expected:?}\n\n{text}"
        );
    }
    // BUG-2207 is resolved; it is not an open item.
    assert!(!text.contains("**BUG-2207**"), "{text}");
    assert!(text.contains("- High-severity findings: 3"), "{text}");
    // Every citation the report makes points at a real line.
    let corpus = example_corpus();
    assert_eq!(check_citations(text, &corpus, &[]), vec![]);
}

#[test]
fn review_flags_what_the_corpus_shows() {
    let (done, flags) = review_of(&report().text);
    assert_eq!(flags.step, "risk-review");

    let reg = find(&flags, "REG-1423", NOTES, 27);
    assert_eq!(reg.severity, FlagSeverity::High);
    let drop = find(
        &flags,
        "0043_drop_legacy_tax_rate is irreversible",
        DROP_TAX,
        3,
    );
    assert_eq!(drop.severity, FlagSeverity::High);
    assert!(drop.claim.contains("DROP COLUMN"), "{}", drop.claim);
    let tbd = find(
        &flags,
        "rollback plan in runbook docs/runbooks/payments-cutover.md is still TBD",
        CUTOVER,
        27,
    );
    assert_eq!(tbd.severity, FlagSeverity::High);
    let low_risk = find(&flags, "rates the release", NOTES, 5);
    assert_eq!(low_risk.severity, FlagSeverity::High);
    assert!(
        cited(low_risk, NOTES, 27),
        "the low-risk claim is set against REG-1423"
    );

    assert_eq!(
        find(&flags, "backfill", BACKFILL, 10).severity,
        FlagSeverity::Medium
    );
    assert_eq!(
        find(&flags, "3 readiness checklist items", NOTES, 36).severity,
        FlagSeverity::Medium
    );
    assert_eq!(
        find(&flags, "2 sign-offs are still pending", NOTES, 47).severity,
        FlagSeverity::Medium
    );
    assert_eq!(
        find(&flags, "support load is rising", NOTES, 52).severity,
        FlagSeverity::Medium
    );
    assert_eq!(
        find(&flags, "`multi_currency_invoices` is at 100%", NOTES, 22).severity,
        FlagSeverity::Medium
    );
    assert_eq!(
        find(&flags, "one-way", CUTOVER, 22).severity,
        FlagSeverity::Medium
    );

    // The builtin report covers everything, so nothing is "not mentioned",
    // and it rates no risk itself.
    assert!(
        flags
            .flags
            .iter()
            .all(|f| !f.claim.contains("does not mention")),
        "{flags:#?}"
    );
    assert!(
        flags
            .flags
            .iter()
            .all(|f| !f.claim.starts_with("the report rates")),
        "{flags:#?}"
    );

    // Ids F1.. in order, highest severity first.
    for (i, flag) in flags.flags.iter().enumerate() {
        assert_eq!(flag.id, format!("F{}", i + 1));
    }
    assert!(
        flags
            .flags
            .windows(2)
            .all(|w| w[0].severity <= w[1].severity)
    );
    assert_eq!(flags.count(FlagSeverity::High), 4, "{flags:#?}");

    // The markdown lists every flag with severity, claim and evidence.
    for flag in &flags.flags {
        let heading = format!(
            "### {} · {} · {}",
            flag.id,
            flag.severity.as_str(),
            flag.claim
        );
        assert!(done.text.contains(&heading), "missing {heading:?}");
        for c in &flag.evidence {
            assert!(
                done.text.contains(&format!("- {}:{} ", c.path, c.line)),
                "missing evidence {c:?}"
            );
        }
    }
    assert!(done.text.contains("rule-based"));
    let corpus = example_corpus();
    assert_eq!(check_citations(&done.text, &corpus, &[]), vec![]);

    // The sidecar round-trips as JSON.
    let json = serde_json::to_string(&flags).expect("serialize");
    assert_eq!(
        serde_json::from_str::<FlagSet>(&json).expect("parse"),
        flags
    );
}

/// A report in an LLM's style that understates the release: the review must
/// catch the low-risk claim, what it leaves out, and its bad citation.
#[test]
fn review_catches_an_understating_report() {
    let llm_report = "# Release 2.4.0 readiness\n\
        \n\
        Overall risk: low. We are ready to ship.\n\
        \n\
        - REG-1423 is a cosmetic PDF issue (docs/releases/2.4.0.md:27).\n\
        - Deploy follows the usual runbook (docs/runbooks/deploy.md:99).\n\
        > The release notes say \"Overall risk: low\".\n";
    let (_, flags) = review_of(llm_report);

    let claims: Vec<&Flag> = flags
        .flags
        .iter()
        .filter(|f| f.claim.starts_with("the report rates the release"))
        .collect();
    assert_eq!(
        claims.len(),
        1,
        "one claim line (the blockquote only quotes): {flags:#?}"
    );
    assert_eq!(claims[0].severity, FlagSeverity::High);
    assert_eq!(
        claims[0].evidence[0],
        Citation {
            path: "readiness.md".into(),
            line: 3,
            quote: "Overall risk: low. We are ready to ship.".into()
        }
    );

    let omitted = find(&flags, "0043_drop_legacy_tax_rate", DROP_TAX, 3);
    assert!(
        omitted.claim.ends_with("the report does not mention it"),
        "{}",
        omitted.claim
    );
    let tbd = find(&flags, "still TBD", CUTOVER, 27);
    assert!(
        tbd.claim.ends_with("the report does not mention it"),
        "{}",
        tbd.claim
    );
    // REG-1423 is mentioned (cited), so it is flagged without the omission note.
    let reg = find(&flags, "REG-1423", NOTES, 27);
    assert!(!reg.claim.contains("does not mention"), "{}", reg.claim);

    let bad = find(&flags, "docs/runbooks/deploy.md:99", "readiness.md", 6);
    assert_eq!(bad.severity, FlagSeverity::Medium);
    assert!(bad.claim.contains("26 lines"), "{}", bad.claim);
    find(&flags, "never discusses migrations", DROP_TAX, 3);
    // Low-severity items the report leaves out are flagged too.
    let low = find(
        &flags,
        "`payments_v2_intents` is mid-rollout at 25%",
        NOTES,
        21,
    );
    assert_eq!(low.severity, FlagSeverity::Low);
}

#[test]
fn redraft_answers_each_flag_and_rechecks_its_evidence() {
    let (_, flags) = review_of(&report().text);
    let mut req = report_request(example_corpus());
    req.feedback = Some(flags.clone());
    let redraft = complete(&Builtin, &req).expect("redraft").text;
    assert!(
        redraft.contains("## Response to review `risk-review`"),
        "{redraft}"
    );
    for flag in &flags.flags {
        assert!(redraft.contains(&format!("- **{}** ({})", flag.id, flag.severity.as_str())));
    }
    assert!(
        redraft.contains("docs/releases/2.4.0.md:27: still in the corpus unchanged"),
        "{redraft}"
    );

    // Fix the regression line in the corpus: the response notices the change.
    let mut corpus = example_corpus();
    let notes = corpus
        .documents
        .iter_mut()
        .find(|d| d.path == NOTES)
        .expect("release notes in corpus");
    notes.text = notes
        .text
        .replace("REG-1423 (P1, open)", "REG-1423 (P1, fixed in 2.4.0)");
    req.corpus = corpus;
    let redraft = complete(&Builtin, &req).expect("redraft").text;
    assert!(
        redraft.contains(
            "docs/releases/2.4.0.md:27: the line now reads `- REG-1423 (P1, fixed in 2.4.0)"
        ),
        "{redraft}"
    );
    assert!(
        !redraft.contains("**REG-1423** (P1"),
        "a fixed regression is no longer open"
    );
}

#[test]
fn output_is_deterministic() {
    let first = report().text;
    assert_eq!(first, report().text);
    let (a, _) = review_of(&first);
    let (b, _) = review_of(&first);
    assert_eq!(a, b);
}

#[test]
fn only_report_and_review_steps_use_the_model() {
    let mut req = report_request(example_corpus());
    req.kind = StepKind::Approval;
    let err = complete(&Builtin, &req).expect_err("approval is not a model step");
    assert!(matches!(
        err,
        ModelError::UnsupportedKind {
            kind: StepKind::Approval,
            ..
        }
    ));
    assert_eq!(Builtin.name(), "builtin");
}

#[test]
fn an_empty_corpus_is_a_report_not_an_error() {
    let req = report_request(Default::default());
    let text = complete(&Builtin, &req).expect("report").text;
    assert!(text.contains("Documents read: 0"));
    let req = review_request(Default::default(), &text);
    let flags = complete(&Builtin, &req)
        .expect("review")
        .flags
        .expect("flags");
    assert_eq!(flags.flags, vec![]);
}

/// Nothing read is never a clean bill: a glob that matched nothing opens
/// the report's summary, naming the glob and its hint; the review adds no
/// flag of its own (the engine flags corpus gaps for every model).
#[test]
fn a_glob_that_matched_nothing_opens_the_summary() {
    let mut corpus = example_corpus();
    let gap = fleet_corpus::CorpusGap::GlobMatchedNothing {
        glob: "docs/runbok/**".into(),
        hint: None,
    };
    corpus.manifest.gaps.push(gap.clone());
    corpus
        .manifest
        .warnings
        .push("glob `docs/runbok/**` matched no file".to_string());
    let text = complete(&Builtin, &report_request(corpus.clone()))
        .expect("report")
        .text;
    let summary = text.split("## Summary\n\n").nth(1).expect("a summary");
    assert!(
        summary.starts_with(&format!("**Corpus gap:** {}", gap.describe())),
        "{text}"
    );
    assert_eq!(
        summary.matches("docs/runbok").count(),
        1,
        "named once: {summary}"
    );
    let review = complete(&Builtin, &review_request(corpus, &text)).expect("review");
    let flags = review.flags.expect("flags");
    assert!(
        flags.flags.iter().all(|f| !f.claim.contains("runbok")),
        "{flags:#?}"
    );

    let empty = complete(&Builtin, &report_request(Default::default()))
        .expect("report")
        .text;
    let summary = empty.split("## Summary\n\n").nth(1).expect("a summary");
    assert!(summary.starts_with("**Nothing was read:**"), "{empty}");
}
