//! Fitting a corpus into a model's context budget.

use crate::rank::bm25_scores;
use crate::read::count_lines;
use crate::tokens::{estimate_from_chars, max_token_bytes};
use crate::{Corpus, Document, Inclusion, Manifest, Tokenizer, count_tokens};
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
///
/// With a real tokenizer, counting is what costs (tiktoken manages a few MB
/// a second), so only what can be kept is counted: whether the corpus fits
/// whole is settled by a bound (no token is longer than 128 bytes) or by
/// counting until the budget is passed; chunks are ranked and first weighed
/// by the estimate, and the real count is taken only for a chunk whose
/// estimate (scaled by how the counts so far compared with estimates) could
/// fit the room left. What goes in is always counted by the real tokenizer,
/// so the result fits the budget exactly as before; a chunk whose estimate
/// is far above the room left is passed over uncounted even if it would
/// have fit.
pub fn pack(corpus: &Corpus, query: &str, budget_tokens: usize, tokenizer: Tokenizer) -> Packed {
    let truncated_lines = truncated_line_totals(corpus);
    let headers: Vec<String> = corpus
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
            piece_header(&doc.path, &range)
        })
        .collect();
    if let Some(whole_tokens) = whole_tokens_within(corpus, &headers, budget_tokens, tokenizer) {
        let mut text = String::new();
        for (header, doc) in headers.iter().zip(&corpus.documents) {
            push_piece(&mut text, header, &doc.text);
        }
        return Packed {
            text,
            included_tokens: whole_tokens,
            omitted: Vec::new(),
            manifest: corpus.manifest.clone(),
        };
    }
    drop(headers);
    pack_chunks(corpus, query, budget_tokens, tokenizer)
}

/// Text counted at a time, in parallel, when checking whether the whole
/// corpus fits: counting stops at the first batch that goes over budget, so
/// a corpus far larger than the budget costs about the budget to count.
const WHOLE_BATCH_BYTES: usize = 256 * 1024;

/// The tokens of every document whole (each piece counted alone), if they
/// fit in `budget`; `None` as soon as they do not.
fn whole_tokens_within(
    corpus: &Corpus,
    headers: &[String],
    budget: usize,
    tokenizer: Tokenizer,
) -> Option<usize> {
    let docs = &corpus.documents;
    if tokenizer == Tokenizer::Estimate {
        let total: usize = headers
            .par_iter()
            .zip(docs)
            .map(|(header, doc)| estimate_piece(header, &doc.text))
            .sum();
        return (total <= budget).then_some(total);
    }
    // Each token is at most so many bytes: a corpus over that many bytes
    // per token of the budget cannot fit, whatever it says.
    if let Some(max) = max_token_bytes(tokenizer) {
        let bytes: usize = headers
            .iter()
            .zip(docs)
            .map(|(header, doc)| header.len() + doc.text.len() + ends_unended(&doc.text))
            .sum();
        if bytes > budget.saturating_mul(max) {
            return None;
        }
    }
    let mut total = 0usize;
    let mut start = 0;
    while start < docs.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < docs.len() && (end == start || bytes < WHOLE_BATCH_BYTES) {
            bytes += docs[end].text.len();
            end += 1;
        }
        total += (start..end)
            .into_par_iter()
            .map(|i| count_tokens(&render_piece(&headers[i], &docs[i].text), tokenizer))
            .sum::<usize>();
        if total > budget {
            return None;
        }
        start = end;
    }
    Some(total)
}

struct Chunk<'a> {
    doc: usize,
    first_line: u64,
    last_line: u64,
    body: &'a str,
}

/// Chunk costs for the real tokenizer are counted only for chunks that can
/// be taken: a chunk is counted when its estimate, scaled by how estimates
/// have compared with counts so far, is within this factor of the room left.
const COUNT_SLACK: f64 = 1.25;
/// Chunks counted at once (in parallel) ahead of the one being decided.
const COUNT_BATCH_MAX: usize = 1024;
/// How far ahead in relevance order a batch looks for chunks to count.
const COUNT_LOOKAHEAD: usize = 4096;

