//! The typed, validated config. Values of these types only come out of
//! [`super::load_str`] (which checks everything) or out of a stored run
//! definition that was validated when it was stored.
//!
//! The serde derives serve two purposes: the canonical JSON of a [`Genflow`]
//! is what a run stores and hashes, and the JSON Schema (`fleet schema`) is
//! derived from these same types so editors autocomplete exactly what Fleet
//! accepts.

use crate::flags::FlagSeverity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// `.fleet/config.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Fleet config (.fleet/config.yaml)")]
pub struct Config {
    /// The workflows this project defines.
    pub genflows: Vec<Genflow>,
    /// Named model configurations; steps refer to them by name with `model:`.
    /// `builtin` (the offline analyst) needs no entry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelConfig>,
    /// Delivery settings for email and webhooks.
    #[serde(default, skip_serializing_if = "NotifyConfig::is_empty")]
    pub notify: NotifyConfig,
    /// Settings for `fleet serve`.
    #[serde(default, skip_serializing_if = "ServerConfig::is_empty")]
    pub server: ServerConfig,
    /// Default approvers for every approval gate that names none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
}

impl Config {
    pub fn genflow(&self, name: &str) -> Option<&Genflow> {
        self.genflows.iter().find(|g| g.name == name)
    }
}

/// A workflow: a small DAG of typed steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Genflow {
    /// Unique name, used on the command line and in URLs (letters, digits, `-`, `_`, `.`).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Values each run is started with (`fleet run FLOW --param NAME=VALUE`,
    /// the API, `schedule_params`); prompts, questions, corpus globs,
    /// `changed_since`, `out`, `release`, argv sources and notify templates
    /// use them as `{{ params.NAME }}`, source commands also as the
    /// environment variable `FLEET_PARAM_<NAME>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// The release this genflow gates, e.g. `4.2.0`; models are told it (the
    /// builtin reads that section of the release notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Cron expression (5 or 6 fields, or `@daily` style) for `fleet serve` to start runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The parameter values runs started by `schedule` get (defaults fill the rest).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub schedule_params: BTreeMap<String, String>,
    /// Start a run when a label is added to an issue or a pull/merge
    /// request (`fleet serve`'s `/hooks/github` and `/hooks/gitlab`); the
    /// run gets the ticket as the `ticket_*` params it declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Default approvers for this genflow's gates; falls back to the top-level list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Most tokens and/or money one run may spend on model calls; a step
    /// fails before a call that could go past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// What of a run's inputs is kept as evidence (`evidence: {keep_corpus: read}`).
    /// Serialized only when set, so definitions without it keep their hash.
    #[serde(default, skip_serializing_if = "Evidence::is_default")]
    pub evidence: Evidence,
    pub steps: Vec<Step>,
    /// Set only in a run's definition (never in config): the value of every
    /// param, the texts above already rendered with them. Kept in the
    /// definition so its hash, and so the audit chain, covers them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub param_values: BTreeMap<String, String>,
}

/// What starts runs of a genflow besides people and `schedule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// A label added to a GitHub issue or pull request (`issues` and
    /// `pull_request` events, action `labeled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<LabelTrigger>,
    /// A label added to a GitLab issue or merge request (Issue Hook and
    /// Merge Request Hook events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab: Option<LabelTrigger>,
}

/// A label whose addition starts a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelTrigger {
    /// The label's name, compared exactly (case included).
    pub label: String,
}

/// The params a label trigger fills from the ticket; a triggered genflow
/// gets those of them it declares.
pub const TICKET_PARAMS: [&str; 6] = [
    "ticket_number",
    "ticket_title",
    "ticket_body",
    "ticket_url",
    "ticket_author",
    "ticket_labels",
];

/// One declared genflow parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// An identifier (letters, digits, `_`; not starting with a digit).
    pub name: String,
    /// The value when a run gives none; without one, every run must give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A regular expression the whole value must match, e.g. `\d+\.\d+\.\d+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// A spending limit: for a genflow, per run; on a model request, what is left of it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Input plus output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// US dollars, priced with each model's `prices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// A genflow's `evidence` settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Which corpus files a report or review step keeps, content-addressed,
    /// with its record (the corpus manifest is always kept). Default `read`.
    #[serde(default, skip_serializing_if = "KeepCorpus::is_default")]
    pub keep_corpus: KeepCorpus,
}

