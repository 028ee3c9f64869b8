//! The two HTTP APIs' request and response bodies: OpenAI Chat Completions
//! (what every OpenAI-compatible server speaks) and Anthropic Messages.

use super::Answer;
use serde::Deserialize;
use serde_json::{Value, json};

/// Which JSON API an HTTP model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    OpenAi,
    Anthropic,
}

/// What the request needs besides the prompt.
pub(crate) struct Params<'a> {
    pub model: &'a str,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
}

/// `POST {base}/chat/completions` with a system and a user message.
pub(crate) fn openai_body(p: &Params<'_>, system: &str, user: &str) -> Value {
    let mut body = json!({
        "model": p.model,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ],
    });
    if let Some(t) = p.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(n) = p.max_tokens {
        body["max_tokens"] = json!(n);
    }
    body
}

/// `POST {base}/v1/messages`: the system prompt is a top-level field and
/// `max_tokens` is required by the API.
pub(crate) fn anthropic_body(p: &Params<'_>, system: &str, user: &str, max_tokens: u32) -> Value {
    let mut body = json!({
        "model": p.model,
        "max_tokens": max_tokens,
        "system": system,
        "messages": [
            {"role": "user", "content": user},
        ],
    });
    if let Some(t) = p.temperature {
        body["temperature"] = json!(t);
    }
    body
}

#[derive(Deserialize)]
struct OpenAiResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<OpenAiChoice>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OpenAiChoice {
    message: OpenAiMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct AnthropicResponse {
    #[serde(default)]
    model: Option<String>,
    content: Vec<AnthropicBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    // Prompt-caching reads and writes are billed input, not counted in `input_tokens`.
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

/// The document and usage out of a successful response body.
pub(crate) fn parse_answer(api: Api, body: &[u8]) -> Result<Answer, String> {
    match api {
        Api::OpenAi => {
            let r: OpenAiResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let Some(choice) = r.choices.into_iter().next() else {
                return Err("the response has no `choices`".into());
            };
            let text = match (choice.message.content, choice.message.refusal) {
                (Some(c), _) if !c.trim().is_empty() => c,
                (_, Some(refusal)) => return Err(format!("the model refused: {refusal}")),
                _ => String::new(),
            };
            let usage = r.usage.unwrap_or(OpenAiUsage {
                prompt_tokens: 0,
                completion_tokens: 0,
            });
            Ok(Answer {
                text,
                input_tokens: usage.prompt_tokens,
                output_tokens: usage.completion_tokens,
                model: r.model,
                cut_short: choice.finish_reason.as_deref() == Some("length"),
            })
        }
        Api::Anthropic => {
            let r: AnthropicResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let text: String = r
                .content
                .iter()
                .filter(|b| b.kind == "text")
                .filter_map(|b| b.text.as_deref())
                .collect::<Vec<_>>()
                .join("");
            let (input, output) = r.usage.map_or((0, 0), |u| {
                (
                    u.input_tokens
                        + u.cache_creation_input_tokens.unwrap_or(0)
                        + u.cache_read_input_tokens.unwrap_or(0),
                    u.output_tokens,
                )
            });
            Ok(Answer {
                text,
                input_tokens: input,
                output_tokens: output,
                model: r.model,
                cut_short: r.stop_reason.as_deref() == Some("max_tokens"),
            })
        }
    }
}

/// The human part of an error body: both APIs put it at `error.message`;
/// anything else is quoted as sent, cut to a readable length.
pub(crate) fn error_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let text = message.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    if text.is_empty() {
        return "(empty body)".into();
    }
    cut(&text, 600)
}

/// At most `max` characters, marked when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_response_with_usage() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
        let a = parse_answer(Api::OpenAi, body).expect("parses");
        assert_eq!(
            (a.text.as_str(), a.input_tokens, a.output_tokens),
            ("Hello", 12, 3)
        );
        assert_eq!(a.model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert!(!a.cut_short);
    }

    #[test]
    fn anthropic_response_joins_text_blocks_and_counts_cache_tokens() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
            "content":[{"type":"text","text":"Hi "},{"type":"tool_use","id":"t","name":"n","input":{}},{"type":"text","text":"there"}],
            "stop_reason":"max_tokens",
            "usage":{"input_tokens":10,"output_tokens":4,"cache_read_input_tokens":5}}"#;
        let a = parse_answer(Api::Anthropic, body).expect("parses");
        assert_eq!(a.text, "Hi there");
        assert_eq!((a.input_tokens, a.output_tokens), (15, 4));
        assert!(a.cut_short);
    }

    #[test]
    fn refusal_and_missing_choices_are_errors() {
        let refused = br#"{"choices":[{"message":{"content":null,"refusal":"no"}}]}"#;
        assert!(
            parse_answer(Api::OpenAi, refused)
                .err()
                .is_some_and(|e| e.contains("refused"))
        );
        assert!(parse_answer(Api::OpenAi, br#"{"choices":[]}"#).is_err());
        assert!(parse_answer(Api::Anthropic, b"not json").is_err());
    }

    #[test]
    fn error_messages_are_extracted_or_quoted() {
        assert_eq!(
            error_message(
                br#"{"error":{"message":"Incorrect API key","type":"invalid_request_error"}}"#
            ),
            "Incorrect API key"
        );
        assert_eq!(
            error_message(
                br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#
            ),
            "invalid x-api-key"
        );
        assert_eq!(error_message(b"  upstream down "), "upstream down");
        assert_eq!(error_message(b""), "(empty body)");
        assert_eq!(
            error_message("é".repeat(700).as_bytes()).chars().count(),
            601
        );
    }
}
