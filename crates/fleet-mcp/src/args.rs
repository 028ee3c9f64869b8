//! The arguments each tool takes. Unknown fields are refused, so an
//! argument a tool does not have (a `verdict`, say) is an error, never
//! silently ignored.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRunArgs {
    /// The genflow to run, e.g. `release-gate`.
    pub genflow: String,
    /// Values for the genflow's parameters (the others get their defaults).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRunsArgs {
    /// Only runs of this genflow.
    #[serde(default)]
    pub genflow: Option<String>,
    /// Only runs in this status.
    #[serde(default)]
    pub status: Option<String>,
    /// At most this many (default 20, at most 200).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunArgs {
    /// The run id, or a unique prefix of it.
    pub run: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadDocumentArgs {
    /// The run id, or a unique prefix of it.
    pub run: String,
    /// The document's path in the run, e.g. `readiness.md` (see `show_run`).
    pub path: String,
    /// A revision number (1, 2, ...); the latest when absent.
    #[serde(default)]
    pub revision: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFlagsArgs {
    /// The run id, or a unique prefix of it.
    pub run: String,
    /// Only this review step's flags.
    #[serde(default)]
    pub step: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateArgs {
    /// The run id, or a unique prefix of it.
    pub run: String,
    /// One approval gate; every gate of the run when absent.
    #[serde(default)]
    pub gate: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendLinkArgs {
    /// The run id, or a unique prefix of it.
    pub run: String,
    /// The waiting approval gate.
    pub gate: String,
    /// The approver (an email address the gate lists) who gets the link.
    pub approver: String,
}

/// For tools that take nothing: anything given is refused.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}
