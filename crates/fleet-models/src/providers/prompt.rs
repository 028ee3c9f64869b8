//! What an LLM is sent for one step: the kind's system prompt (kept in
//! `prompts/*.md`) and one user message with the task, the upstream
//! documents and the corpus packed into the context window, every line
//! numbered so citations can be exact.
//!
//! A review's message holds only the upstream documents and the corpus: the
//! report author's instructions and conversation never reach the reviewer.

use crate::{ModelError, ModelRequest, UpstreamDoc};
use fleet_core::config::StepKind;
use fleet_core::flags::FlagSet;
use fleet_corpus::{Tokenizer, count_tokens, pack};
use std::fmt::Write as _;

pub(crate) const REPORT_SYSTEM: &str = include_str!("../../prompts/report.md");
pub(crate) const REVIEW_SYSTEM: &str = include_str!("../../prompts/review.md");

/// Kept free beyond the counted prompt: token counts of models whose
/// tokenizer Fleet does not ship are estimates, and chat APIs add a few
/// tokens of framing per message.
const SAFETY_MARGIN_PERCENT: usize = 5;
const SAFETY_MARGIN_MIN: usize = 64;

pub(crate) struct Prompt {
    pub system: &'static str,
    pub user: String,
    /// Tokens of `system` + `user`, counted with the model's tokenizer.
    pub tokens: usize,
}

/// How much room a prompt has.
pub(crate) struct Fit {
    pub context_tokens: usize,
    /// Kept free for the answer.
    pub answer_tokens: usize,
    pub tokenizer: Tokenizer,
}

pub(crate) fn system_prompt(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Review => REVIEW_SYSTEM,
        _ => REPORT_SYSTEM,
    }
}

pub(crate) fn build(req: &ModelRequest, fit: &Fit) -> Result<Prompt, ModelError> {
    let system = system_prompt(req.kind);
    let head = head(req);
    let corpus_intro = |omitted: usize| corpus_intro(req, omitted);
    let system_tokens = count_tokens(system, fit.tokenizer);
    let head_tokens = count_tokens(&head, fit.tokenizer);
    // The longest intro (with the "did not fit" note), so the room is never overstated.
    let intro_tokens = count_tokens(&corpus_intro(usize::MAX), fit.tokenizer);
    let fixed = system_tokens + head_tokens + intro_tokens;
    let margin = (fit.context_tokens * SAFETY_MARGIN_PERCENT / 100).max(SAFETY_MARGIN_MIN);
    let Some(room) = fit
        .context_tokens
        .checked_sub(fit.answer_tokens + margin + fixed)
        .filter(|room| *room > 0 || req.corpus.documents.is_empty())
    else {
        return Err(ModelError::ContextTooSmall(format!(
            "the instructions and upstream documents alone take {fixed} tokens, and {} are kept \
             for the answer, but `context_tokens` is {}",
            fit.answer_tokens, fit.context_tokens
        )));
    };

    // Line numbers add a few tokens per line that the packer does not see:
    // pack into a share of the room, and shrink it if the numbered text
    // still does not fit.
    let mut budget = room * 4 / 5;
    let mut corpus_text = String::new();
    let mut corpus_tokens = 0;
    let mut omitted = 0;
    for _ in 0..4 {
        let packed = pack(&req.corpus, &req.prompt, budget, fit.tokenizer);
        corpus_text = number_packed(&packed.text);
        corpus_tokens = count_tokens(&corpus_text, fit.tokenizer);
        omitted = packed.omitted.len();
        if corpus_tokens <= room || budget == 0 {
            break;
        }
        budget = budget * room / corpus_tokens * 9 / 10;
    }
    if corpus_tokens > room {
        return Err(ModelError::ContextTooSmall(format!(
            "the corpus could not be packed into the {room} tokens left for it"
        )));
    }
    let mut user = head;
    user.push_str(&corpus_intro(omitted));
    user.push_str(&corpus_text);
    // The sum of the pieces' counts: the corpus is not counted a third time.
    let tokens = fixed + corpus_tokens;
    Ok(Prompt {
        system,
        user,
        tokens,
    })
}