impl Evidence {
    pub fn is_default(&self) -> bool {
        *self == Evidence::default()
    }
}

/// Which corpus files a model step keeps (`evidence.keep_corpus`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeepCorpus {
    /// Every document the step read (the text the model was given).
    #[default]
    Read,
    /// Only the files the step's document cites as `path:line` (or by path).
    Cited,
    /// None: only the manifest (size, lines, blake3 per file).
    None,
}

impl KeepCorpus {
    pub const ALL: [KeepCorpus; 3] = [KeepCorpus::Read, KeepCorpus::Cited, KeepCorpus::None];

    pub fn as_str(self) -> &'static str {
        match self {
            KeepCorpus::Read => "read",
            KeepCorpus::Cited => "cited",
            KeepCorpus::None => "none",
        }
    }

    pub fn is_default(&self) -> bool {
        *self == KeepCorpus::default()
    }
}

impl Genflow {
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// `deps[i]` = indices of the steps step `i` depends on (the shape
    /// `crate::dag` works with). Unknown names are left out; a validated
    /// genflow has none.
    pub fn dependency_indices(&self) -> Vec<Vec<usize>> {
        self.steps
            .iter()
            .map(|s| {
                s.depends_on
                    .iter()
                    .filter_map(|d| self.step_index(d))
                    .collect()
            })
            .collect()
    }

    /// Canonical JSON of the definition: what a run stores and what its hash is over.
    pub fn canonical_json(&self) -> String {
        // Struct fields serialize in declaration order and maps are BTreeMaps,
        // so the same definition always yields the same bytes.
        serde_json::to_string(self).expect("Genflow serializes to JSON")
    }

    /// `sha256:<hex>` of the canonical JSON.
    pub fn definition_hash(&self) -> String {
        let digest = Sha256::digest(self.canonical_json().as_bytes());
        format!("sha256:{}", hex::encode(digest))
    }
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Reads a corpus and drafts a document with a model.
    Report,
    /// An adversarial pass over upstream documents that writes findings and flags.
    Review,
    /// A human go/no-go gate; the run waits until a named approver decides.
    Approval,
    /// Sends the outcome by email, webhook or file.
    Notify,
    /// Writes an approved document to its destination.
    Publish,
}

impl StepKind {
    pub const ALL: [StepKind; 5] = [
        StepKind::Report,
        StepKind::Review,
        StepKind::Approval,
        StepKind::Notify,
        StepKind::Publish,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Report => "report",
            StepKind::Review => "review",
            StepKind::Approval => "approval",
            StepKind::Notify => "notify",
            StepKind::Publish => "publish",
        }
    }

    /// Steps that deliver something to the outside world; they must sit
    /// downstream of every approval gate.
    pub fn is_outbound(self) -> bool {
        matches!(self, StepKind::Notify | StepKind::Publish)
    }

    /// Steps that call a model.
    pub fn uses_model(self) -> bool {
        matches!(self, StepKind::Report | StepKind::Review)
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a genflow. Fields that do not belong to the step's `kind` are
/// rejected by validation, so consumers can rely on e.g. `prompt` being absent
/// on approvals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the genflow (letters, digits, `-`, `_`, `.`).
    pub name: String,
    pub kind: StepKind,
    /// report, review: the instruction for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// report, review: file globs relative to the workspace root (`*` stays within a directory, `**` crosses),
    /// each a string or `{glob, changed_since}` to read only files changed since a git revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corpus: Vec<CorpusEntry>,
    /// report, review: read hidden and git-ignored files too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_ignored: bool,
    /// report, review: commands whose standard output becomes a corpus document `source:NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Steps that must finish (or be approved) first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Output file, relative to `.fleet/runs/<run-id>/`. Defaults to `<name>.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
    /// report, review: a name from `models`, or `builtin` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// approval: the question put to the approvers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// approval: who may decide (emails); defaults to the genflow's, then the top-level list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// approval: how many distinct approvers must say Go.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub required: u32,
    /// approval: may the person who started the run approve it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_self_approval: bool,
    /// approval: send the approvers a reminder this often while the gate waits (never approves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_every: Option<Duration>,
    /// notify: email recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// notify: URL that receives a signed JSON POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// notify: extra channels: `email`, `webhook`, `file`, or `slack:<incoming-webhook-url>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// publish: the step whose document is published; defaults to the first
    /// step in `depends_on` that is not an approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// publish: where the approved document goes, each `{path}`, `{webhook}` or `{command}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<PublishDestination>,
    /// review: when the review raises flags at or above `severity` (default high), re-run a report step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_flag: Option<OnFlag>,
    /// How many times to retry a failed attempt.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// Maximum time for one attempt, e.g. `90s`, `10m`, `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// report, review: run one instance of this step (and of the steps
    /// built on it, up to the next approval) per file matching this glob,
    /// gathered with the corpus rules; each reads its file and can use
    /// `{{ item.path }}`, `{{ item.name }}`, `{{ item.stem }}`, `{{ item.dir }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// report, review with `for_each`: refuse to start a run whose glob
    /// matches more files than this (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
    /// Set only in a run's definition: this step is one instance of a
    /// fan-out (`for_each`), for one file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub instance: Option<Instance>,
}

