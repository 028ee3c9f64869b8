//! `models`: providers, endpoints, keys from the environment, prices, headers.

use super::*;

impl Checker {
    pub(super) fn models(&mut self, node: &Node) -> BTreeMap<String, ModelConfig> {
        let mut out = BTreeMap::new();
        let NodeKind::Map(entries) = &node.kind else {
            self.err(
                node.pos,
                format!(
                    "`models` must be a mapping of names to model settings, found {}",
                    node.type_name()
                ),
                None,
            );
            return out;
        };
        let mut seen: HashMap<String, Pos> = HashMap::new();
        for (k, v) in entries {
            let Some(name) = self.name(k, "model name") else {
                continue;
            };
            if let Some(first) = seen.get(&name) {
                self.err(
                    k.pos,
                    format!(
                        "duplicate model `{name}` (first defined on line {})",
                        first.line
                    ),
                    None,
                );
                continue;
            }
            seen.insert(name.clone(), k.pos);
            self.declared_models.insert(name.clone());
            if let Some(m) = self.model(v, &name) {
                out.insert(name, m);
            }
        }
        out
    }

    pub(super) fn model(&mut self, node: &Node, name: &str) -> Option<ModelConfig> {
        let what = format!("model `{name}`");
        let f = self.fields(node, &what, MODEL_KEYS)?;
        let provider = self.required(&f, "provider", &what).and_then(|n| {
            let s = self.string(n, "`provider`")?;
            match Provider::ALL.iter().find(|p| p.as_str() == s) {
                Some(p) => Some(*p),
                None => {
                    let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
                    let help = did_you_mean(&s, names.iter().copied())
                        .unwrap_or_else(|| format!("expected one of: {}", names.join(", ")));
                    self.err_help(n.pos, format!("unknown provider `{s}`"), Some(help));
                    None
                }
            }
        });
        let model = f
            .get("model")
            .and_then(|n| self.nonempty_string(n, "`model`"));
        let base_url = f.get("base_url").and_then(|n| self.url(n, "`base_url`"));
        let api_key_env = f
            .get("api_key_env")
            .and_then(|n| self.env_name(n, "`api_key_env`"));
        let temperature = f
            .get("temperature")
            .and_then(|n| self.number(n, "`temperature`", 0.0, 2.0));
        let max_tokens = f
            .get("max_tokens")
            .and_then(|n| self.uint(n, "`max_tokens`", 1, 10_000_000))
            .map(|v| v as u32);
        let context_tokens = f
            .get("context_tokens")
            .and_then(|n| self.uint(n, "`context_tokens`", 256, 100_000_000))
            .map(|v| v as u32);
        let headers = f
            .get("headers")
            .map(|n| self.headers(n))
            .unwrap_or_default();
        let prices = f.get("prices").and_then(|n| {
            let pf = self.fields(n, "`prices`", &["input", "output"])?;
            let input = self
                .required(&pf, "input", "`prices`")
                .and_then(|v| self.number(v, "`prices.input`", 0.0, 1e6));
            let output = self
                .required(&pf, "output", "`prices`")
                .and_then(|v| self.number(v, "`prices.output`", 0.0, 1e6));
            Some(Prices {
                input: input?,
                output: output?,
            })
        });
        let command: Vec<String> = f
            .get("command")
            .map(|n| match &n.kind {
                NodeKind::Seq(_) => self
                    .string_list(n, "`command`")
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect(),
                _ => {
                    self.err(
                        n.pos,
                        "`command` must be a list (an argv such as [\"claude\", \"-p\"]), not a shell string",
                        None,
                    );
                    Vec::new()
                }
            })
            .unwrap_or_default();
        let timeout = f.get("timeout").and_then(|n| self.duration(n, "`timeout`"));
        let concurrency = f
            .get("concurrency")
            .and_then(|n| self.uint(n, "`concurrency`", 1, 1024))
            .map(|v| v as u32);

        let provider = provider?;
        let http_only = [
            "model",
            "base_url",
            "api_key_env",
            "temperature",
            "max_tokens",
            "headers",
            "prices",
        ];
        match provider {
            Provider::Openai | Provider::Anthropic => {
                if f.get("model").is_none() {
                    self.err(
                        f.node.pos,
                        format!(
                            "{what} ({}) needs `model`: the model id to request",
                            provider.as_str()
                        ),
                        None,
                    );
                }
                if let Some(pos) = f.key_pos("command") {
                    self.err(
                        pos,
                        format!(
                            "`command` applies to the command provider, not {}",
                            provider.as_str()
                        ),
                        None,
                    );
                }
            }
            Provider::Command => {
                if f.get("command").is_none() {
                    self.err(
                        f.node.pos,
                        format!("{what} (command) needs `command`: the agent CLI's argv"),
                        None,
                    );
                }
                for key in http_only {
                    if let Some(pos) = f.key_pos(key) {
                        self.err(
                            pos,
                            format!(
                                "`{key}` applies to the openai and anthropic providers, not command"
                            ),
                            None,
                        );
                    }
                }
            }
            Provider::Builtin => {
                for key in http_only.iter().chain(["command"].iter()) {
                    if let Some(pos) = f.key_pos(key) {
                        self.err(
                            pos,
                            format!("`{key}` does not apply to the builtin provider"),
                            None,
                        );
                    }
                }
            }
        }
        Some(ModelConfig {
            provider,
            model,
            base_url,
            api_key_env,
            temperature,
            max_tokens,
            context_tokens,
            headers,
            prices,
            command,
            timeout,
            concurrency,
        })
    }

    pub(super) fn headers(&mut self, node: &Node) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let NodeKind::Map(entries) = &node.kind else {
            self.err(
                node.pos,
                "`headers` must be a mapping of header names to values",
                None,
            );
            return out;
        };
        for (k, v) in entries {
            let (Some(name), Some(value)) = (
                self.nonempty_string(k, "a header name"),
                self.string(v, "a header value"),
            ) else {
                continue;
            };
            let lower = name.to_ascii_lowercase();
            if lower == "authorization" || lower == "x-api-key" {
                self.err(
                    k.pos,
                    format!(
                        "`{name}` must not be set in config: credentials come from `api_key_env`"
                    ),
                    None,
                );
                continue;
            }
            out.insert(name, value);
        }
        out
    }
}