/// Everything before the corpus: the task, review feedback and the upstream documents.
fn head(req: &ModelRequest) -> String {
    let mut out = String::new();
    let task = req.prompt.trim();
    match req.kind {
        StepKind::Review => {
            let _ = writeln!(out, "# Review task\n");
            let _ = writeln!(
                out,
                "{}\n",
                if task.is_empty() {
                    "Review the draft adversarially."
                } else {
                    task
                }
            );
        }
        _ => {
            let _ = writeln!(out, "# Task\n");
            let _ = writeln!(
                out,
                "{}\n",
                if task.is_empty() {
                    "Write the report."
                } else {
                    task
                }
            );
        }
    }
    out.push_str(&release_section(req));
    if let Some(feedback) = &req.feedback {
        out.push_str(&feedback_section(feedback));
    }
    if !req.upstream.is_empty() {
        let title = match req.kind {
            StepKind::Review => "# The draft under review",
            _ => "# Documents from earlier steps",
        };
        let _ = writeln!(
            out,
            "{title}\n\nCite these by their path, e.g. `{}:1`.\n",
            req.upstream[0].path
        );
        for doc in &req.upstream {
            out.push_str(&upstream_piece(doc));
        }
        out.push('\n');
    }
    out
}

/// The release being gated and, for `changed_since` globs, the git range
/// they compared: files those globs match that did not change are not in
/// the corpus, and the model should not read their absence as news.
fn release_section(req: &ModelRequest) -> String {
    let scopes = &req.corpus.manifest.scopes;
    if req.release.is_none() && scopes.is_empty() {
        return String::new();
    }
    let mut out = String::from("# Release\n\n");
    if let Some(release) = &req.release {
        let _ = writeln!(out, "This run gates release `{release}`.");
    }
    if !scopes.is_empty() {
        out.push_str(
            "Some corpus globs are limited to the files committed since a git revision; \
             files they match that did not change in that range are not in the corpus:\n",
        );
        for s in scopes {
            let _ = writeln!(
                out,
                "- `{}`: changed since `{}` (commits {}), {} file{}",
                s.glob,
                s.since,
                s.short(),
                s.files,
                if s.files == 1 { "" } else { "s" }
            );
        }
    }
    out.push('\n');
    out
}