/// One instance of a fanned-out step in a run's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// The step as written in the config, e.g. `draft`.
    pub of: String,
    /// The file this instance is for, relative to the workspace root.
    pub key: String,
}

impl Step {
    /// The output path relative to the run directory.
    pub fn out_path(&self) -> String {
        self.out
            .clone()
            .unwrap_or_else(|| format!("{}.md", self.name))
    }

    /// The globs of `corpus`, as written, in order (scoped or not).
    pub fn corpus_globs(&self) -> Vec<String> {
        self.corpus.iter().map(|e| e.glob().to_owned()).collect()
    }

    /// The model to use (`builtin` unless set).
    pub fn model_name(&self) -> &str {
        self.model.as_deref().unwrap_or(BUILTIN_MODEL)
    }
}

pub const BUILTIN_MODEL: &str = "builtin";

/// One place a publish step writes the approved document.
// Externally tagged: each destination is a one-key map, `{path: notes.md}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum PublishDestination {
    /// A file relative to the workspace root (inside it), replaced atomically.
    Path(String),
    /// A URL that receives a JSON POST signed like notify webhooks
    /// (`notify.webhook.secret_env`).
    Webhook(String),
    /// An argv (never a shell string) run in the workspace root with the
    /// document on standard input; a non-zero exit fails the destination.
    Command(Vec<String>),
}

impl PublishDestination {
    /// `path`, `webhook` or `command`.
    pub fn kind(&self) -> &'static str {
        match self {
            PublishDestination::Path(_) => "path",
            PublishDestination::Webhook(_) => "webhook",
            PublishDestination::Command(_) => "command",
        }
    }
}

/// Why `path` cannot be a publish destination (absolute, leaves the
/// workspace with `..`, names no file), or `None`. Checked on the config,
/// again on the rendered run definition and again before writing.
pub fn publish_path_problem(path: &str) -> Option<String> {
    if path.trim().is_empty() {
        return Some("a publish `path` must not be empty".into());
    }
    if path.starts_with('/') || path.starts_with('\\') || path.get(1..2) == Some(":") {
        return Some(format!(
            "publish path `{path}` is absolute; paths are relative to the workspace root"
        ));
    }
    if path.split(['/', '\\']).any(|c| c == "..") {
        return Some(format!(
            "publish path `{path}` contains `..` and could leave the workspace"
        ));
    }
    if path.ends_with('/') || path.split(['/', '\\']).all(|c| c.is_empty() || c == ".") {
        return Some(format!("publish path `{path}` must name a file"));
    }
    None
}

/// One `corpus` entry: a glob, or `{glob, changed_since}`.
// Untagged: a plain glob serializes as the bare string it always was, so
// definitions without `changed_since` keep their hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CorpusEntry {
    /// Every file the glob matches.
    Glob(String),
    /// Only the files the glob matches that changed in git since a revision.
    Scoped(ScopedGlob),
}

/// A glob limited to the files added or changed between a git revision and
/// `HEAD` (committed changes, counted from the revision's merge base with
/// `HEAD`); deleted files are not read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopedGlob {
    /// A file glob relative to the workspace root.
    pub glob: String,
    /// A git revision: a tag such as `v4.1.0`, a branch or a commit id.
    pub changed_since: String,
}

