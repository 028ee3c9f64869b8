mod common;

use common::{globs, write};
use fleet_corpus::{
    Corpus, CorpusReport, Inclusion, Limits, Tokenizer, count_tokens, gather_globs, pack,
    render_manifest,
};

/// A workspace where one 60-line stretch of one file is about rollbacks and
/// everything else is unrelated filler.
fn release_workspace() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for name in ["alpha", "beta", "gamma"] {
        let filler: String = (1..=120)
            .map(|i| format!("{name} paragraph {i}: the quarterly newsletter covers office plants and lunch menus\n"))
            .collect();
        write(root, &format!("docs/{name}.md"), filler);
    }
    let mut runbook = String::new();
    for i in 1..=180 {
        if (61..=120).contains(&i) {
            runbook.push_str(&format!(
                "step {i}: rollback the database migration 0042 with the down script, verify the rollback\n"
            ));
        } else {
            runbook.push_str(&format!(
                "line {i}: general notes about the team calendar and holidays\n"
            ));
        }
    }
    write(root, "docs/runbook.md", &runbook);
    (dir, runbook)
}

fn gathered(root: &std::path::Path) -> Corpus {
    gather_globs(root, &globs(&["docs/*.md"]), false, &Limits::default()).unwrap()
}

#[test]
fn everything_whole_when_it_fits() {
    let (dir, _) = release_workspace();
    let corpus = gathered(dir.path());
    let packed = pack(&corpus, "rollback plan", 1_000_000, Tokenizer::Estimate);
    assert!(packed.omitted.is_empty());
    assert_eq!(packed.manifest, corpus.manifest);
    for doc in &corpus.documents {
        let header = format!(
            "=== {} (lines 1-{}) ===\n",
            doc.path,
            doc.text.lines().count()
        );
        assert!(packed.text.contains(&(header + &doc.text)), "{}", doc.path);
    }
    assert!(!packed.text.contains("omitted"));
    assert_eq!(
        packed.included_tokens,
        count_tokens(&packed.text, Tokenizer::Estimate)
    );
}

#[test]
fn under_a_small_budget_the_most_relevant_chunk_is_kept_and_the_rest_listed() {
    let (dir, runbook) = release_workspace();
    let corpus = gathered(dir.path());
    let budget = 1500;
    let packed = pack(
        &corpus,
        "Assemble the release readiness report: migration state, rollback plan",
        budget,
        Tokenizer::Estimate,
    );

    // The rollback stretch, with its own line numbers and exact text.
    let expected_body: String = runbook
        .lines()
        .skip(60)
        .take(60)
        .map(|l| format!("{l}\n"))
        .collect();
    let chunk = format!("=== docs/runbook.md (lines 61-120) ===\n{expected_body}");
    assert!(packed.text.contains(&chunk), "{}", packed.text);

    assert!(
        packed.included_tokens <= budget,
        "{}",
        packed.included_tokens
    );
    assert!(count_tokens(&packed.text, Tokenizer::Estimate) <= budget);

    // Everything else is listed as omitted, in the prompt and in the result.
    assert!(!packed.omitted.is_empty());
    assert!(packed.text.starts_with("=== omitted"));
    let alpha = packed
        .omitted
        .iter()
        .find(|o| o.path == "docs/alpha.md")
        .expect("alpha omitted");
    assert_eq!((alpha.first_line, alpha.last_line), (1, 120));
    assert!(packed.text.contains("- docs/alpha.md (lines 1-120)"));
    assert!(
        packed
            .omitted
            .iter()
            .all(|o| !(o.path == "docs/runbook.md" && o.first_line <= 61 && o.last_line >= 120))
    );

    let entry = |p: &str| {
        packed
            .manifest
            .entries
            .iter()
            .find(|e| e.path == p)
            .unwrap()
    };
    assert_eq!(entry("docs/alpha.md").inclusion, Inclusion::Omitted);
    assert!(
        entry("docs/alpha.md")
            .note
            .as_deref()
            .unwrap()
            .contains("token budget")
    );
    assert_eq!(entry("docs/runbook.md").inclusion, Inclusion::Partial);
    // The corpus's own manifest is untouched.
    assert!(
        corpus
            .manifest
            .entries
            .iter()
            .all(|e| e.inclusion == Inclusion::Whole)
    );
}

