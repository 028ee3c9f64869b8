//! Token counting: exact for OpenAI-style models (tiktoken), an estimate for
//! everything else.

use fleet_core::config::{ModelConfig, Provider};
use std::sync::OnceLock;
use tiktoken_rs::CoreBPE;

/// How to count tokens for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tokenizer {
    /// `o200k_base` (GPT-4o, GPT-4.1, GPT-5, o-series), via tiktoken-rs.
    OpenAi,
    /// `cl100k_base` (GPT-4, GPT-3.5), via tiktoken-rs.
    OpenAiCl100k,
    /// About 4 characters per token, for models whose tokenizer we do not ship.
    Estimate,
}

impl Tokenizer {
    /// The tokenizer for a step's model: tiktoken for `provider: openai`
    /// (cl100k for the model ids tiktoken maps to it, o200k otherwise),
    /// the estimate for everything else (builtin, anthropic, command).
    pub fn for_model(model: Option<&ModelConfig>) -> Tokenizer {
        let Some(model) = model else {
            return Tokenizer::Estimate;
        };
        if model.provider != Provider::Openai {
            return Tokenizer::Estimate;
        }
        match model
            .model
            .as_deref()
            .and_then(tiktoken_rs::tokenizer::get_tokenizer)
        {
            Some(tiktoken_rs::tokenizer::Tokenizer::Cl100kBase) => Tokenizer::OpenAiCl100k,
            _ => Tokenizer::OpenAi,
        }
    }
}

/// Tokens in `text`. Special-token markers in the text (e.g. `<|endoftext|>`)
/// count as ordinary text, which is how a corpus file reaches the model.
pub fn count_tokens(text: &str, tokenizer: Tokenizer) -> usize {
    let bpe = match tokenizer {
        Tokenizer::OpenAi => o200k(),
        Tokenizer::OpenAiCl100k => cl100k(),
        Tokenizer::Estimate => None,
    };
    match bpe {
        Some(bpe) => bpe.encode_ordinary(text).len(),
        None => estimate(text),
    }
}

/// ~4 characters per token, rounded up, which is close for English prose
/// and code with BPE tokenizers.
fn estimate(text: &str) -> usize {
    estimate_from_chars(text.chars().count())
}

/// The estimate for a text of `chars` characters, for callers that count
/// the characters of a text's parts without building it.
pub(crate) fn estimate_from_chars(chars: usize) -> usize {
    chars.div_ceil(4)
}

/// The longest token of the tokenizer's vocabulary, in bytes, when it is a
/// real one: a text of N bytes is at least N / this many tokens, so a
/// corpus that cannot fit is known without counting it. (128 for both
/// encodings; a test checks it against the tables.)
pub(crate) fn max_token_bytes(tokenizer: Tokenizer) -> Option<usize> {
    match tokenizer {
        Tokenizer::OpenAi | Tokenizer::OpenAiCl100k => Some(128),
        Tokenizer::Estimate => None,
    }
}

// Loading a BPE table takes tens of milliseconds: once per process. The
// tables ship inside tiktoken-rs, so failure would be a packaging bug; the
// estimate is used rather than panicking.
fn o200k() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

fn cl100k() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().ok()).as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_token_is_longer_than_max_token_bytes() {
        for (tokenizer, bpe) in [
            (Tokenizer::OpenAi, o200k()),
            (Tokenizer::OpenAiCl100k, cl100k()),
        ] {
            let bpe = bpe.expect("the table loads");
            let longest = (0..1_000_000u32)
                .filter_map(|rank| bpe.decode_bytes(&[rank]).ok())
                .map(|bytes| bytes.len())
                .max();
            assert_eq!(longest, max_token_bytes(tokenizer), "{tokenizer:?}");
        }
    }
}