impl CorpusEntry {
    /// The glob, as written.
    pub fn glob(&self) -> &str {
        match self {
            CorpusEntry::Glob(g) => g,
            CorpusEntry::Scoped(s) => &s.glob,
        }
    }

    /// The revision the entry is limited to changes since, if any.
    pub fn changed_since(&self) -> Option<&str> {
        match self {
            CorpusEntry::Glob(_) => None,
            CorpusEntry::Scoped(s) => Some(&s.changed_since),
        }
    }
}

impl From<&str> for CorpusEntry {
    fn from(glob: &str) -> Self {
        CorpusEntry::Glob(glob.to_owned())
    }
}

impl From<String> for CorpusEntry {
    fn from(glob: String) -> Self {
        CorpusEntry::Glob(glob)
    }
}

/// A command whose output is snapshotted into the corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    pub command: SourceCommand,
    /// Set only in a run's definition: `FLEET_PARAM_<NAME>` for every param,
    /// so a shell command reads values from its environment and never has
    /// one spliced into its text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub env: BTreeMap<String, String>,
}

/// A command: a string runs with `sh -c` in the workspace root; a list is an
/// argv run directly, without a shell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SourceCommand {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnFlag {
    /// The report step to redraft with the flags as feedback.
    pub redraft: String,
    /// At most this many redrafts.
    #[serde(default = "one")]
    pub max: u32,
    /// The least severe flag that sends the report back: `high` (the
    /// default), `medium` (high or medium) or `low` (any flag).
    // Unset stays unset (not `high`), so definitions written before this
    // key keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<FlagSeverity>,
}

impl OnFlag {
    /// The severity bar, `high` unless set.
    pub fn bar(&self) -> FlagSeverity {
        self.severity.unwrap_or(FlagSeverity::High)
    }
}

/// A duration written as `<number><unit>` with unit `ms`, `s`, `m`, `h` or `d`
/// (a bare number means seconds). Stored as milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[schemars(with = "String")]
pub struct Duration(pub u64);

impl Duration {
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }

    pub fn parse(text: &str) -> Result<Duration, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{text}` is not a duration (use e.g. `90s`, `10m`, `2h`)"))?;
        let ms_per = match unit.trim() {
            "ms" => 1,
            "" | "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "unknown duration unit `{other}` in `{text}` (use ms, s, m, h or d)"
                ));
            }
        };
        let ms = n
            .checked_mul(ms_per)
            .ok_or_else(|| format!("duration `{text}` is too large"))?;
        if ms == 0 {
            return Err("a duration must be greater than zero".into());
        }
        Ok(Duration(ms))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        for (unit, per) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms.is_multiple_of(per) {
                return write!(f, "{}{unit}", ms / per);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Which API a named model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The offline rule-based analyst.
    Builtin,
    /// Any OpenAI-compatible Chat Completions server (OpenAI, Ollama, vLLM, llama.cpp, LM Studio, OpenRouter).
    Openai,
    /// The Anthropic Messages API.
    Anthropic,
    /// An agent CLI that reads the prompt on stdin and writes the document on stdout.
    Command,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::Builtin,
        Provider::Openai,
        Provider::Anthropic,
        Provider::Command,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Builtin => "builtin",
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Command => "command",
        }
    }
}

/// A named model configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: Provider,
    /// openai, anthropic: the model id sent to the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// openai, anthropic: API base URL (defaults to the provider's public API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// openai, anthropic: the NAME of the environment variable holding the API key (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The model's context window, used to pack the corpus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
    /// Extra HTTP headers sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Prices per million tokens, for cost accounting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<Prices>,
    /// command: the argv of the agent CLI, e.g. `["claude", "-p"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Maximum time for one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Maximum concurrent requests to this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Price per million input tokens.
    pub input: f64,
    /// Price per million output tokens.
    pub output: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    /// Replacements for the built-in message templates (minijinja; HTML is autoescaped).
    #[serde(default, skip_serializing_if = "NotifyTemplates::is_empty")]
    pub templates: NotifyTemplates,
}

