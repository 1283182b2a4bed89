//! The OpenAI wire format: request bodies in, response bodies and stream chunks out.
//!
//! Requests are parsed leniently (unknown fields such as `temperature` are ignored, any `model` is
//! accepted) because the fake serves whatever the router sends it; the responses have the fields clients
//! and the proxy read: `id`, `object`, `created`, `model`, `choices`, `usage`.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::Token;

/// Body of `POST /v1/completions`.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    /// Ignored: the server answers as the model it serves.
    #[serde(default)]
    pub model: Option<String>,
    /// The prompt.
    pub prompt: Prompt,
    /// Tokens to generate; the server's default when absent.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Stream server-sent events instead of one JSON body.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

/// A completion prompt in any of the shapes the OpenAI API accepts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One text prompt.
    Text(String),
    /// A batch of text prompts (answered as one choice here).
    Texts(Vec<String>),
    /// Token ids.
    TokenIds(Vec<u32>),
    /// A batch of token-id prompts.
    TokenIdBatches(Vec<Vec<u32>>),
}

/// Body of `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// Ignored: the server answers as the model it serves.
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Tokens to generate; the server's default when absent.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The newer name of `max_tokens`; `max_tokens` wins if both are given.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Stream server-sent events instead of one JSON body.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

/// One chat message; `content` is a string or an array of parts such as `{"type":"text","text":…}`.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, …
    pub role: String,
    /// The message content.
    #[serde(default)]
    pub content: Option<Value>,
}

/// `stream_options` of a streaming request.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` and no choices before `[DONE]`.
    #[serde(default)]
    pub include_usage: bool,
}

/// Which endpoint a request came in on; it decides the response shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/completions`: choices carry `text`.
    Completions,
    /// `/v1/chat/completions`: choices carry `message` (or `delta` when streaming).
    Chat,
}

/// What the server needs from a request, whichever endpoint it came in on.
#[derive(Debug, PartialEq, Eq)]
pub struct Job {
    /// The endpoint, for the response shape.
    pub endpoint: Endpoint,
    /// Prompt length in (whitespace-separated) words.
    pub prompt_tokens: u32,
    /// Requested completion length, if any.
    pub max_tokens: Option<u32>,
    /// Whether to stream.
    pub stream: bool,
    /// Whether a streamed answer ends with a usage chunk.
    pub include_usage: bool,
}

impl From<CompletionRequest> for Job {
    fn from(r: CompletionRequest) -> Self {
        let prompt_tokens = match &r.prompt {
            Prompt::Text(t) => words(t),
            Prompt::Texts(ts) => ts.iter().map(|t| words(t)).sum(),
            Prompt::TokenIds(ids) => ids.len(),
            Prompt::TokenIdBatches(batches) => batches.iter().map(Vec::len).sum(),
        };
        Self {
            endpoint: Endpoint::Completions,
            prompt_tokens: saturate(prompt_tokens),
            max_tokens: r.max_tokens,
            stream: r.stream,
            include_usage: r.stream_options.unwrap_or_default().include_usage,
        }
    }
}

impl From<ChatRequest> for Job {
    fn from(r: ChatRequest) -> Self {
        let prompt_tokens = r
            .messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(content_words)
            .sum();
        Self {
            endpoint: Endpoint::Chat,
            prompt_tokens: saturate(prompt_tokens),
            max_tokens: r.max_tokens.or(r.max_completion_tokens),
            stream: r.stream,
            include_usage: r.stream_options.unwrap_or_default().include_usage,
        }
    }
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn content_words(content: &Value) -> usize {
    match content {
        Value::String(s) => words(s),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text")?.as_str())
            .map(words)
            .sum(),
        _ => 0,
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Token counts reported in `usage`.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// Prompt words.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
}

impl Usage {
    fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": u64::from(self.prompt_tokens) + u64::from(self.completion_tokens),
        })
    }
}

/// Builds the bodies of one response; all of them share the id, creation time and model.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The endpoint answered.
    pub endpoint: Endpoint,
    /// `cmpl-…` or `chatcmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The served model.
    pub model: String,
}

