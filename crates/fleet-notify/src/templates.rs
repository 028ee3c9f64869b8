//! Message templates (minijinja). The built-in ones can be replaced per
//! name under `notify.templates`; `*_html` templates autoescape every value.

use crate::NotifyError;
use fleet_core::config::NotifyTemplates;
use minijinja::{Environment, UndefinedBehavior, Value};

const APPROVAL_SUBJECT: &str = "{% if reminder %}Reminder: {% endif %}[{{ genflow }}] Decision needed: {{ question }} (run {{ run_short }})";

const APPROVAL_TEXT: &str = r#"{{ approver }},

{% if reminder %}This is reminder {{ reminder }}: gate "{{ gate }}" of genflow {{ genflow }} is still waiting for your decision.
{% else %}Gate "{{ gate }}" of genflow {{ genflow }} is waiting for your decision.
{% endif %}
Question: {{ question }}
Run: {{ run_id }}

Review summary: {{ high }} high, {{ medium }} medium, {{ low }} low severity flags.
{% for s in signals %}- {{ s }}
{% endfor %}
Documents:
{% for d in documents %}- {{ d.path }} (revision {{ d.revision }}, sha256 {{ d.sha256[:16] }})
{% endfor %}
{% if link %}Open the decision page (your personal link; do not forward it):
{{ link }}
{% else %}Decide from the command line in the workspace:
  Go:    fleet approve {{ run_id }} --step {{ gate }} --as {{ approver }}
  No-go: fleet reject {{ run_id }} --step {{ gate }} --as {{ approver }} --reason "..."
{% endif %}
Nothing is approved until you decide; this message never approves anything.
"#;

const APPROVAL_HTML: &str = r#"<!doctype html>
<html><body style="font-family: sans-serif">
<p>{{ approver }},</p>
<p>{% if reminder %}<strong>Reminder {{ reminder }}:</strong> gate <code>{{ gate }}</code> of genflow <strong>{{ genflow }}</strong> is still waiting for your decision.{% else %}Gate <code>{{ gate }}</code> of genflow <strong>{{ genflow }}</strong> is waiting for your decision.{% endif %}</p>
<p><strong>{{ question }}</strong><br>Run <code>{{ run_id }}</code></p>
<p>Review summary: <strong>{{ high }}</strong> high, <strong>{{ medium }}</strong> medium, {{ low }} low severity flags.</p>
{% if signals %}<ul>{% for s in signals %}<li>{{ s }}</li>{% endfor %}</ul>{% endif %}
<p>Documents:</p>
<ul>{% for d in documents %}<li><code>{{ d.path }}</code> revision {{ d.revision }}, sha256 <code>{{ d.sha256[:16] }}</code></li>{% endfor %}</ul>
{% if link %}<p><a href="{{ link }}">Open the decision page</a> (your personal link; do not forward it).</p>
{% else %}<p>Decide from the command line in the workspace:</p>
<pre>fleet approve {{ run_id }} --step {{ gate }} --as {{ approver }}
fleet reject {{ run_id }} --step {{ gate }} --as {{ approver }} --reason "..."</pre>
{% endif %}
<p style="color:#666">Nothing is approved until you decide; this message never approves anything.</p>
</body></html>
"#;

const ANNOUNCE_SUBJECT: &str =
    "[{{ genflow }}] {% if decisions %}GO{% else %}Done{% endif %}: run {{ run_short }}";

const ANNOUNCE_TEXT: &str = r#"Genflow {{ genflow }}, run {{ run_id }}{% if run_url %} ({{ run_url }}){% endif %}.
{% for d in decisions %}
GO at gate "{{ d.gate }}" by {{ d.approver }} via {{ d.channel }} at {{ d.decided_at }}.
Approved on these document revisions:
{% for a in d.documents %}- {{ a.path }} revision {{ a.revision }} sha256 {{ a.sha256 }}
{% endfor %}{% else %}
No approval gate precedes this announcement.
{% endfor %}{% if attestation %}
The decision is attested by a signed in-toto statement (DSSE){% if attestation_url %}: {{ attestation_url }}{% else %}, stored with the run{% endif %}.
{% endif %}{% if checkpoint %}
The audit log's latest signed checkpoint (keep it: `fleet audit verify --checkpoint FILE` checks the log still holds it):

{{ checkpoint }}{% endif %}"#;

const ANNOUNCE_HTML: &str = r#"<!doctype html>
<html><body style="font-family: sans-serif">
<p>Genflow <strong>{{ genflow }}</strong>, run {% if run_url %}<a href="{{ run_url }}"><code>{{ run_id }}</code></a>{% else %}<code>{{ run_id }}</code>{% endif %}.</p>
{% for d in decisions %}
<p><strong>GO</strong> at gate <code>{{ d.gate }}</code> by {{ d.approver }} via {{ d.channel }} at {{ d.decided_at }}.</p>
<table border="1" cellpadding="4" style="border-collapse: collapse">
<tr><th>document</th><th>revision</th><th>sha256</th></tr>
{% for a in d.documents %}<tr><td>{{ a.path }}</td><td>{{ a.revision }}</td><td><code>{{ a.sha256 }}</code></td></tr>
{% endfor %}</table>
{% else %}<p>No approval gate precedes this announcement.</p>{% endfor %}
{% if attestation %}<p>The decision is attested by a signed in-toto statement (DSSE){% if attestation_url %}: <a href="{{ attestation_url }}">signed attestation</a>{% else %}, stored with the run{% endif %}.</p>{% endif %}
{% if checkpoint %}<p>The audit log's latest signed checkpoint (keep it: <code>fleet audit verify --checkpoint FILE</code> checks the log still holds it):</p>
<pre>{{ checkpoint }}</pre>{% endif %}
</body></html>
"#;

