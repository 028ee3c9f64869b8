//! Fitting a corpus into a model's context budget.

use crate::read::count_lines;
use crate::{Corpus, Document, Inclusion, Manifest, Tokenizer, count_tokens};
use bm25::{Embedder, EmbedderBuilder, Language, Scorer};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Lines per chunk when a corpus has to be cut down.
const CHUNK_LINES: usize = 60;
/// A chunk also ends once it reaches this size, so one huge generated or
/// minified file does not become a single chunk too big to ever fit.
const CHUNK_MAX_BYTES: usize = 8 * 1024;
/// At most this share of the budget goes to listing what was omitted.
const OMITTED_LIST_SHARE: usize = 4;

/// A run of lines of one document that is not in the packed prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OmittedChunk {
    pub path: String,
    /// 1-based, inclusive.
    pub first_line: u64,
    /// 1-based, inclusive.
    pub last_line: u64,
}

/// The corpus as it goes into a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Packed {
    /// Every included document or chunk headed `=== PATH (lines A-B) ===`,
    /// preceded, when anything was left out, by the list of what was.
    pub text: String,
    /// Tokens of `text` (the sum of its pieces, each counted alone).
    pub included_tokens: usize,
    /// What is not in `text`, adjacent chunks merged, in corpus order.
    pub omitted: Vec<OmittedChunk>,
    /// The corpus manifest with documents left out (`omitted`) or cut
    /// (`partial`) by the budget marked as such.
    pub manifest: Manifest,
}

/// Packs documents into a token budget: whole documents when everything
/// fits; otherwise ~60-line chunks that keep their original line numbers,
/// ranked by BM25 relevance to `query` (the step prompt), best first until
/// the budget is spent. Chunks that score nothing keep corpus order after the
/// scored ones. The result lists explicitly what was omitted, so the model
/// (and whoever reads the run) knows what it did not see.
pub fn pack(corpus: &Corpus, query: &str, budget_tokens: usize, tokenizer: Tokenizer) -> Packed {
    let truncated_lines = truncated_line_totals(corpus);
    let whole: Vec<String> = corpus
        .documents
        .iter()
        .map(|doc| {
            let lines = count_lines(&doc.text);
            let range = match truncated_lines.get(doc.path.as_str()) {
                Some(total) if lines > 0 => format!("lines 1-{lines} of {total}; truncated"),
                Some(total) => format!("0 of {total} lines; truncated"),
                None if lines == 0 => "empty".to_string(),
                None => format!("lines 1-{lines}"),
            };
            render_piece(&doc.path, &range, &doc.text)
        })
        .collect();
    let whole_tokens: usize = whole.par_iter().map(|p| count_tokens(p, tokenizer)).sum();
    if whole_tokens <= budget_tokens {
        return Packed {
            text: whole.concat(),
            included_tokens: whole_tokens,
            omitted: Vec::new(),
            manifest: corpus.manifest.clone(),
        };
    }
    drop(whole);
    pack_chunks(corpus, query, budget_tokens, tokenizer)
}

struct Chunk<'a> {
    doc: usize,
    first_line: u64,
    last_line: u64,
    body: &'a str,
}

