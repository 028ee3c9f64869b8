//! Genflow parameters at run start: checking the values a run is given
//! against the declarations and rendering them into the run's definition.
//!
//! The values are bound into the stored definition (rather than kept in
//! `RunState` and rendered whenever a step runs) so that what a run did is
//! one immutable, hashed document: the prompts, globs and paths it used are
//! the ones shown, and the definition hash that `run.created` records (and
//! the audit chain covers) covers the values too.

use super::model::{
    CorpusEntry, Genflow, Param, PublishDestination, SourceCommand, publish_path_problem,
};
use minijinja::{Environment, UndefinedBehavior, Value};
use regex::Regex;
use std::collections::{BTreeMap, HashMap};

/// Why a run cannot start with the values it was given: a usage error that
/// names the parameter (or the field a value made unsafe).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("genflow `{genflow}` has no parameter `{name}` ({declared})")]
    Undeclared {
        genflow: String,
        name: String,
        declared: String,
    },
    #[error(
        "parameter `{name}` of genflow `{genflow}` has no default; give it a value (`--param {name}=VALUE`)"
    )]
    Missing { genflow: String, name: String },
    #[error("parameter `{name}`: `{value}` does not match its pattern `{pattern}`")]
    Pattern {
        name: String,
        value: String,
        pattern: String,
    },
    #[error("{field}: {message}")]
    Render { field: String, message: String },
}

impl ParamError {
    /// The parameter the refusal is about, when it names one; a
    /// [`ParamError::Render`] names the field a value made unsafe instead.
    pub fn param(&self) -> Option<&str> {
        match self {
            ParamError::Undeclared { name, .. }
            | ParamError::Missing { name, .. }
            | ParamError::Pattern { name, .. } => Some(name),
            ParamError::Render { .. } => None,
        }
    }
}

/// The regex a `pattern` stands for: it must match the whole value.
pub fn whole_value_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!(r"\A(?:{pattern})\z"))
}

/// The environment variable a source command reads param `name` from.
pub fn env_name(name: &str) -> String {
    format!("FLEET_PARAM_{}", name.to_ascii_uppercase())
}

/// Whether a command text uses `{{ params… }}`. Only that marks a `sources`
/// argv element as a template: Go templates such as `{{.Id}}` are common in
/// commands and stay literal.
pub fn uses_params(text: &str) -> bool {
    text.match_indices("{{").any(|(i, _)| {
        let rest = &text[i + 2..];
        let rest = rest.strip_prefix('-').unwrap_or(rest).trim_start();
        rest.strip_prefix("params")
            .is_some_and(|r| !r.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
    })
}

/// The environment every templated genflow text is rendered in: strict, so a
/// name that is not a param fails instead of rendering empty, and keeping a
/// trailing newline so a text without template syntax renders to itself.
pub fn template_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Only the whitespace setting differs from the default syntax, which
    // always builds.
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env
}

