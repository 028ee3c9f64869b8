//! Label triggers: a genflow's `trigger` and the `server.github` /
//! `server.gitlab` hook settings its labels need.

use super::*;

/// The provider keys of `trigger`, with the `server` setting each needs.
const PROVIDERS: [(&str, &str); 2] = [
    (
        "github",
        "server: {github: {secret_env: GITHUB_WEBHOOK_SECRET}}",
    ),
    (
        "gitlab",
        "server: {gitlab: {token_env: GITLAB_WEBHOOK_TOKEN}}",
    ),
];

impl Checker {
    /// `server.github` and `server.gitlab`: each names the environment
    /// variable its secret is read from when `fleet serve` starts.
    pub(super) fn hook_settings(
        &mut self,
        f: &Fields<'_>,
    ) -> (Option<GithubHook>, Option<GitlabHook>) {
        self.hooks = (f.get("github").is_some(), f.get("gitlab").is_some());
        let mut env = |key: &str, field: &str| {
            let what = format!("`server.{key}`");
            let node = f.get(key)?;
            let hf = self.fields(node, &what, &[field])?;
            let value = self.required(&hf, field, &what)?;
            self.env_name(value, &format!("`server.{key}.{field}`"))
        };
        let github = env("github", "secret_env").map(|secret_env| GithubHook { secret_env });
        let gitlab = env("gitlab", "token_env").map(|token_env| GitlabHook { token_env });
        (github, gitlab)
    }

    /// A genflow's `trigger: {github: {label}, gitlab: {label}}`. A run it
    /// starts gets only the ticket's values, so every other param needs a
    /// default (as for `schedule`), and a provider without its hook secret
    /// under `server` could never fire.
    pub(super) fn trigger(&mut self, node: &Node, params: &[Param]) -> Option<Trigger> {
        let f = self.fields(node, "`trigger`", &["github", "gitlab"])?;
        let mut labels = [None, None];
        for (i, (provider, setting)) in PROVIDERS.iter().enumerate() {
            let Some(n) = f.get(provider) else { continue };
            let what = format!("`trigger.{provider}`");
            let Some(pf) = self.fields(n, &what, &["label"]) else {
                continue;
            };
            let configured = if i == 0 { self.hooks.0 } else { self.hooks.1 };
            if !configured {
                self.err_help(
                    f.key_pos(provider).unwrap_or(n.pos),
                    format!(
                        "{what} needs `server.{provider}`: the hook endpoint checks each delivery with the secret it names"
                    ),
                    Some(format!("add `{setting}`")),
                );
            }
            labels[i] = self
                .required(&pf, "label", &what)
                .and_then(|l| self.nonempty_string(l, &format!("`trigger.{provider}.label`")))
                .map(|label| LabelTrigger { label });
        }
        if f.get("github").is_none() && f.get("gitlab").is_none() {
            self.err(
                node.pos,
                "`trigger` needs `github`, `gitlab` or both",
                Some("e.g. `trigger: {github: {label: fleet-review}}`"),
            );
            return None;
        }
        for p in params {
            if p.default.is_none() && !TICKET_PARAMS.contains(&p.name.as_str()) {
                self.err(
                    node.pos,
                    format!(
                        "runs started by a label need a value for parameter `{}`, which has no default",
                        p.name
                    ),
                    Some("give the parameter a `default`: a webhook supplies only the `ticket_*` parameters"),
                );
            }
        }
        if !params
            .iter()
            .any(|p| TICKET_PARAMS.contains(&p.name.as_str()))
        {
            let mut d = Diagnostic::warning(
                node.pos,
                "the genflow declares none of the ticket parameters, so its steps cannot read the ticket that started a run",
            );
            d.help = Some(format!(
                "declare the ones it needs under `params:`: {}",
                TICKET_PARAMS.join(", ")
            ));
            self.diags.push(d);
        }
        let [github, gitlab] = labels;
        Some(Trigger { github, gitlab })
    }
}