#[test]
fn every_line_is_either_in_the_prompt_or_listed_as_omitted() {
    let (dir, _) = release_workspace();
    let corpus = gathered(dir.path());
    let packed = pack(&corpus, "database rollback", 3000, Tokenizer::Estimate);
    for doc in &corpus.documents {
        let total = doc.text.lines().count() as u64;
        let mut covered = vec![false; total as usize + 1];
        for o in packed.omitted.iter().filter(|o| o.path == doc.path) {
            for l in o.first_line..=o.last_line {
                covered[l as usize] = true;
            }
        }
        let prefix = format!("=== {} (lines ", doc.path);
        for header in packed.text.lines().filter(|l| l.starts_with(&prefix)) {
            let range = header[prefix.len()..].trim_end_matches(") ===");
            let (a, b) = range.split_once('-').unwrap();
            for l in a.parse::<u64>().unwrap()..=b.parse::<u64>().unwrap() {
                assert!(
                    !covered[l as usize],
                    "{} line {l} both shown and omitted",
                    doc.path
                );
                covered[l as usize] = true;
            }
        }
        assert!(
            covered[1..].iter().all(|c| *c),
            "{}: some lines unaccounted for",
            doc.path
        );
    }
}

#[test]
fn a_tiny_budget_still_lists_what_was_left_out_within_bounds() {
    let (dir, _) = release_workspace();
    let corpus = gathered(dir.path());
    let packed = pack(&corpus, "rollback", 100, Tokenizer::Estimate);
    assert!(packed.included_tokens <= 100, "{}", packed.included_tokens);
    assert_eq!(
        packed.included_tokens,
        count_tokens(&packed.text, Tokenizer::Estimate)
    );
    assert!(!packed.text.contains("=== docs/"), "{}", packed.text);
    assert!(
        packed.text.contains("more omitted ranges"),
        "{}",
        packed.text
    );
    assert!(
        packed
            .manifest
            .entries
            .iter()
            .all(|e| e.inclusion == Inclusion::Omitted)
    );
}

#[test]
fn openai_tokenizer_counts_with_tiktoken() {
    // Known counts for both encodings.
    assert_eq!(count_tokens("hello world", Tokenizer::OpenAi), 2);
    assert_eq!(count_tokens("hello world", Tokenizer::OpenAiCl100k), 2);
    // Special-token text in a corpus file counts as ordinary text, not one token.
    assert!(count_tokens("<|endoftext|>", Tokenizer::OpenAi) > 1);
    assert_eq!(count_tokens("abcdefghi", Tokenizer::Estimate), 3);
    assert_eq!(count_tokens("", Tokenizer::Estimate), 0);
}

#[test]
fn pack_with_tiktoken_stays_within_budget() {
    let (dir, _) = release_workspace();
    let corpus = gathered(dir.path());
    let budget = 2000;
    let packed = pack(&corpus, "rollback migration", budget, Tokenizer::OpenAi);
    assert!(packed.included_tokens <= budget);
    assert!(
        packed
            .text
            .contains("=== docs/runbook.md (lines 61-120) ===")
    );
}

#[test]
fn tokenizer_follows_the_model_config() {
    let model = |provider: &str, id: Option<&str>| -> fleet_core::config::ModelConfig {
        serde_json::from_value(serde_json::json!({"provider": provider, "model": id})).unwrap()
    };
    assert_eq!(Tokenizer::for_model(None), Tokenizer::Estimate);
    assert_eq!(
        Tokenizer::for_model(Some(&model("anthropic", Some("claude-x")))),
        Tokenizer::Estimate
    );
    assert_eq!(
        Tokenizer::for_model(Some(&model("openai", Some("gpt-4o")))),
        Tokenizer::OpenAi
    );
    assert_eq!(
        Tokenizer::for_model(Some(&model("openai", Some("gpt-4")))),
        Tokenizer::OpenAiCl100k
    );
    assert_eq!(
        Tokenizer::for_model(Some(&model("openai", Some("llama3.1:8b")))),
        Tokenizer::OpenAi
    );
}

