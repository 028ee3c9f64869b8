//! `notify`: channels' settings, message templates, SMTP.

use super::*;

impl Checker {
    pub(super) fn notify(&mut self, node: &Node) -> NotifyConfig {
        let Some(f) = self.fields(node, "`notify`", &["smtp", "webhook", "templates"]) else {
            return NotifyConfig::default();
        };
        let smtp = f.get("smtp").and_then(|n| self.smtp(n));
        let webhook = f.get("webhook").and_then(|n| {
            let wf = self.fields(n, "`notify.webhook`", &["secret_env", "timeout"])?;
            Some(WebhookConfig {
                secret_env: wf
                    .get("secret_env")
                    .and_then(|v| self.env_name(v, "`secret_env`")),
                timeout: wf
                    .get("timeout")
                    .and_then(|v| self.duration(v, "`timeout`")),
            })
        });
        let templates = f
            .get("templates")
            .map(|n| self.templates(n))
            .unwrap_or_default();
        NotifyConfig {
            smtp,
            webhook,
            templates,
        }
    }

    pub(super) fn templates(&mut self, node: &Node) -> NotifyTemplates {
        let Some(f) = self.fields(node, "`notify.templates`", &NotifyTemplates::NAMES) else {
            return NotifyTemplates::default();
        };
        let mut text = |name: &str| {
            let node = f.get(name)?;
            let text = self.nonempty_string(node, &format!("`{name}`"))?;
            self.template(node, name, &text);
            Some(text)
        };
        NotifyTemplates {
            approval_subject: text("approval_subject"),
            approval_text: text("approval_text"),
            approval_html: text("approval_html"),
            announce_subject: text("announce_subject"),
            announce_text: text("announce_text"),
            announce_html: text("announce_html"),
        }
    }

    /// Compiles notify template `name` and checks that it uses only the
    /// variables it is rendered with, so a typo fails here and not when a
    /// gate opens (rendering is strict about undefined variables).
    pub(super) fn template(&mut self, node: &Node, name: &str, text: &str) {
        let env = minijinja::Environment::new();
        let template = match env.template_from_str(text) {
            Ok(t) => t,
            Err(e) => {
                let at = e
                    .line()
                    .map(|l| format!(" (line {l} of the template)"))
                    .unwrap_or_default();
                self.err(
                    node.pos,
                    format!("`{name}` is not a valid template{at}: {}", e.kind()),
                    e.detail(),
                );
                return;
            }
        };
        let known = NotifyTemplates::variables(name);
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !known.contains(&v.as_str()) && !env.globals().any(|(g, _)| g == v))
            .collect();
        unknown.sort();
        for var in unknown {
            let help = did_you_mean(&var, known.iter().copied())
                .unwrap_or_else(|| format!("its variables are {}", known.join(", ")));
            self.err_help(
                node.pos,
                format!("`{name}` uses `{var}`, which is not one of its variables"),
                Some(help),
            );
        }
    }

    pub(super) fn smtp(&mut self, node: &Node) -> Option<SmtpConfig> {
        let f = self.fields(node, "`notify.smtp`", SMTP_KEYS)?;
        let host = self
            .required(&f, "host", "`notify.smtp`")
            .and_then(|n| self.nonempty_string(n, "`host`"));
        let port = f
            .get("port")
            .and_then(|n| self.uint(n, "`port`", 1, 65535))
            .map(|p| p as u16);
        let tls_node = self.required(&f, "tls", "`notify.smtp`");
        let tls = tls_node.and_then(|n| {
            let s = self.string(n, "`tls`")?;
            match s.as_str() {
                "none" => Some(SmtpTls::None),
                "starttls" => Some(SmtpTls::Starttls),
                "implicit" => Some(SmtpTls::Implicit),
                other => {
                    let help = did_you_mean(other, ["none", "starttls", "implicit"])
                        .unwrap_or_else(|| "expected `starttls`, `implicit` or `none`".into());
                    self.err_help(n.pos, format!("unknown tls mode `{other}`"), Some(help));
                    None
                }
            }
        });
        if let (Some(SmtpTls::None), Some(h), Some(n)) = (tls, &host, tls_node)
            && !is_loopback_host(h)
        {
            self.err(
                n.pos,
                format!("`tls: none` sends mail in clear text; it is only allowed for a loopback host, not `{h}`"),
                Some("use `starttls` or `implicit`"),
            );
        }
        let from = self.required(&f, "from", "`notify.smtp`").and_then(|n| {
            let s = self.nonempty_string(n, "`from`")?;
            if !is_email(&s) {
                self.err(n.pos, format!("`from: {s}` is not an email address"), None);
                return None;
            }
            Some(s)
        });
        let username_env = f
            .get("username_env")
            .and_then(|n| self.env_name(n, "`username_env`"));
        let password_env = f
            .get("password_env")
            .and_then(|n| self.env_name(n, "`password_env`"));
        Some(SmtpConfig {
            host: host?,
            port,
            tls: tls?,
            from: from?,
            username_env,
            password_env,
        })
    }
}