impl Reply {
    /// The non-streaming body, with every generated token in one choice.
    pub fn full(&self, text: &str, usage: Usage) -> Value {
        let choice = match self.endpoint {
            Endpoint::Completions => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": "length"})
            }
            Endpoint::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": "length",
            }),
        };
        let object = match self.endpoint {
            Endpoint::Completions => "text_completion",
            Endpoint::Chat => "chat.completion",
        };
        self.envelope(object, json!([choice]), Some(usage))
    }

    /// One stream chunk carrying one token; the last token's chunk has `finish_reason: "length"`.
    pub fn chunk(&self, token: &Token) -> Value {
        let finish_reason = if token.last {
            json!("length")
        } else {
            Value::Null
        };
        match self.endpoint {
            Endpoint::Completions => {
                let choice = json!({"index": 0, "text": token.text, "logprobs": null, "finish_reason": finish_reason});
                self.envelope("text_completion", json!([choice]), None)
            }
            Endpoint::Chat => {
                // The role comes once, with the first token, as OpenAI's first delta carries it.
                let delta = if token.index == 0 {
                    json!({"role": "assistant", "content": token.text})
                } else {
                    json!({"content": token.text})
                };
                let choice = json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason});
                self.envelope("chat.completion.chunk", json!([choice]), None)
            }
        }
    }

    /// The final usage-only chunk sent when `stream_options.include_usage` is set.
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        let object = match self.endpoint {
            Endpoint::Completions => "text_completion",
            Endpoint::Chat => "chat.completion.chunk",
        };
        self.envelope(object, json!([]), Some(usage))
    }

    fn envelope(&self, object: &str, choices: Value, usage: Option<Usage>) -> Value {
        let mut body = json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            body["usage"] = usage.to_json();
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<T: for<'a> Deserialize<'a> + Into<Job>>(body: &str) -> Job {
        serde_json::from_str::<T>(body).unwrap().into()
    }

    #[test]
    fn counts_prompt_words_in_every_prompt_shape() {
        assert_eq!(
            job::<CompletionRequest>(r#"{"prompt":"a b  c"}"#).prompt_tokens,
            3
        );
        assert_eq!(
            job::<CompletionRequest>(r#"{"prompt":["a b","c"]}"#).prompt_tokens,
            3
        );
        assert_eq!(
            job::<CompletionRequest>(r#"{"prompt":[1,2,3,4]}"#).prompt_tokens,
            4
        );
        assert_eq!(
            job::<CompletionRequest>(r#"{"prompt":[[1],[2,3]]}"#).prompt_tokens,
            3
        );
        let chat = job::<ChatRequest>(
            r#"{"messages":[{"role":"system","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"hi there you"}]}],
                "max_completion_tokens":5,"stream":true,"stream_options":{"include_usage":true}}"#,
        );
        let expected = Job {
            endpoint: Endpoint::Chat,
            prompt_tokens: 5,
            max_tokens: Some(5),
            stream: true,
            include_usage: true,
        };
        assert_eq!(chat, expected);
    }

    #[test]
    fn chat_chunks_carry_the_role_once_and_finish_on_the_last_token() {
        let reply = Reply {
            endpoint: Endpoint::Chat,
            id: "chatcmpl-1".into(),
            created: 7,
            model: "m".into(),
        };
        let first = reply.chunk(&Token {
            index: 0,
            text: "tok0".into(),
            last: false,
        });
        assert_eq!(
            first["choices"][0]["delta"],
            json!({"role": "assistant", "content": "tok0"})
        );
        assert_eq!(first["choices"][0]["finish_reason"], Value::Null);
        let last = reply.chunk(&Token {
            index: 1,
            text: " tok1".into(),
            last: true,
        });
        assert_eq!(last["choices"][0]["delta"], json!({"content": " tok1"}));
        assert_eq!(last["choices"][0]["finish_reason"], "length");
        assert_eq!(last["object"], "chat.completion.chunk");
        let usage = reply.usage_chunk(Usage {
            prompt_tokens: 2,
            completion_tokens: 3,
        });
        assert_eq!(usage["usage"]["total_tokens"], 5);
        assert_eq!(usage["choices"], json!([]));
    }
}