/// Names double as minijinja template names; the `.html` suffix turns on
/// HTML autoescaping (minijinja's default rule).
const NAMES: [(&str, &str, &str); 6] = [
    ("approval_subject", "approval_subject.txt", APPROVAL_SUBJECT),
    ("approval_text", "approval_text.txt", APPROVAL_TEXT),
    ("approval_html", "approval_html.html", APPROVAL_HTML),
    ("announce_subject", "announce_subject.txt", ANNOUNCE_SUBJECT),
    ("announce_text", "announce_text.txt", ANNOUNCE_TEXT),
    ("announce_html", "announce_html.html", ANNOUNCE_HTML),
];

/// The compiled templates: built-in, with config overrides.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Compiles every template; a syntax error names the config key.
    pub fn new(overrides: &NotifyTemplates) -> Result<Templates, NotifyError> {
        let mut env = Environment::new();
        // A misspelt variable in a user template should fail loudly, not
        // send a message with a hole in it.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (key, file, builtin) in NAMES {
            let source = overrides.get(key).unwrap_or(builtin);
            env.add_template_owned(file, source.to_owned())
                .map_err(|e| NotifyError::Template {
                    name: key.to_owned(),
                    message: e.to_string(),
                })?;
        }
        Ok(Templates { env })
    }

    /// Renders template `key` (e.g. `approval_html`) with `ctx`.
    pub fn render(&self, key: &str, ctx: &serde_json::Value) -> Result<String, NotifyError> {
        let err = |message: String| NotifyError::Template {
            name: key.to_owned(),
            message,
        };
        let file = NAMES
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, f, _)| *f)
            .ok_or_else(|| err("no such template".into()))?;
        let template = self
            .env
            .get_template(file)
            .map_err(|e| err(e.to_string()))?;
        let out = template
            .render(Value::from(minijinja::value::Serde(ctx)))
            .map_err(|e| err(e.to_string()))?;
        // Subjects are one line whatever the template did.
        Ok(if key.ends_with("_subject") {
            out.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn approval_ctx(link: Option<&str>) -> serde_json::Value {
        json!({
            "approver": "owner@example.com", "gate": "go-no-go", "genflow": "release-gate",
            "question": "Ship <v2>?", "run_id": "0190-abc", "run_short": "0190-abc",
            "reminder": 0, "high": 2, "medium": 1, "low": 0,
            "signals": ["risk-review: <script>alert(1)</script>"],
            "documents": [{"path": "readiness.md", "revision": 1, "sha256": "ab".repeat(32)}],
            "link": link,
        })
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let t = Templates::new(&NotifyTemplates::default()).unwrap_or_else(|e| panic!("{e}"));
        let ctx = approval_ctx(Some(
            "https://fleet.example/runs/0190-abc/gates/go-no-go?t=v1.a.b",
        ));
        let html = t
            .render("approval_html", &ctx)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains("Ship &lt;v2&gt;?"));
        let text = t
            .render("approval_text", &ctx)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("Ship <v2>?"));
        assert!(text.contains("https://fleet.example/runs/0190-abc/gates/go-no-go?t=v1.a.b"));
        assert!(text.contains("2 high, 1 medium"));
        let subject = t
            .render("approval_subject", &ctx)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            subject,
            "[release-gate] Decision needed: Ship <v2>? (run 0190-abc)"
        );
    }

    #[test]
    fn without_a_link_the_email_explains_the_cli() {
        let t = Templates::new(&NotifyTemplates::default()).unwrap_or_else(|e| panic!("{e}"));
        let text = t
            .render("approval_text", &approval_ctx(None))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("fleet approve 0190-abc --step go-no-go --as owner@example.com"));
        assert!(!text.contains("http"));
    }

    #[test]
    fn overrides_replace_builtins_and_errors_name_the_key() {
        let overrides = NotifyTemplates {
            approval_subject: Some("Please decide {{ gate }}".into()),
            ..NotifyTemplates::default()
        };
        let t = Templates::new(&overrides).unwrap_or_else(|e| panic!("{e}"));
        let subject = t
            .render("approval_subject", &approval_ctx(None))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(subject, "Please decide go-no-go");

        let broken = NotifyTemplates {
            announce_text: Some("{% if %}".into()),
            ..NotifyTemplates::default()
        };
        let e = Templates::new(&broken).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("notify.templates.announce_text")),
            "{e:?}"
        );
        let typo = NotifyTemplates {
            announce_subject: Some("{{ genflwo }}".into()),
            ..NotifyTemplates::default()
        };
        let t = Templates::new(&typo).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            t.render("announce_subject", &json!({"genflow": "g"}))
                .is_err()
        );
    }

    /// `fleet validate` holds user templates to `NotifyTemplates::variables`;
    /// the built-in ones must keep to the same list, or the list is wrong.
    #[test]
    fn builtin_templates_use_only_the_declared_variables() {
        let env = Environment::new();
        for (key, _, builtin) in NAMES {
            let template = env
                .template_from_str(builtin)
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            let declared = NotifyTemplates::variables(key);
            for var in template.undeclared_variables(false) {
                assert!(
                    declared.contains(&var.as_str()) || env.globals().any(|(g, _)| g == var),
                    "{key} uses `{var}`, which NotifyTemplates::variables does not list"
                );
            }
        }
    }
}