impl Genflow {
    /// The values a run of this genflow gets: `given` (each must be
    /// declared), else each param's default; every value must match its
    /// pattern. Checked in name order so the error is the same every time.
    pub fn param_values(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ParamError> {
        for name in given.keys() {
            if !self.params.iter().any(|p| &p.name == name) {
                let declared = if self.params.is_empty() {
                    "it declares none".to_owned()
                } else {
                    let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                    format!("parameters: {}", names.join(", "))
                };
                return Err(ParamError::Undeclared {
                    genflow: self.name.clone(),
                    name: name.clone(),
                    declared,
                });
            }
        }
        let mut values = BTreeMap::new();
        let mut params: Vec<&Param> = self.params.iter().collect();
        params.sort_by(|a, b| a.name.cmp(&b.name));
        for p in params {
            let value = match given.get(&p.name).or(p.default.as_ref()) {
                Some(v) => v.clone(),
                None => {
                    return Err(ParamError::Missing {
                        genflow: self.name.clone(),
                        name: p.name.clone(),
                    });
                }
            };
            if let Some(pattern) = &p.pattern {
                // A pattern that does not compile was refused with the config.
                let fits = whole_value_regex(pattern).is_ok_and(|re| re.is_match(&value));
                if !fits {
                    return Err(ParamError::Pattern {
                        name: p.name.clone(),
                        value,
                        pattern: pattern.clone(),
                    });
                }
            }
            values.insert(p.name.clone(), value);
        }
        Ok(values)
    }

    /// This genflow as a run started with `given` stores it: the values
    /// recorded in `param_values`, every templated text rendered with them,
    /// and `FLEET_PARAM_<NAME>` set for every source command. A genflow
    /// without params comes back unchanged (so its hash is the same).
    pub fn bind_params(&self, given: &BTreeMap<String, String>) -> Result<Genflow, ParamError> {
        let values = self.param_values(given)?;
        if values.is_empty() {
            return Ok(self.clone());
        }
        let env = template_env();
        let ctx = Value::from(minijinja::value::Serde(BTreeMap::from([(
            "params", &values,
        )])));
        let render = |text: &str, field: String| -> Result<String, ParamError> {
            env.render_str(text, ctx.clone())
                .map_err(|e| ParamError::Render {
                    field,
                    message: e.to_string(),
                })
        };
        let mut g = self.clone();
        if let Some(r) = &g.release {
            let r = render(r, "`release`".into())?;
            check_release(&r)?;
            g.release = Some(r);
        }
        let envs: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (env_name(k), v.clone()))
            .collect();
        let mut outs: HashMap<String, String> = HashMap::new();
        for s in &mut g.steps {
            let step = s.name.clone();
            let field = |name: &str| format!("`{name}` of step `{step}`");
            if let Some(p) = &s.prompt {
                s.prompt = Some(render(p, field("prompt"))?);
            }
            if let Some(q) = &s.question {
                s.question = Some(render(q, field("question"))?);
            }
            if let Some(o) = &s.out {
                let o = render(o, field("out"))?;
                check_out(&o).map_err(|message| ParamError::Render {
                    field: field("out"),
                    message,
                })?;
                s.out = Some(o);
            }
            for entry in &mut s.corpus {
                match entry {
                    CorpusEntry::Glob(glob) => *glob = render(glob, field("corpus"))?,
                    CorpusEntry::Scoped(scoped) => {
                        scoped.glob = render(&scoped.glob, field("corpus"))?;
                        let rev = render(&scoped.changed_since, field("changed_since"))?;
                        check_revision(&rev).map_err(|message| ParamError::Render {
                            field: field("changed_since"),
                            message,
                        })?;
                        scoped.changed_since = rev;
                    }
                }
                check_glob(entry.glob()).map_err(|message| ParamError::Render {
                    field: field("corpus"),
                    message,
                })?;
            }
            for source in &mut s.sources {
                if let SourceCommand::Argv(argv) = &mut source.command {
                    for arg in argv.iter_mut().filter(|a| uses_params(a)) {
                        *arg = render(arg, format!("`command` of source `{}`", source.name))?;
                    }
                }
                source.env = envs.clone();
            }
            for destination in &mut s.destinations {
                let what = field(destination.kind());
                match destination {
                    PublishDestination::Path(path) => {
                        *path = render(path, what.clone())?;
                        if let Some(message) = publish_path_problem(path) {
                            return Err(ParamError::Render {
                                field: what,
                                message,
                            });
                        }
                    }
                    PublishDestination::Webhook(url) => *url = render(url, what)?,
                    // Only elements that use params: Go-style `{{.Id}}`
                    // arguments of other tools pass through untouched.
                    PublishDestination::Command(argv) => {
                        for arg in argv.iter_mut().filter(|a| uses_params(a)) {
                            *arg = render(arg, what.clone())?;
                        }
                    }
                }
            }
            let out = normalize(&s.out_path());
            if let Some(first) = outs.insert(out, s.name.clone()) {
                return Err(ParamError::Render {
                    field: field("out"),
                    message: format!(
                        "`{}` collides with the output of step `{first}`",
                        s.out_path()
                    ),
                });
            }
        }
        g.param_values = values;
        Ok(g)
    }
}

// A value can be anything its pattern allows, so what the config checker
// holds a written path or revision to is checked again once rendered.

fn is_absolute(s: &str) -> bool {
    s.starts_with('/') || s.starts_with('\\') || s.get(1..2) == Some(":")
}

fn has_parent(s: &str) -> bool {
    s.split(['/', '\\']).any(|c| c == "..")
}

fn normalize(s: &str) -> String {
    s.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn check_out(out: &str) -> Result<(), String> {
    if is_absolute(out) || has_parent(out) {
        return Err(format!("`{out}` would leave the run directory"));
    }
    if out.ends_with('/') || normalize(out).is_empty() {
        return Err(format!("`{out}` does not name a file"));
    }
    Ok(())
}

fn check_glob(glob: &str) -> Result<(), String> {
    if glob.trim().is_empty() {
        return Err("the glob is empty".into());
    }
    if is_absolute(glob) || has_parent(glob) {
        return Err(format!("`{glob}` would leave the workspace"));
    }
    Ok(())
}

fn check_revision(rev: &str) -> Result<(), String> {
    if rev.is_empty() || rev.starts_with('-') || rev.contains("..") {
        return Err(format!("`{rev}` is not one git revision"));
    }
    if rev.chars().any(char::is_whitespace) {
        return Err(format!("`{rev}` contains spaces"));
    }
    Ok(())
}

fn check_release(release: &str) -> Result<(), ParamError> {
    if release.trim().is_empty()
        || release.chars().any(char::is_control)
        || release.chars().count() > 128
    {
        return Err(ParamError::Render {
            field: "`release`".into(),
            message: format!("`{release}` is not one line of 1 to 128 characters"),
        });
    }
    Ok(())
}