#[test]
fn render_manifest_shows_the_table_totals_and_what_was_not_included_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.md", "alpha\n");
    write(root, "big.md", "0123456789\n".repeat(20));
    write(root, "bin.dat", b"\0\x01\x02");
    let limits = Limits {
        max_file_bytes: 50,
        ..Limits::default()
    };
    let corpus = gather_globs(root, &globs(&["*", "typo/*.md"]), false, &limits).unwrap();
    let text = render_manifest(&corpus, 42);
    let hash = &corpus.manifest.entries[0].blake3[..12];
    assert!(text.contains("a.md"), "{text}");
    assert!(text.contains(hash), "{text}");
    assert!(text.contains("truncated"), "{text}");
    assert!(text.contains("skipped_binary"), "{text}");
    assert!(
        text.contains("3 files, 0 sources: 2 included (1 truncated), 0 omitted, 1 skipped"),
        "{text}"
    );
    assert!(text.contains("~42 tokens"), "{text}");
    assert!(
        text.contains("big.md [truncated]: truncated to the first 4 of 20 lines"),
        "{text}"
    );
    assert!(text.contains("bin.dat [skipped_binary]: binary"), "{text}");
    assert!(text.contains("glob `typo/*.md` matched no file"), "{text}");

    let report = CorpusReport::new(&corpus, 42);
    let json = serde_json::to_string(&report).unwrap();
    let back: CorpusReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    assert_eq!(report.totals.files, 3);
    assert_eq!(report.totals.bytes, 6 + 220 + 3);
    let corpus_json = serde_json::to_string(&corpus).unwrap();
    assert_eq!(
        serde_json::from_str::<Corpus>(&corpus_json).unwrap(),
        corpus
    );
}

#[test]
fn with_tiktoken_a_corpus_far_over_budget_fits_and_every_line_is_accounted_for() {
    // Varied text, so estimates and real counts disagree both ways: prose,
    // code, runs of spaces (few tokens for many characters) and hex (many).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..60 {
        let line = match i % 4 {
            0 => format!("paragraph {i}: the rollback of migration {i} is described here\n"),
            1 => format!("fn step_{i}(x: u64) -> u64 {{ x.wrapping_mul({i}) }}\n"),
            2 => format!("{:>120}\n", i),
            _ => format!("{:032x}{:032x}\n", i * 7919, i * 104_729),
        };
        write(root, &format!("docs/f{i:02}.md"), line.repeat(40 + i));
    }
    let corpus = gathered(root);
    for budget in [700, 3000, 12_000] {
        let packed = pack(&corpus, "rollback migration", budget, Tokenizer::OpenAi);
        let counted = count_tokens(&packed.text, Tokenizer::OpenAi);
        assert!(counted <= budget, "{counted} > {budget}");
        assert!(packed.included_tokens <= budget);
        assert!(!packed.omitted.is_empty());
        for doc in &corpus.documents {
            let total = doc.text.lines().count();
            let mut covered = vec![0u8; total + 1];
            for o in packed.omitted.iter().filter(|o| o.path == doc.path) {
                let (a, b) = (o.first_line as usize, o.last_line as usize);
                covered[a..=b].iter_mut().for_each(|c| *c += 1);
            }
            let prefix = format!("=== {} (lines ", doc.path);
            for header in packed.text.lines().filter(|l| l.starts_with(&prefix)) {
                let range = header[prefix.len()..].trim_end_matches(") ===");
                let (a, b) = range.split_once('-').unwrap();
                let (a, b) = (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap());
                covered[a..=b].iter_mut().for_each(|c| *c += 1);
            }
            assert!(
                covered[1..].iter().all(|c| *c == 1),
                "{}: a line shown twice or not accounted for",
                doc.path
            );
        }
    }
    // The chunks about rollbacks are the most relevant: they are in.
    let packed = pack(&corpus, "rollback migration", 3000, Tokenizer::OpenAi);
    let shown = packed.text.split("\n=== docs/").nth(1).unwrap();
    assert!(shown.contains("rollback of migration"), "{}", packed.text);
}
