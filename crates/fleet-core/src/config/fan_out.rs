//! Fan-out: `for_each: GLOB` on a step runs one instance of it per matching
//! file, and one instance of every step built on it, until an approval or
//! notify step joins them again.
//!
//! A run's definition is expanded when the run starts: `draft` over three
//! files becomes `draft[a.md]`, `draft[b.md]`, `draft[c.md]`, each an
//! ordinary step with its own name, `out`, artifacts and step record, so the
//! run state machine, the store and the engine need no notion of instances.
//! The file list is then part of the stored, hashed definition: what a run
//! fanned out over is on the record, and a file added later changes nothing.
//! Listing the files is I/O (the engine walks the workspace); expanding the
//! list is pure and lives here.

use super::model::{CorpusEntry, Genflow, Instance, Step, StepKind};
use super::params::{ParamError, Renderer};
use crate::run::{RunState, StepStatus};
use std::collections::BTreeMap;

/// `max_items` when a `for_each` step sets none.
pub const DEFAULT_MAX_ITEMS: u32 = 100;

/// The variable a fanned-out step's templates use for its file.
pub const ITEM_VAR: &str = "item";

/// The attributes of `{{ item }}`.
pub const ITEM_FIELDS: &[&str] = &["path", "name", "stem", "dir"];

/// Why steps cannot be fanned out as written: a step inherits two
/// different fan-outs, a fan-out nests inside another, or a review would
/// redraft a report of another fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOutConflict {
    /// Index of the step the problem is reported at.
    pub step: usize,
    pub message: String,
}

/// For each step, the index of the `for_each` step whose instances it is
/// repeated with (`None`: it runs once). A step with `for_each` is its own
/// group; an approval or notify step joins (runs once, after every
/// instance); any other step belongs to the group of the steps it depends
/// on (and a publish step also to that of its `from`). `steps` must be free
/// of cycles; unknown names are ignored (validation reports them).
pub fn fan_groups(steps: &[Step]) -> Result<Vec<Option<usize>>, FanOutConflict> {
    let index = |name: &str| steps.iter().position(|s| s.name == name);
    let deps: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| s.depends_on.iter().filter_map(|d| index(d)).collect())
        .collect();
    let mut groups: Vec<Option<usize>> = vec![None; steps.len()];
    for i in crate::dag::topo_order(&deps) {
        let step = &steps[i];
        let mut inherited: Vec<(usize, usize)> = deps[i]
            .iter()
            .filter_map(|&d| groups[d].map(|g| (g, d)))
            .collect();
        if step.kind == StepKind::Publish
            && let Some(from) = step.from.as_deref().and_then(index)
            && let Some(g) = groups[from]
        {
            inherited.push((g, from));
        }
        inherited.sort();
        inherited.dedup_by_key(|(g, _)| *g);
        groups[i] = match (step.for_each.is_some(), inherited.as_slice()) {
            (true, []) => Some(i),
            (true, [(g, via), ..]) => {
                return Err(FanOutConflict {
                    step: i,
                    message: format!(
                        "step `{}` has `for_each` but depends on `{}`, which already runs once per file of `{}`: a fan-out cannot nest inside another",
                        step.name, steps[*via].name, steps[*g].name
                    ),
                });
            }
            _ if matches!(step.kind, StepKind::Approval | StepKind::Notify) => None,
            (false, []) => None,
            (false, [(g, _)]) => Some(*g),
            (false, [(g1, via1), (g2, via2), ..]) => {
                return Err(FanOutConflict {
                    step: i,
                    message: format!(
                        "step `{}` depends on `{}` (one instance per file of `{}`) and on `{}` (one per file of `{}`): a step can follow only one fan-out",
                        step.name,
                        steps[*via1].name,
                        steps[*g1].name,
                        steps[*via2].name,
                        steps[*g2].name
                    ),
                });
            }
        };
        if let Some(of) = &step.on_flag
            && let Some(target) = index(&of.redraft)
            && groups[target].is_some()
            && groups[target] != groups[i]
        {
            return Err(FanOutConflict {
                step: i,
                message: format!(
                    "step `{}` redrafts `{}`, which runs once per file, but itself runs once: only an instance of the same fan-out can send one instance back",
                    step.name, of.redraft
                ),
            });
        }
    }
    Ok(groups)
}