impl NotifyConfig {
    fn is_empty(&self) -> bool {
        self.smtp.is_none() && self.webhook.is_none() && self.templates.is_empty()
    }
}

/// Message templates (minijinja). Each one left out uses the built-in text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NotifyTemplates {
    /// Subject of the email asking an approver to decide (and of reminders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_subject: Option<String>,
    /// Plain-text body of the approver email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_text: Option<String>,
    /// HTML body of the approver email (values are HTML-escaped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_html: Option<String>,
    /// Subject of a notify step's announcement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_subject: Option<String>,
    /// Plain-text announcement (email body, Slack text, webhook `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_text: Option<String>,
    /// HTML announcement email body (values are HTML-escaped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_html: Option<String>,
}

impl NotifyTemplates {
    pub const NAMES: [&'static str; 6] = [
        "approval_subject",
        "approval_text",
        "approval_html",
        "announce_subject",
        "announce_text",
        "announce_html",
    ];

    pub fn is_empty(&self) -> bool {
        Self::NAMES.iter().all(|n| self.get(n).is_none())
    }

    /// What template `name` may use: the variables Fleet renders it with
    /// (`fleet-notify` builds exactly these; its tests hold it to that).
    pub fn variables(name: &str) -> &'static [&'static str] {
        if name.starts_with("approval_") {
            &[
                "approver",
                "gate",
                "genflow",
                "question",
                "run_id",
                "run_short",
                "reminder",
                "high",
                "medium",
                "low",
                "signals",
                "documents",
                "link",
                "params",
            ]
        } else {
            &[
                "genflow",
                "run_id",
                "run_short",
                "step",
                "definition_hash",
                "run_url",
                "decisions",
                "params",
                "attestation",
                "attestation_url",
                "checkpoint",
            ]
        }
    }

    /// The override named `name` (one of [`NotifyTemplates::NAMES`]).
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            "approval_subject" => self.approval_subject.as_deref(),
            "approval_text" => self.approval_text.as_deref(),
            "approval_html" => self.approval_html.as_deref(),
            "announce_subject" => self.announce_subject.as_deref(),
            "announce_text" => self.announce_text.as_deref(),
            "announce_html" => self.announce_html.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text; only allowed for a loopback host (testing).
    None,
    Starttls,
    Implicit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Defaults to 587 for starttls, 465 for implicit, 25 for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub tls: SmtpTls,
    /// The From address.
    pub from: String,
    /// Name of the environment variable holding the SMTP user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_env: Option<String>,
    /// Name of the environment variable holding the SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name of the environment variable holding the HMAC-SHA256 signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Maximum time for one delivery attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The URL people reach `fleet serve` at; used to build links in emails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// `POST /hooks/github`: GitHub webhook deliveries, signed with a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubHook>,
    /// `POST /hooks/gitlab`: GitLab webhook deliveries, with a secret token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab: Option<GitlabHook>,
}

impl ServerConfig {
    fn is_empty(&self) -> bool {
        self.public_url.is_none()
            && self.bind.is_none()
            && self.github.is_none()
            && self.gitlab.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubHook {
    /// Name of the environment variable holding the webhook's secret (the
    /// key of `X-Hub-Signature-256`); never the secret itself.
    pub secret_env: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitlabHook {
    /// Name of the environment variable holding the webhook's secret token
    /// (sent as `X-Gitlab-Token`); never the token itself.
    pub token_env: String,
}

fn one() -> u32 {
    1
}
fn is_one(n: &u32) -> bool {
    *n == 1
}
fn is_zero(n: &u32) -> bool {
    *n == 0
}
fn is_false(b: &bool) -> bool {
    !*b
}

impl Config {
    /// The genflow as a run will store it: every approval step carries its
    /// effective approvers (its own, else the genflow's, else the top-level
    /// list), so the stored definition alone decides who may approve.
    pub fn resolved_genflow(&self, flow: &Genflow) -> Genflow {
        let mut g = flow.clone();
        let defaults = if g.approvers.is_empty() {
            &self.approvers
        } else {
            &g.approvers
        };
        let defaults = defaults.clone();
        for s in &mut g.steps {
            if s.kind == StepKind::Approval && s.approvers.is_empty() {
                s.approvers = defaults.clone();
            }
        }
        g
    }
}
