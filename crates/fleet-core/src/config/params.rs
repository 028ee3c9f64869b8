//! Genflow parameters at run start: checking the values a run is given
//! against the declarations and rendering them into the run's definition.
//!
//! The values are bound into the stored definition (rather than kept in
//! `RunState` and rendered whenever a step runs) so that what a run did is
//! one immutable, hashed document: the prompts, globs and paths it used are
//! the ones shown, and the definition hash that `run.created` records (and
//! the audit chain covers) covers the values too.

use super::fan_out::{ITEM_VAR, item_fields};
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
    #[error(
        "step `{step}`: `for_each: {glob}` matches {matched} files, more than its `max_items` ({max}); narrow the glob or raise `max_items`"
    )]
    TooManyItems {
        step: String,
        glob: String,
        matched: usize,
        max: u32,
    },
    #[error("step `{step}`: `for_each: {glob}` matches no file, so there is nothing to run")]
    NoItems { step: String, glob: String },
}

impl ParamError {
    /// The parameter the refusal is about, when it names one; a
    /// [`ParamError::Render`] names the field a value made unsafe instead.
    pub fn param(&self) -> Option<&str> {
        match self {
            ParamError::Undeclared { name, .. }
            | ParamError::Missing { name, .. }
            | ParamError::Pattern { name, .. } => Some(name),
            ParamError::Render { .. }
            | ParamError::TooManyItems { .. }
            | ParamError::NoItems { .. } => None,
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

/// Whether a command text uses `{{ params… }}` or `{{ item… }}`. Only that
/// marks a `sources` argv element or a publish command element as a
/// template: Go templates such as `{{.Id}}` are common in commands and stay
/// literal.
pub fn uses_run_values(text: &str) -> bool {
    text.match_indices("{{").any(|(i, _)| {
        let rest = &text[i + 2..];
        let rest = rest.strip_prefix('-').unwrap_or(rest).trim_start();
        ["params", ITEM_VAR].iter().any(|var| {
            rest.strip_prefix(var)
                .is_some_and(|r| !r.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        })
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
    /// without params comes back unchanged (so its hash is the same). A
    /// genflow that fans out needs [`Genflow::bind_run`].
    pub fn bind_params(&self, given: &BTreeMap<String, String>) -> Result<Genflow, ParamError> {
        self.bind_run(given, &BTreeMap::new())
    }

    /// [`Genflow::bind_params`], with every fan-out expanded into one
    /// instance per file of `items` (see [`Genflow::for_each_globs`]); each
    /// instance's texts are rendered with its `item` too.
    pub fn bind_run(
        &self,
        given: &BTreeMap<String, String>,
        items: &BTreeMap<String, Vec<String>>,
    ) -> Result<Genflow, ParamError> {
        let values = self.param_values(given)?;
        if values.is_empty() && !self.fans_out() {
            return Ok(self.clone());
        }
        let render = Renderer::new(&values);
        let mut g = self.clone();
        if self.fans_out() {
            g.steps = self.expand_fan_out(items, &render)?;
        }
        if let Some(r) = &g.release {
            let r = render.text(r, None, "`release`")?;
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
            let item = s.instance.as_ref().map(|i| i.key.clone());
            let item = item.as_deref();
            let field = |name: &str| format!("`{name}` of step `{step}`");
            let render = |text: &str, field: &str| render.text(text, item, field);
            if let Some(p) = &s.prompt {
                s.prompt = Some(render(p, &field("prompt"))?);
            }
            if let Some(q) = &s.question {
                s.question = Some(render(q, &field("question"))?);
            }
            if let Some(o) = &s.out {
                let o = render(o, &field("out"))?;
                check_out(&o).map_err(|message| ParamError::Render {
                    field: field("out"),
                    message,
                })?;
                s.out = Some(o);
            }
            for entry in &mut s.corpus {
                match entry {
                    CorpusEntry::Glob(glob) => *glob = render(glob, &field("corpus"))?,
                    CorpusEntry::Scoped(scoped) => {
                        scoped.glob = render(&scoped.glob, &field("corpus"))?;
                        let rev = render(&scoped.changed_since, &field("changed_since"))?;
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
                    for arg in argv.iter_mut().filter(|a| uses_run_values(a)) {
                        *arg = render(arg, &format!("`command` of source `{}`", source.name))?;
                    }
                }
                source.env = envs.clone();
                if let Some(key) = item {
                    source.env.insert(ITEM_ENV.to_owned(), key.to_owned());
                }
            }
            for destination in &mut s.destinations {
                let what = field(destination.kind());
                match destination {
                    PublishDestination::Path(path) => {
                        *path = render(path, &what)?;
                        if let Some(message) = publish_path_problem(path) {
                            return Err(ParamError::Render {
                                field: what,
                                message,
                            });
                        }
                    }
                    PublishDestination::Webhook(url) => *url = render(url, &what)?,
                    // Only elements that use params or item: Go-style
                    // `{{.Id}}` arguments of other tools pass through untouched.
                    PublishDestination::Command(argv) => {
                        for arg in argv.iter_mut().filter(|a| uses_run_values(a)) {
                            *arg = render(arg, &what)?;
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

/// The environment variable a fanned-out step's source commands read its
/// file from.
pub const ITEM_ENV: &str = "FLEET_ITEM_PATH";

/// Renders a genflow's templated texts with a run's params (and, for a
/// fanned-out step, its `item`).
pub(super) struct Renderer {
    env: Environment<'static>,
    params: Value,
}

impl Renderer {
    pub(super) fn new(values: &BTreeMap<String, String>) -> Renderer {
        Renderer {
            env: template_env(),
            params: Value::from(minijinja::value::Serde(values)),
        }
    }

    /// `text` rendered; `field` names it in the error.
    pub(super) fn text(
        &self,
        text: &str,
        item: Option<&str>,
        field: &str,
    ) -> Result<String, ParamError> {
        if !text.contains('{') {
            return Ok(text.to_owned());
        }
        let mut ctx = BTreeMap::from([("params", self.params.clone())]);
        if let Some(key) = item {
            ctx.insert(
                ITEM_VAR,
                Value::from(minijinja::value::Serde(item_fields(key))),
            );
        }
        self.env
            .render_str(text, Value::from(minijinja::value::Serde(&ctx)))
            .map_err(|e| ParamError::Render {
                field: field.to_owned(),
                message: e.to_string(),
            })
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

pub(super) fn check_glob(glob: &str) -> Result<(), String> {
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
