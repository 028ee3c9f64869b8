//! `fleet gate link RUN STEP --for EMAIL`: a fresh signed decision link (for
//! an approver whose link expired, or who never got one).

use crate::context::App;
use crate::workspace::UsageError;
use anyhow::{Result, bail};
use fleet_core::config::{Duration as ConfigDuration, StepKind};

pub async fn link(app: &App, run: &str, step: &str, approver: &str, ttl: &str) -> Result<()> {
    let ttl = match ConfigDuration::parse(ttl) {
        Ok(d) => d.as_std(),
        Err(e) => bail!(UsageError(format!("--ttl: {e}"))),
    };
    let record = app.engine.run(run).await?;
    let Some(def) = record.definition.step(step) else {
        bail!(UsageError(format!(
            "run {} has no step `{step}` (steps: {})",
            record.id,
            record
                .definition
                .steps
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    if def.kind != StepKind::Approval {
        bail!(UsageError(format!(
            "`{step}` is a {} step, not an approval gate",
            def.kind
        )));
    }
    let Some(approver) = def
        .approvers
        .iter()
        .find(|a| a.eq_ignore_ascii_case(approver.trim()))
    else {
        bail!(UsageError(format!(
            "`{approver}` is not an approver of gate `{step}` (approvers: {})",
            def.approvers.join(", ")
        )));
    };
    let signer = super::serve::signer(app)?;
    let base = super::serve::public_url(app, None);
    println!(
        "{}",
        fleet_server::approver_link(&signer, &base, &record.id, step, approver, ttl)
    );
    Ok(())
}
