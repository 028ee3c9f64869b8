//! `fleet show`'s redraft rounds (see `fleet_engine::rounds`): where each
//! review loop ended, every round with its revisions and flags, and what
//! the last redraft changed in the report (the diff itself with `--diff`).

use crate::context::App;
use anyhow::Result;
use fleet_core::flags::Flag;
use fleet_engine::ReviewRounds;
use fleet_store::{ArtifactRef, RunRecord};
use serde_json::{Value, json};
use std::io::Write;

/// The loops of the run's reviews with `on_flag`.
pub async fn load(app: &App, run: &RunRecord, refs: &[ArtifactRef]) -> Result<Vec<ReviewRounds>> {
    let all = 0..run.definition.steps.len();
    Ok(fleet_engine::review_rounds(app.store(), run, refs, all).await?)
}

fn revision(r: Option<&ArtifactRef>) -> Value {
    r.map_or(
        Value::Null,
        |r| json!({ "path": r.path, "revision": r.revision, "sha256": r.sha256 }),
    )
}

/// `--json`: one object per loop.
pub fn to_json(loops: &[ReviewRounds]) -> Value {
    loops
        .iter()
        .map(|l| {
            let rounds: Vec<Value> = l
                .rounds
                .iter()
                .zip(&l.revisions)
                .map(|(round, revs)| {
                    json!({
                        "round": round.number,
                        "report": revision(revs.report.as_ref()),
                        "review": revision(revs.review.as_ref()),
                        "flags": revision(Some(&revs.flags)),
                        "raised": round.raised,
                        "answered": round.answered,
                        "remaining": round.remaining().map(|f| &f.flag.id).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "review": l.review,
                "redraft": l.on_flag.redraft,
                "max": l.on_flag.max,
                "severity": l.on_flag.bar().as_str(),
                "redrafts_used": l.outcome.map(|o| o.used),
                "summary": l.outcome.map(|o| o.line()),
                "bound_reached": l.outcome.is_some_and(|o| o.bound_reached()),
                "rounds": rounds,
            })
        })
        .collect()
}

/// Model output for a terminal: control characters (escape sequences
/// could rewrite the screen) shown as U+FFFD.
fn plain(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

fn flag_line(out: &mut impl Write, tag: &str, f: &Flag, was: Option<&str>) -> Result<()> {
    let was = was
        .map(|w| format!(" (was {})", plain(w)))
        .unwrap_or_default();
    writeln!(
        out,
        "      {tag:<9} {} {:<6} {}{was}",
        plain(&f.id),
        f.severity.as_str(),
        plain(&f.claim)
    )?;
    Ok(())
}

/// The text of `fleet show`; `diff` prints the unified diff of the last
/// two report revisions, else only how many lines changed.
pub async fn print(
    out: &mut impl Write,
    app: &App,
    run: &RunRecord,
    loops: &[ReviewRounds],
    diff: bool,
) -> Result<()> {
    for l in loops {
        let bar = l.on_flag.bar().as_str();
        writeln!(out)?;
        writeln!(
            out,
            "  Redraft rounds: {} sends {} back on {bar}{} flags, at most {} time{}",
            l.review,
            l.on_flag.redraft,
            if bar == "high" { "" } else { "-or-higher" },
            l.on_flag.max,
            if l.on_flag.max == 1 { "" } else { "s" }
        )?;
        match l.outcome {
            Some(o) if o.bound_reached() => writeln!(
                out,
                "    {} (the limit was reached: the gate decides with them open)",
                o.line()
            )?,
            Some(o) => writeln!(out, "    {}", o.line())?,
            None => writeln!(out, "    no round yet")?,
        }
        for (round, revs) in l.rounds.iter().zip(&l.revisions) {
            let rev = |r: Option<&ArtifactRef>| {
                r.map_or("-".to_owned(), |r| format!("{} rev {}", r.path, r.revision))
            };
            let answered = if round.answered.is_empty() {
                String::new()
            } else {
                format!(", {} answered", round.answered.len())
            };
            writeln!(
                out,
                "    round {}  {} -> {}: {} raised{answered}",
                round.number,
                rev(revs.report.as_ref()),
                rev(revs.review.as_ref()),
                round.raised.len()
            )?;
            for f in &round.answered {
                flag_line(out, "answered", f, None)?;
            }
            for f in &round.raised {
                let tag = if f.was.is_some() { "remains" } else { "new" };
                flag_line(out, tag, &f.flag, f.was.as_deref())?;
            }
        }
        if let Some((a, b)) = &l.last_two {
            let store = app.store();
            let old = store.artifact_bytes(&a.sha256).await?.unwrap_or_default();
            let new = store.artifact_bytes(&b.sha256).await?.unwrap_or_default();
            let (old, new) = (String::from_utf8_lossy(&old), String::from_utf8_lossy(&new));
            let text_diff = similar::TextDiff::from_lines(&old, &new);
            let (mut added, mut removed) = (0, 0);
            for c in text_diff.iter_all_changes() {
                match c.tag() {
                    similar::ChangeTag::Insert => added += 1,
                    similar::ChangeTag::Delete => removed += 1,
                    similar::ChangeTag::Equal => {}
                }
            }
            let hint = if diff {
                String::new()
            } else {
                format!(" (fleet show {} --diff)", short(&run.id))
            };
            writeln!(
                out,
                "    {} rev {} -> rev {}: +{added} -{removed} lines{hint}",
                b.path, a.revision, b.revision
            )?;
            if diff {
                let unified = text_diff
                    .unified_diff()
                    .context_radius(3)
                    .header(
                        &format!("{} rev {}", a.path, a.revision),
                        &format!("{} rev {}", b.path, b.revision),
                    )
                    .to_string();
                for line in unified.lines() {
                    writeln!(out, "      {}", plain(line))?;
                }
            }
        }
    }
    Ok(())
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