/// The name of the instance of step `of` for file `key`: `draft[notes/a.md]`.
pub fn instance_name(of: &str, key: &str) -> String {
    format!("{of}[{key}]")
}

/// What `{{ item.… }}` holds for file `key` (a workspace-relative path).
pub fn item_fields(key: &str) -> BTreeMap<&'static str, String> {
    let (dir, name) = key.rsplit_once('/').unwrap_or(("", key));
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => name,
    };
    BTreeMap::from([
        ("path", key.to_owned()),
        ("name", name.to_owned()),
        ("stem", stem.to_owned()),
        ("dir", dir.to_owned()),
    ])
}

/// The `out` of an instance of a step that names none: under a directory
/// named for the step, at the file's own path (`draft/notes/a.md`).
fn default_instance_out(step: &str, key: &str) -> String {
    if key.ends_with(".md") {
        format!("{step}/{key}")
    } else {
        format!("{step}/{key}.md")
    }
}

/// One `for_each` a run must list files for, its glob rendered with the
/// run's params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForEach {
    pub step: String,
    pub glob: String,
    pub max_items: u32,
    pub include_ignored: bool,
}

impl Genflow {
    /// Whether any step fans out.
    pub fn fans_out(&self) -> bool {
        self.steps.iter().any(|s| s.for_each.is_some())
    }

    /// The `for_each` globs of this genflow, rendered with the values a run
    /// is given (checked as [`Genflow::param_values`] checks them).
    pub fn for_each_globs(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<Vec<ForEach>, ParamError> {
        if !self.fans_out() {
            return Ok(Vec::new());
        }
        let values = self.param_values(given)?;
        let render = Renderer::new(&values);
        self.steps
            .iter()
            .filter_map(|s| Some((s, s.for_each.as_deref()?)))
            .map(|(s, glob)| {
                let field = format!("`for_each` of step `{}`", s.name);
                let glob = render.text(glob, None, &field)?;
                super::params::check_glob(&glob)
                    .map_err(|message| ParamError::Render { field, message })?;
                Ok(ForEach {
                    step: s.name.clone(),
                    glob,
                    max_items: s.max_items.unwrap_or(DEFAULT_MAX_ITEMS),
                    include_ignored: s.include_ignored,
                })
            })
            .collect()
    }

    /// The steps with each fan-out expanded into one instance per file of
    /// `items` (for_each step name -> the files its glob matched, as listed
    /// for [`Genflow::for_each_globs`]). Refuses a list that is empty or
    /// longer than the step's `max_items`. Templates are not rendered here.
    pub(super) fn expand_fan_out(
        &self,
        items: &BTreeMap<String, Vec<String>>,
        render: &Renderer,
    ) -> Result<Vec<Step>, ParamError> {
        let groups = fan_groups(&self.steps).map_err(|c| ParamError::Render {
            field: format!("step `{}`", self.steps[c.step].name),
            message: c.message,
        })?;
        let mut keys: Vec<&[String]> = vec![&[]; self.steps.len()];
        for (i, s) in self.steps.iter().enumerate() {
            let Some(glob) = &s.for_each else { continue };
            // As listed: the refusal names the glob the files were matched by.
            let glob = render.text(glob, None, &format!("`for_each` of step `{}`", s.name))?;
            let list = items.get(&s.name).map(Vec::as_slice).unwrap_or_default();
            let max = s.max_items.unwrap_or(DEFAULT_MAX_ITEMS);
            if list.is_empty() {
                return Err(ParamError::NoItems {
                    step: s.name.clone(),
                    glob,
                });
            }
            if list.len() > max as usize {
                return Err(ParamError::TooManyItems {
                    step: s.name.clone(),
                    glob,
                    matched: list.len(),
                    max,
                });
            }
            keys[i] = list;
        }
        let index = |name: &str| self.steps.iter().position(|s| s.name == name);
        // Every name `d` stands for in a step of group `group` (for one file `key`).
        let names_for = |d: &str, key: Option<&str>| -> Vec<String> {
            match index(d).and_then(|j| groups[j].map(|g| (j, g))) {
                None => vec![d.to_owned()],
                Some((_, g)) => match key {
                    Some(key) => vec![instance_name(d, key)],
                    None => keys[g].iter().map(|k| instance_name(d, k)).collect(),
                },
            }
        };
        let mut steps = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            let Some(g) = groups[i] else {
                let mut step = s.clone();
                step.depends_on = s
                    .depends_on
                    .iter()
                    .flat_map(|d| names_for(d, None))
                    .collect();
                steps.push(step);
                continue;
            };
            for key in keys[g] {
                let mut step = s.clone();
                step.name = instance_name(&s.name, key);
                step.instance = Some(Instance {
                    of: s.name.clone(),
                    key: key.clone(),
                });
                step.depends_on = s
                    .depends_on
                    .iter()
                    .flat_map(|d| names_for(d, Some(key)))
                    .collect();
                if let Some(from) = &mut step.from {
                    *from = names_for(from, Some(key)).remove(0);
                }
                if let Some(of) = &mut step.on_flag {
                    of.redraft = names_for(&of.redraft, Some(key)).remove(0);
                }
                if step.for_each.take().is_some() {
                    step.max_items = None;
                    step.corpus
                        .insert(0, CorpusEntry::Glob(globset::escape(key)));
                }
                if step.out.is_none() {
                    step.out = Some(default_instance_out(&s.name, key));
                }
                steps.push(step);
            }
        }
        Ok(steps)
    }
}

