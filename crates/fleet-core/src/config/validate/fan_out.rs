//! `for_each` and `max_items` on a step, and what a fan-out asks of the
//! steps built on it: one fan-out per step, an `out` and publish paths that
//! differ per file.

use super::steps::ParsedStep;
use super::*;
use crate::config::fan_out::{ITEM_VAR, fan_groups};
use crate::config::params::template_env;
use std::collections::BTreeSet;

/// Most files one `for_each` may be allowed to match.
const MAX_ITEMS_LIMIT: u64 = 10_000;

impl Checker {
    /// A step's `for_each` glob and `max_items`, with their positions.
    pub(super) fn for_each(&mut self, f: &Fields) -> (Option<String>, Option<u32>, Option<Pos>) {
        let for_each_node = f.get("for_each");
        let for_each = for_each_node.and_then(|n| {
            let glob = self.nonempty_string(n, "`for_each`")?;
            self.corpus_glob(glob, n.pos)
        });
        let max_items = f.get("max_items").and_then(|n| {
            let max = self.uint(n, "`max_items`", 1, MAX_ITEMS_LIMIT)? as u32;
            if for_each_node.is_none() {
                self.err(
                    n.pos,
                    "`max_items` bounds a `for_each`, and this step has none",
                    Some("add `for_each: GLOB` or remove `max_items`"),
                );
            }
            Some(max)
        });
        (for_each, max_items, for_each_node.map(|n| n.pos))
    }

    /// The fan-out rules across steps (`parsed` must be free of cycles).
    /// Returns the names of the steps that run once per file.
    pub(super) fn fan_out(&mut self, parsed: &[ParsedStep]) -> BTreeSet<String> {
        let steps: Vec<Step> = parsed.iter().map(|p| p.step.clone()).collect();
        if !steps.iter().any(|s| s.for_each.is_some()) {
            return BTreeSet::new();
        }
        let groups = match fan_groups(&steps) {
            Ok(groups) => groups,
            Err(conflict) => {
                let p = &parsed[conflict.step];
                self.err(p.for_each_pos.unwrap_or(p.name_pos), conflict.message, None);
                return BTreeSet::new();
            }
        };
        for (p, group) in parsed.iter().zip(&groups) {
            let Some(g) = group else { continue };
            let source = &steps[*g].name;
            if let (Some(out), Some(pos)) = (&p.step.out, p.out_pos)
                && !uses_item(out)
            {
                self.err(
                    pos,
                    format!(
                        "`out: {out}` of step `{}` is the same for every file of `{source}`'s `for_each`",
                        p.step.name
                    ),
                    Some("use the file in it, e.g. `out: \"kb/{{ item.stem }}.md\"`, or leave `out` out (each instance then writes `<step>/<file path>`)"),
                );
            }
            for d in &p.step.destinations {
                if let PublishDestination::Path(path) = d
                    && !uses_item(path)
                {
                    self.err(
                        p.destinations_pos.unwrap_or(p.name_pos),
                        format!(
                            "publish step `{}` runs once per file of `{source}`'s `for_each`, and every instance would write `{path}`",
                            p.step.name
                        ),
                        Some("use the file in the path, e.g. `{path: \"kb/{{ item.stem }}.md\"}`"),
                    );
                }
            }
        }
        parsed
            .iter()
            .zip(&groups)
            .filter(|(_, g)| g.is_some())
            .map(|(p, _)| p.step.name.clone())
            .collect()
    }
}

/// Whether a template uses `item` (so it differs per file).
fn uses_item(text: &str) -> bool {
    template_env()
        .template_from_str(text)
        .is_ok_and(|t| t.undeclared_variables(false).iter().any(|v| v == ITEM_VAR))
}