fn feedback_section(feedback: &FlagSet) -> String {
    let mut out = String::from(
        "# Review feedback to address\n\nA review of your previous draft raised these flags. \
         Address each one.\n\n",
    );
    for f in &feedback.flags {
        let _ = write!(
            out,
            "- {} ({}): {}",
            f.id,
            f.severity.as_str(),
            f.claim.trim()
        );
        let cites: Vec<String> = f
            .evidence
            .iter()
            .map(|c| format!("{}:{}", c.path, c.line))
            .collect();
        if !cites.is_empty() {
            let _ = write!(out, " [{}]", cites.join(", "));
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

fn upstream_piece(doc: &UpstreamDoc) -> String {
    let lines = doc.text.lines().count();
    let mut out = format!(
        "=== {} ({} `{}`, lines 1-{lines}) ===\n",
        doc.path,
        doc.kind.as_str(),
        doc.step
    );
    for (i, line) in doc.text.lines().enumerate() {
        let _ = writeln!(out, "{:>5}| {line}", i + 1);
    }
    if let Some(flags) = &doc.flags
        && !flags.flags.is_empty()
    {
        let _ = writeln!(out, "Flags raised by `{}`:", doc.step);
        for f in &flags.flags {
            let _ = writeln!(out, "- {} ({}): {}", f.id, f.severity.as_str(), f.claim);
        }
    }
    out
}

fn corpus_intro(req: &ModelRequest, omitted: usize) -> String {
    let docs = req.corpus.documents.len();
    let mut out = format!(
        "# Corpus\n\n{docs} document{} read for this step. Each line is shown as `NUMBER| text`; \
         cite it as `path:NUMBER`.\n",
        if docs == 1 { " was" } else { "s were" }
    );
    if omitted > 0 {
        out.push_str(
            "The corpus did not fit in full: the parts listed under \"omitted\" below were left \
             out and you have not seen them. Where they could matter, say that they were not \
             reviewed.\n",
        );
    }
    if !req.corpus.manifest.gaps.is_empty() {
        out.push_str(
            "Part of what this step was asked to read was not read. Open your document by saying \
             so, naming each of these, and do not present the rest as a complete picture:\n",
        );
        for gap in &req.corpus.manifest.gaps {
            let _ = writeln!(out, "- {}", gap.describe());
        }
    }
    out.push('\n');
    out
}

/// Prefixes each line of the packed corpus with its line number in its
/// document, taken from the `=== path (lines A-B) ===` headers the packer
/// writes. Lines under other headers (the omitted list) stay as they are.
pub(crate) fn number_packed(packed: &str) -> String {
    let mut out = String::with_capacity(packed.len() + packed.len() / 4);
    let mut next: Option<u64> = None;
    for line in packed.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare.starts_with("=== ") && bare.ends_with(" ===") {
            next = first_line_of_header(bare);
            out.push_str(line);
            continue;
        }
        match next.as_mut() {
            Some(n) => {
                let _ = write!(out, "{:>5}| {line}", *n);
                *n += 1;
            }
            None => out.push_str(line),
        }
    }
    out
}

/// `A` of a `=== path (lines A-B...) ===` header.
fn first_line_of_header(header: &str) -> Option<u64> {
    let at = header.rfind("(lines ")?;
    let rest = &header[at + "(lines ".len()..];
    let end = rest.find('-')?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(release: Option<&str>, scopes: Vec<fleet_corpus::ScopeRange>) -> ModelRequest {
        let mut corpus = fleet_corpus::Corpus::default();
        corpus.manifest.scopes = scopes;
        ModelRequest {
            genflow: "g".into(),
            step: "readiness".into(),
            kind: StepKind::Report,
            prompt: "Assess.".into(),
            corpus,
            upstream: Vec::new(),
            feedback: None,
            budget: None,
            release: release.map(str::to_owned),
        }
    }

    #[test]
    fn the_release_and_the_git_range_are_stated() {
        let range = fleet_corpus::ScopeRange {
            glob: "db/migrate/**".into(),
            since: "v4.1.0".into(),
            since_commit: "a".repeat(40),
            base_commit: "abc1234".repeat(5) + "12345",
            head: "HEAD".into(),
            head_commit: "def5678".repeat(5) + "12345",
            files: 2,
        };
        let head = head(&request(Some("4.2.0"), vec![range]));
        assert!(head.contains("This run gates release `4.2.0`."), "{head}");
        assert!(
            head.contains(
                "- `db/migrate/**`: changed since `v4.1.0` (commits abc1234..def5678), 2 files"
            ),
            "{head}"
        );
        // Neither set: the prompt is what it was.
        assert!(!super::head(&request(None, Vec::new())).contains("# Release"));
    }

    #[test]
    fn numbering_follows_the_headers() {
        let packed = "=== omitted: not shown ===\n- a.md (lines 3-4)\n\
                      === a.md (lines 1-2) ===\nfirst\nsecond\n\
                      === b.md (lines 61-62 of 90; truncated) ===\nsixty-one\nsixty-two\n\
                      === c.md (empty) ===\n";
        let numbered = number_packed(packed);
        assert!(numbered.contains("\n- a.md (lines 3-4)\n"), "{numbered}");
        assert!(
            numbered.contains("    1| first\n    2| second\n"),
            "{numbered}"
        );
        assert!(
            numbered.contains("   61| sixty-one\n   62| sixty-two\n"),
            "{numbered}"
        );
        assert!(numbered.ends_with("=== c.md (empty) ===\n"));
    }

    #[test]
    fn the_corpus_intro_names_what_was_not_read() {
        let mut req = ModelRequest {
            genflow: "g".into(),
            step: "readiness".into(),
            kind: StepKind::Report,
            prompt: String::new(),
            corpus: fleet_corpus::Corpus::default(),
            upstream: vec![],
            feedback: None,
            budget: None,
            release: None,
        };
        assert!(!corpus_intro(&req, 0).contains("not read"));
        req.corpus.manifest.gaps = vec![fleet_corpus::CorpusGap::GlobMatchedNothing {
            glob: "docs/runbok/*.md".into(),
            hint: None,
        }];
        let intro = corpus_intro(&req, 0);
        assert!(intro.contains("was not read"), "{intro}");
        assert!(
            intro.contains("- corpus glob `docs/runbok/*.md` matched no file"),
            "{intro}"
        );
    }
}