fn pack_chunks(corpus: &Corpus, query: &str, budget: usize, tokenizer: Tokenizer) -> Packed {
    let chunks: Vec<Chunk<'_>> = corpus
        .documents
        .iter()
        .enumerate()
        .flat_map(|(doc, d)| chunk_document(doc, &d.text))
        .collect();
    let headers: Vec<String> = chunks
        .iter()
        .map(|c| {
            let path = &corpus.documents[c.doc].path;
            piece_header(path, &format!("lines {}-{}", c.first_line, c.last_line))
        })
        .collect();
    let order = rank(&chunks, &headers, query);
    let mut costs = Costs::new(&chunks, &headers, tokenizer);

    // Room for the omitted list: what listing every document whole would
    // take, plus one line for each chunk taken (taking a chunk from the
    // middle of a document splits its omitted range in two), capped.
    let list_cap = budget / OMITTED_LIST_SHARE;
    // Tiny budgets get a one-line header so the list can still say something.
    let short_header = count_tokens(&omitted_header(budget, false), tokenizer) > list_cap;
    let header_cost = count_tokens(&omitted_header(budget, short_header), tokenizer);
    // The header and the "... and N more" line always fit.
    let min_reserve = header_cost + count_tokens(&more_line(chunks.len()), tokenizer);
    let clamp = |reserve: usize| reserve.min(list_cap).max(min_reserve);
    // Once listing the documents reaches the cap, every reserve below is the
    // cap, and the rest of the documents need not be counted.
    let mut listing = header_cost;
    let mut doc_line_costs = Vec::with_capacity(corpus.documents.len());
    for d in &corpus.documents {
        if listing >= list_cap {
            break;
        }
        let cost = count_tokens(&omitted_line(&d.path, 1_000_000, 1_000_000), tokenizer);
        listing += cost;
        doc_line_costs.push(cost);
    }
    let doc_line_cost = |doc: usize| doc_line_costs.get(doc).copied().unwrap_or(list_cap);
    let mut reserve = clamp(listing);

    let mut taken = vec![false; chunks.len()];
    let mut taken_in_order = Vec::new();
    let mut used = 0usize;
    for (at, &i) in order.iter().enumerate() {
        let reserve_after = clamp(reserve + doc_line_cost(chunks[i].doc));
        let Some(room) = budget.checked_sub(used + reserve_after) else {
            continue;
        };
        let Some(cost) = costs.exact_if_it_may_fit(&order[at..], room) else {
            continue;
        };
        if cost <= room {
            taken[i] = true;
            taken_in_order.push(i);
            used += cost;
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
                used -= costs.exact[i].unwrap_or(0);
            }
            None => break (omitted, list, list_tokens),
        }
    };

    let mut text = list;
    for (i, chunk) in chunks.iter().enumerate() {
        if taken[i] {
            push_piece(&mut text, &headers[i], chunk.body);
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

/// What each chunk costs in the prompt: the estimate for every chunk, and
/// the real tokenizer's count for those that get as far as being weighed
/// against the room left, counted in parallel batches.
struct Costs<'c, 'a> {
    chunks: &'c [Chunk<'a>],
    headers: &'c [String],
    tokenizer: Tokenizer,
    estimates: Vec<usize>,
    /// What the real tokenizer counts, for the chunks counted so far (all of
    /// them, from the start, when the tokenizer is the estimate). Every
    /// chunk taken has one.
    exact: Vec<Option<usize>>,
    /// Sums over the chunks counted so far, to scale estimates by.
    counted_estimates: usize,
    counted_exact: usize,
}

impl<'c, 'a> Costs<'c, 'a> {
    fn new(chunks: &'c [Chunk<'a>], headers: &'c [String], tokenizer: Tokenizer) -> Self {
        let estimates: Vec<usize> = chunks
            .par_iter()
            .zip(headers)
            .map(|(chunk, header)| estimate_piece(header, chunk.body))
            .collect();
        let exact = if tokenizer == Tokenizer::Estimate {
            estimates.iter().copied().map(Some).collect()
        } else {
            vec![None; chunks.len()]
        };
        Costs {
            chunks,
            headers,
            tokenizer,
            estimates,
            exact,
            counted_estimates: 0,
            counted_exact: 0,
        }
    }

    /// What the real tokenizer is likely to make of chunk `i`.
    fn predicted(&self, i: usize) -> f64 {
        // A prior of one 2k-token chunk counted as estimated, so the first
        // batch is sized by the estimate itself.
        const PRIOR: f64 = 2048.0;
        let ratio = (self.counted_exact as f64 + PRIOR) / (self.counted_estimates as f64 + PRIOR);
        self.estimates[i] as f64 * ratio
    }

    /// The real cost of chunk `upcoming[0]`, or `None` when it is not worth
    /// counting because it is not expected to fit in `room`. Counting it
    /// also counts, in parallel, the chunks after it that are expected to
    /// be taken with it.
    fn exact_if_it_may_fit(&mut self, upcoming: &[usize], room: usize) -> Option<usize> {
        let i = upcoming[0];
        if let Some(cost) = self.exact[i] {
            return Some(cost);
        }
        let limit = room as f64 * COUNT_SLACK;
        if self.predicted(i) > limit {
            return None;
        }
        let mut batch = Vec::new();
        let mut expected = 0.0;
        for &j in upcoming.iter().take(COUNT_LOOKAHEAD) {
            if self.exact[j].is_some() {
                continue;
            }
            let predicted = self.predicted(j);
            if predicted > limit {
                continue;
            }
            batch.push(j);
            expected += predicted;
            if expected > room as f64 || batch.len() >= COUNT_BATCH_MAX {
                break;
            }
        }
        let counted: Vec<usize> = batch
            .par_iter()
            .map(|&j| {
                let piece = render_piece(&self.headers[j], self.chunks[j].body);
                count_tokens(&piece, self.tokenizer)
            })
            .collect();
        for (&j, &cost) in batch.iter().zip(&counted) {
            self.exact[j] = Some(cost);
            self.counted_estimates += self.estimates[j];
            self.counted_exact += cost;
        }
        self.exact[i]
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
fn rank(chunks: &[Chunk<'_>], headers: &[String], query: &str) -> Vec<usize> {
    let pieces: Vec<(&str, &str)> = headers
        .iter()
        .zip(chunks)
        .map(|(header, chunk)| (header.as_str(), chunk.body))
        .collect();
    let scores = bm25_scores(&pieces, query);
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    // Highest score first; ties (notably all the zero scores) in corpus order.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// `=== PATH (RANGE) ===\n`: what precedes a document or chunk.
fn piece_header(path: &str, range: &str) -> String {
    format!("=== {path} ({range}) ===\n")
}

/// A document or chunk as it goes into the prompt: its header, then its
/// lines, the last one ended.
fn render_piece(header: &str, body: &str) -> String {
    let mut piece = String::with_capacity(header.len() + body.len() + 1);
    push_piece(&mut piece, header, body);
    piece
}

fn push_piece(out: &mut String, header: &str, body: &str) {
    out.push_str(header);
    out.push_str(body);
    if !body.is_empty() && !body.ends_with('\n') {
        out.push('\n');
    }
}

/// `count_tokens(render_piece(header, body), Tokenizer::Estimate)`, without
/// building the piece.
fn estimate_piece(header: &str, body: &str) -> usize {
    estimate_from_chars(header.chars().count() + body.chars().count() + ends_unended(body))
}

/// 1 if a piece adds a `\n` after `body` (its last line has none), else 0.
fn ends_unended(body: &str) -> usize {
    usize::from(!body.is_empty() && !body.ends_with('\n'))
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