/// The steps of a run's definition as a reader sees them: each step on its
/// own, or the instances of one fanned-out step together (they are stored
/// next to each other, in file order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepGroup<'a> {
    Single(usize),
    FanOut {
        /// The step as written in the config.
        of: &'a str,
        /// Indices of its instances in the definition.
        members: Vec<usize>,
    },
}

/// [`StepGroup`]s of `genflow`, in definition order.
pub fn step_groups(genflow: &Genflow) -> Vec<StepGroup<'_>> {
    let mut groups: Vec<StepGroup<'_>> = Vec::new();
    for (i, step) in genflow.steps.iter().enumerate() {
        match (&step.instance, groups.last_mut()) {
            (Some(inst), Some(StepGroup::FanOut { of, members })) if *of == inst.of => {
                members.push(i)
            }
            (Some(inst), _) => groups.push(StepGroup::FanOut {
                of: &inst.of,
                members: vec![i],
            }),
            (None, _) => groups.push(StepGroup::Single(i)),
        }
    }
    groups
}

/// How a fan-out's instances stand, e.g. `2 succeeded, 1 running` (in the
/// order of [`StepStatus::ALL`]).
pub fn status_summary(state: &RunState, members: &[usize]) -> String {
    StepStatus::ALL
        .iter()
        .filter_map(|status| {
            let n = members
                .iter()
                .filter(|&&i| state.steps.get(i).is_some_and(|s| s.status == *status))
                .count();
            (n > 0).then(|| format!("{n} {status}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fanned-out step as the API and `fleet show --json` report it: its
/// instances (by name) and how they stand.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FanOutSummary<'a> {
    pub step: &'a str,
    pub kind: StepKind,
    pub instances: Vec<&'a str>,
    /// e.g. `2 succeeded, 1 running`.
    pub statuses: String,
}

/// One [`FanOutSummary`] per fanned-out step of `genflow`, in definition order.
pub fn fan_out_summaries<'a>(genflow: &'a Genflow, state: &RunState) -> Vec<FanOutSummary<'a>> {
    step_groups(genflow)
        .into_iter()
        .filter_map(|g| match g {
            StepGroup::Single(_) => None,
            StepGroup::FanOut { of, members } => Some(FanOutSummary {
                step: of,
                kind: genflow.steps[members[0]].kind,
                instances: members
                    .iter()
                    .map(|&i| genflow.steps[i].name.as_str())
                    .collect(),
                statuses: status_summary(state, &members),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_fields_split_the_path() {
        let f = item_fields("notes/2024/q1.release.md");
        assert_eq!(f["path"], "notes/2024/q1.release.md");
        assert_eq!(f["name"], "q1.release.md");
        assert_eq!(f["stem"], "q1.release");
        assert_eq!(f["dir"], "notes/2024");
        let f = item_fields(".hidden");
        assert_eq!((f["stem"].as_str(), f["dir"].as_str()), (".hidden", ""));
    }

    #[test]
    fn default_out_keeps_the_file_path() {
        assert_eq!(default_instance_out("draft", "a/b.md"), "draft/a/b.md");
        assert_eq!(default_instance_out("draft", "a/b.txt"), "draft/a/b.txt.md");
    }
}
