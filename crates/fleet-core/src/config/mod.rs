//! The genflow config language: `.fleet/config.yaml`.
//!
//! Text goes through [`node::parse`] (serde-saphyr, keeping every node's line
//! and column) and then [`validate::check`], which builds the typed
//! [`Config`] and collects every problem at once as a [`Diagnostic`].

pub mod diag;
pub mod fan_out;
pub mod locate;
pub mod model;
pub mod node;
pub mod params;
mod syntax;
mod validate;

pub use diag::{Diagnostic, Severity, render_all};
pub use model::*;
pub use node::Pos;
pub use params::ParamError;
pub use validate::Checked;

/// Parses and validates config text. `config` is `Some` only when there are
/// no errors; `diagnostics` holds errors and warnings in source order.
pub fn check_str(text: &str) -> Checked {
    match node::parse(text) {
        Ok(root) => {
            // Publish webhooks are signed with notify's secret: a check that
            // spans both sections, so it runs on the tree once the rest is done.
            validate::check(root.as_ref()).require_webhook_secret(root.as_ref())
        }
        Err(e) => Checked {
            config: None,
            diagnostics: vec![Diagnostic {
                help: e.help,
                ..Diagnostic::error(e.pos, e.message)
            }],
        },
    }
}

/// The JSON Schema of the config, for editors (`# yaml-language-server: $schema=...`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("schema serializes")
}