fn pack_chunks(corpus: &Corpus, query: &str, budget: usize, tokenizer: Tokenizer) -> Packed {
    let chunks: Vec<Chunk<'_>> = corpus
        .documents
        .iter()
        .enumerate()
        .flat_map(|(doc, d)| chunk_document(doc, &d.text))
        .collect();
    let rendered: Vec<String> = chunks
        .iter()
        .map(|c| {
            let path = &corpus.documents[c.doc].path;
            render_piece(
                path,
                &format!("lines {}-{}", c.first_line, c.last_line),
                c.body,
            )
        })
        .collect();
    let costs: Vec<usize> = rendered
        .par_iter()
        .map(|p| count_tokens(p, tokenizer))
        .collect();
    let order = rank(&chunks, &rendered, query);

    // Room for the omitted list: what listing every document whole would
    // take, plus one line for each chunk taken (taking a chunk from the
    // middle of a document splits its omitted range in two), capped.
    let list_cap = budget / OMITTED_LIST_SHARE;
    // Tiny budgets get a one-line header so the list can still say something.
    let short_header = count_tokens(&omitted_header(budget, false), tokenizer) > list_cap;
    let header_cost = count_tokens(&omitted_header(budget, short_header), tokenizer);
    let doc_line_costs: Vec<usize> = corpus
        .documents
        .iter()
        .map(|d| count_tokens(&omitted_line(&d.path, 1_000_000, 1_000_000), tokenizer))
        .collect();
    // The header and the "... and N more" line always fit.
    let min_reserve = header_cost + count_tokens(&more_line(chunks.len()), tokenizer);
    let clamp = |reserve: usize| reserve.min(list_cap).max(min_reserve);
    let mut reserve = clamp(header_cost + doc_line_costs.iter().sum::<usize>());

    let mut taken = vec![false; chunks.len()];
    let mut taken_in_order = Vec::new();
    let mut used = 0usize;
    for &i in &order {
        let reserve_after = clamp(reserve + doc_line_costs[chunks[i].doc]);
        if used + costs[i] + reserve_after <= budget {
            taken[i] = true;
            taken_in_order.push(i);
            used += costs[i];
            reserve = reserve_after;
        }
    }

    // Pieces were counted one by one; BPE over the joined text can differ by
    // a token here and there, so the least relevant chunks give way if needed.
    let (omitted, list, list_tokens) = loop {
        let omitted = omitted_ranges(corpus, &chunks, &taken);
        let list = render_omitted_list(&omitted, budget, short_header, reserve, tokenizer);
        let list_tokens = count_tokens(&list, tokenizer);
        if used + list_tokens <= budget {
            break (omitted, list, list_tokens);
        }
        match taken_in_order.pop() {
            Some(i) => {
                taken[i] = false;
                used -= costs[i];
            }
            None => break (omitted, list, list_tokens),
        }
    };

    let mut text = list;
    for (i, piece) in rendered.iter().enumerate() {
        if taken[i] {
            text.push_str(piece);
        }
    }
    let manifest = mark_manifest(corpus, &chunks, &taken, &omitted, budget);
    Packed {
        text,
        included_tokens: used + list_tokens,
        omitted,
        manifest,
    }
}

/// Splits a document into chunks of whole lines, numbered as in the file.
fn chunk_document(doc: usize, text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut first_line = 1u64;
    let mut lines_in_chunk = 0u64;
    for newline in memchr::memchr_iter(b'\n', text.as_bytes()) {
        let end = newline + 1;
        lines_in_chunk += 1;
        if lines_in_chunk as usize == CHUNK_LINES || end - start >= CHUNK_MAX_BYTES {
            chunks.push(Chunk {
                doc,
                first_line,
                last_line: first_line + lines_in_chunk - 1,
                body: &text[start..end],
            });
            start = end;
            first_line += lines_in_chunk;
            lines_in_chunk = 0;
        }
    }
    if start < text.len() {
        // Full lines not yet emitted, plus a last line without `\n`.
        let partial = u64::from(!text.ends_with('\n'));
        chunks.push(Chunk {
            doc,
            first_line,
            last_line: first_line + lines_in_chunk + partial - 1,
            body: &text[start..],
        });
    }
    chunks
}

/// Chunk indices, most relevant to `query` first. The path is part of what
/// is scored: `rollback.md` says something about its content.
fn rank(chunks: &[Chunk<'_>], rendered: &[String], query: &str) -> Vec<usize> {
    let texts: Vec<&str> = rendered.iter().map(String::as_str).collect();
    let embedder: Embedder = EmbedderBuilder::with_fit_to_corpus(Language::English, &texts).build();
    let embeddings: Vec<_> = texts.par_iter().map(|t| embedder.embed(t)).collect();
    let mut scorer = Scorer::<usize>::new();
    for (i, embedding) in embeddings.into_iter().enumerate() {
        scorer.upsert(&i, embedding);
    }
    let mut scores = vec![0f32; chunks.len()];
    for scored in scorer.matches(&embedder.embed(query)) {
        if let Some(slot) = scores.get_mut(scored.id) {
            *slot = scored.score;
        }
    }
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    // Highest score first; ties (notably all the zero scores) in corpus order.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

fn render_piece(path: &str, range: &str, body: &str) -> String {
    let mut piece = String::with_capacity(path.len() + range.len() + body.len() + 16);
    piece.push_str("=== ");
    piece.push_str(path);
    piece.push_str(" (");
    piece.push_str(range);
    piece.push_str(") ===\n");
    piece.push_str(body);
    if !body.is_empty() && !body.ends_with('\n') {
        piece.push('\n');
    }
    piece
}

fn omitted_header(budget: usize, short: bool) -> String {
    if short {
        return format!("=== omitted: over the token budget of {budget}, not shown to you ===\n");
    }
    format!(
        "=== omitted: not shown to you, over the token budget of {budget} ===\n\
         The corpus was larger than the budget, so the parts shown below were chosen by\n\
         relevance to the task. These parts were left out and you have not seen them:\n"
    )
}

fn omitted_line(path: &str, first: u64, last: u64) -> String {
    format!("- {path} (lines {first}-{last})\n")
}

/// The omitted list, cut short (with a count of what is not listed) if it
/// would not fit in `room` tokens.
fn render_omitted_list(
    omitted: &[OmittedChunk],
    budget: usize,
    short_header: bool,
    room: usize,
    tokenizer: Tokenizer,
) -> String {
    if omitted.is_empty() {
        return String::new();
    }
    let mut list = omitted_header(budget, short_header);
    let mut spent = count_tokens(&list, tokenizer);
    // Kept back for the "... and N more" line.
    let tail_room = count_tokens(&more_line(omitted.len()), tokenizer);
    for (listed, o) in omitted.iter().enumerate() {
        let line = omitted_line(&o.path, o.first_line, o.last_line);
        let cost = count_tokens(&line, tokenizer);
        let last = listed + 1 == omitted.len();
        if spent + cost + if last { 0 } else { tail_room } > room {
            list.push_str(&more_line(omitted.len() - listed));
            break;
        }
        spent += cost;
        list.push_str(&line);
    }
    list
}

fn more_line(count: usize) -> String {
    format!("- ... and {count} more omitted ranges; the corpus manifest lists every document\n")
}

/// Omitted chunks, adjacent ones in the same document merged.
fn omitted_ranges(corpus: &Corpus, chunks: &[Chunk<'_>], taken: &[bool]) -> Vec<OmittedChunk> {
    let mut omitted: Vec<OmittedChunk> = Vec::new();
    let mut previous: Option<(usize, u64)> = None;
    for (chunk, _) in chunks.iter().zip(taken).filter(|(_, t)| !**t) {
        match (previous, omitted.last_mut()) {
            (Some((doc, last_line)), Some(range))
                if doc == chunk.doc && last_line + 1 == chunk.first_line =>
            {
                range.last_line = chunk.last_line;
            }
            _ => omitted.push(OmittedChunk {
                path: corpus.documents[chunk.doc].path.clone(),
                first_line: chunk.first_line,
                last_line: chunk.last_line,
            }),
        }
        previous = Some((chunk.doc, chunk.last_line));
    }
    omitted
}

fn mark_manifest(
    corpus: &Corpus,
    chunks: &[Chunk<'_>],
    taken: &[bool],
    omitted: &[OmittedChunk],
    budget: usize,
) -> Manifest {
    let mut manifest = corpus.manifest.clone();
    let mut any_taken = vec![false; corpus.documents.len()];
    for (chunk, _) in chunks.iter().zip(taken).filter(|(_, t)| **t) {
        any_taken[chunk.doc] = true;
    }
    let mut ranges: HashMap<&str, Vec<String>> = HashMap::new();
    for o in omitted {
        ranges
            .entry(o.path.as_str())
            .or_default()
            .push(format!("{}-{}", o.first_line, o.last_line));
    }
    let entry_index: HashMap<&str, usize> = manifest
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_str(), i))
        .collect();
    let mut updates = Vec::new();
    for (doc, Document { path, .. }) in corpus.documents.iter().enumerate() {
        let Some(lines) = ranges.get(path.as_str()) else {
            continue;
        };
        let Some(&index) = entry_index.get(path.as_str()) else {
            continue;
        };
        let (inclusion, note) = if any_taken[doc] {
            (
                Inclusion::Partial,
                format!(
                    "in the prompt only in part: lines {} left out for the token budget of {budget}",
                    lines.join(", ")
                ),
            )
        } else {
            (
                Inclusion::Omitted,
                format!("left out of the prompt: over the token budget of {budget}"),
            )
        };
        updates.push((index, inclusion, note));
    }
    for (index, inclusion, note) in updates {
        let entry = &mut manifest.entries[index];
        entry.inclusion = inclusion;
        entry.note = Some(match entry.note.take() {
            Some(existing) => format!("{existing}; {note}"),
            None => note,
        });
    }
    manifest
}

/// Total line counts of documents that were truncated when gathered, so
/// their headers can say the model sees only the start.
fn truncated_line_totals(corpus: &Corpus) -> HashMap<&str, u64> {
    corpus
        .manifest
        .entries
        .iter()
        .filter(|e| e.inclusion == Inclusion::Truncated)
        .map(|e| (e.path.as_str(), e.lines))
        .collect()
}
