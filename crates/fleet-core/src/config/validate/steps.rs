//! A genflow's `steps`: each step's fields by kind, the dependency graph,
//! outputs, notify channels, `on_flag` loops and `sources` commands.

use super::*;
use crate::flags::FlagSeverity;

impl Checker {
    pub(super) fn steps(
        &mut self,
        node: &Node,
        flow: &str,
        models: &BTreeMap<String, ModelConfig>,
        has_default_approvers: bool,
    ) -> (Vec<Step>, std::collections::BTreeSet<String>) {
        let NodeKind::Seq(items) = &node.kind else {
            self.err(
                node.pos,
                format!(
                    "`steps` of {flow} must be a list, found {}",
                    node.type_name()
                ),
                None,
            );
            return Default::default();
        };
        if items.is_empty() {
            self.err(node.pos, format!("{flow} has no steps"), None);
            return Default::default();
        }
        // First pass: each step on its own.
        let mut parsed: Vec<ParsedStep> = items
            .iter()
            .filter_map(|item| self.step(item, models, has_default_approvers))
            .collect();

        // Duplicate names: keep the first, report the rest.
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut keep = Vec::new();
        for p in parsed.drain(..) {
            if let Some(&first) = index.get(&p.step.name) {
                let first_line: usize = keep
                    .get(first)
                    .map(|f: &ParsedStep| f.name_pos.line)
                    .unwrap_or(0);
                self.err(
                    p.name_pos,
                    format!(
                        "duplicate step name `{}` in {flow} (first defined on line {first_line})",
                        p.step.name
                    ),
                    None,
                );
                continue;
            }
            index.insert(p.step.name.clone(), keep.len());
            keep.push(p);
        }
        let parsed = keep;
        let names: Vec<&str> = parsed.iter().map(|p| p.step.name.as_str()).collect();

        // Dependencies by index; unknown names reported.
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); parsed.len()];
        for (i, p) in parsed.iter().enumerate() {
            for (d, pos) in &p.deps {
                match index.get(d) {
                    Some(&j) => {
                        if !deps[i].contains(&j) {
                            deps[i].push(j);
                        }
                    }
                    None => {
                        let help = did_you_mean(d, names.iter().copied())
                            .unwrap_or_else(|| format!("steps in {flow}: {}", names.join(", ")));
                        self.err_help(
                            *pos,
                            format!(
                                "step `{}` depends on `{d}`, which is not a step of {flow}",
                                p.step.name
                            ),
                            Some(help),
                        );
                    }
                }
            }
        }

        let cycles = dag::find_cycles(&deps);
        for cycle in &cycles {
            let path: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
            let start = cycle[0];
            self.err(
                parsed[start].name_pos,
                format!("dependency cycle in {flow}: {}", path.join(" -> ")),
                Some("a step cannot depend on itself, directly or through other steps"),
            );
        }
        let acyclic = cycles.is_empty();

        // Output collisions.
        let mut outs: HashMap<String, (usize, Pos)> = HashMap::new();
        for (i, p) in parsed.iter().enumerate() {
            let out = normalize_out(&p.step.out_path());
            if let Some((first, _)) = outs.get(&out) {
                self.err(
                    p.out_pos.unwrap_or(p.name_pos),
                    format!(
                        "`out: {}` of step `{}` collides with the output of step `{}`",
                        p.step.out_path(),
                        p.step.name,
                        names[*first]
                    ),
                    Some("each step needs its own output file"),
                );
            } else {
                outs.insert(out, (i, p.out_pos.unwrap_or(p.name_pos)));
            }
        }

        let approvals: Vec<usize> = (0..parsed.len())
            .filter(|&i| parsed[i].step.kind == StepKind::Approval)
            .collect();
        for (i, p) in parsed.iter().enumerate() {
            let ups = dag::ancestors(&deps, i);
            // Outbound steps must sit behind a gate when the flow has one.
            if acyclic
                && p.step.kind.is_outbound()
                && !approvals.is_empty()
                && !ups.iter().any(|u| approvals.contains(u))
            {
                self.warn(
                        p.name_pos,
                        format!(
                            "{} step `{}` does not depend on an approval, so it can run before anyone decides",
                            p.step.kind, p.step.name
                        ),
                        Some("add the approval step (or a step after it) to `depends_on`"),
                    );
            }
            if acyclic && p.step.kind == StepKind::Publish {
                let all: Vec<&Step> = parsed.iter().map(|p| &p.step).collect();
                self.publish_source(&p.step, p.from_pos, p.name_pos, &ups, &all);
            }
            if p.step.kind == StepKind::Review && p.step.depends_on.is_empty() {
                self.err(
                    p.name_pos,
                    format!(
                        "review step `{}` has nothing to review: add the report it reviews to `depends_on`",
                        p.step.name
                    ),
                    None,
                );
            }
            if p.step.kind == StepKind::Approval && p.step.depends_on.is_empty() {
                self.warn(
                    p.name_pos,
                    format!(
                        "approval step `{}` depends on nothing, so approvers will have no documents to look at",
                        p.step.name
                    ),
                    None,
                );
            }
            if let (Some(of), Some(pos)) = (&p.step.on_flag, p.redraft_pos) {
                match index.get(&of.redraft) {
                    None => {
                        let help = did_you_mean(&of.redraft, names.iter().copied());
                        self.err_help(
                            pos,
                            format!(
                                "`on_flag.redraft` names `{}`, which is not a step of {flow}",
                                of.redraft
                            ),
                            help,
                        );
                    }
                    Some(&j) => {
                        if parsed[j].step.kind != StepKind::Report {
                            self.err(
                                pos,
                                format!(
                                    "`on_flag.redraft` must name a report step; `{}` is a {} step",
                                    of.redraft, parsed[j].step.kind
                                ),
                                None,
                            );
                        } else if !ups.contains(&j) {
                            self.err(
                                pos,
                                format!(
                                    "`on_flag.redraft` names `{}`, which step `{}` does not depend on",
                                    of.redraft, p.step.name
                                ),
                                Some("a review can only send back a report it reviews"),
                            );
                        }
                    }
                }
            }
        }
        let fanned = if acyclic {
            self.fan_out(&parsed)
        } else {
            Default::default()
        };
        (parsed.into_iter().map(|p| p.step).collect(), fanned)
    }

    pub(super) fn step(
        &mut self,
        node: &Node,
        models: &BTreeMap<String, ModelConfig>,
        has_default_approvers: bool,
    ) -> Option<ParsedStep> {
        let all_keys: Vec<&str> = STEP_COMMON
            .iter()
            .copied()
            .chain(STEP_KIND_FIELDS.iter().map(|(k, _)| *k))
            .collect();
        let f = self.fields(node, "a step", &all_keys)?;
        let name_node = self.required(&f, "name", "a step");
        // An invalid name is reported but kept, so that dependency checks
        // still see the step and do not pile up follow-on errors.
        let name = name_node.and_then(|n| self.name(n, "step name").or_else(|| n.as_scalar_text()));
        let name_pos = name_node.map(|n| n.pos).unwrap_or(node.pos);
        let label = match &name {
            Some(n) => format!("step `{n}`"),
            None => "this step".to_owned(),
        };

        let kind = self.required(&f, "kind", &label).and_then(|n| {
            let s = self.string(n, "`kind`")?;
            match StepKind::ALL.iter().find(|k| k.as_str() == s) {
                Some(k) => Some(*k),
                None => {
                    let kinds: Vec<&str> = StepKind::ALL.iter().map(|k| k.as_str()).collect();
                    let help = did_you_mean(&s, kinds.iter().copied())
                        .unwrap_or_else(|| format!("expected one of: {}", kinds.join(", ")));
                    self.err_help(n.pos, format!("unknown step kind `{s}`"), Some(help));
                    None
                }
            }
        });

        // Fields that do not belong to this kind.
        if let Some(kind) = kind {
            for (key, kinds) in STEP_KIND_FIELDS {
                if let Some(pos) = f.key_pos(key)
                    && !kinds.contains(&kind)
                {
                    let owners: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                    self.err(
                        pos,
                        format!(
                            "`{key}` does not belong on {} {kind} step (it applies to {} steps)",
                            if kind == StepKind::Approval {
                                "an"
                            } else {
                                "a"
                            },
                            owners.join(" and ")
                        ),
                        None,
                    );
                }
            }
        }

        let prompt = f
            .get("prompt")
            .and_then(|n| self.nonempty_string(n, "`prompt`"));
        let corpus = f.get("corpus").map(|n| self.corpus(n)).unwrap_or_default();
        let include_ignored = f
            .get("include_ignored")
            .and_then(|n| self.bool(n, "`include_ignored`"))
            .unwrap_or(false);
        let sources = f
            .get("sources")
            .map(|n| self.sources(n))
            .unwrap_or_default();
        let deps = f
            .get("depends_on")
            .map(|n| self.string_list(n, "`depends_on`"))
            .unwrap_or_default();
        for (d, pos) in &deps {
            if Some(d) == name.as_ref() {
                self.err(*pos, format!("{label} depends on itself"), None);
            }
        }
        let out_node = f.get("out");
        let out = out_node.and_then(|n| self.out_path(n));
        let model = f.get("model").and_then(|n| {
            let m = self.nonempty_string(n, "`model`")?;
            if m != BUILTIN_MODEL && !models.contains_key(&m) && !self.declared_models.contains(&m)
            {
                let mut known: Vec<&str> = models.keys().map(String::as_str).collect();
                known.push(BUILTIN_MODEL);
                let help = did_you_mean(&m, known.iter().copied()).unwrap_or_else(|| {
                    format!("define it under `models:` (known: {})", known.join(", "))
                });
                self.err_help(
                    n.pos,
                    format!("model `{m}` is not defined in `models`"),
                    Some(help),
                );
                return None;
            }
            Some(m)
        });
        let question = f
            .get("question")
            .and_then(|n| self.nonempty_string(n, "`question`"));
        let approvers = f
            .get("approvers")
            .map(|n| self.email_list(n, &format!("`approvers` of {label}")))
            .unwrap_or_default();
        let required_node = f.get("required");
        let required = required_node
            .and_then(|n| self.uint(n, "`required`", 1, 100))
            .unwrap_or(1) as u32;
        let allow_self_approval = f
            .get("allow_self_approval")
            .and_then(|n| self.bool(n, "`allow_self_approval`"))
            .unwrap_or(false);
        let remind_every = f
            .get("remind_every")
            .and_then(|n| self.duration(n, "`remind_every`"));
        let to = f
            .get("to")
            .map(|n| self.email_list(n, &format!("`to` of {label}")))
            .unwrap_or_default();
        let webhook = f.get("webhook").and_then(|n| self.url(n, "`webhook`"));
        let channels: Vec<String> = f
            .get("channels")
            .map(|n| self.string_list(n, "`channels`"))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(c, pos)| self.channel(c, pos, !to.is_empty(), webhook.is_some()))
            .collect();
        let from_node = f.get("from");
        let from = from_node.and_then(|n| self.name(n, "`from`"));
        let destinations = f
            .get("destinations")
            .map(|n| self.destinations(n))
            .unwrap_or_default();
        let (on_flag, redraft_pos) = match f.get("on_flag") {
            Some(n) => self.on_flag(n),
            None => (None, None),
        };
        let retries = f
            .get("retries")
            .and_then(|n| self.uint(n, "`retries`", 0, 20))
            .unwrap_or(0) as u32;
        let timeout = f.get("timeout").and_then(|n| self.duration(n, "`timeout`"));
        let (for_each, max_items, for_each_pos) = self.for_each(&f);

        // An unknown kind was reported above; carry on as a report (without
        // kind-specific checks) so later checks still see this step.
        let kind_known = kind.is_some();
        let kind = kind.unwrap_or(StepKind::Report);
        match kind {
            _ if !kind_known => {}
            StepKind::Report => {
                if f.get("prompt").is_none() {
                    self.err(
                        f.node.pos,
                        format!(
                            "report {label} has no `prompt`: say what the document should cover"
                        ),
                        None,
                    );
                }
                if f.get("corpus").is_none()
                    && f.get("sources").is_none()
                    && f.get("for_each").is_none()
                {
                    self.err(
                        f.node.pos,
                        format!("report {label} reads nothing: give it `corpus` globs, `sources` commands or a `for_each`"),
                        None,
                    );
                }
            }
            StepKind::Approval => {
                // An approvers list that was given but invalid was reported
                // already; do not also warn that there are none.
                let effective = if approvers.is_empty() && f.get("approvers").is_none() {
                    None
                } else {
                    Some(approvers.len())
                };
                match (effective, has_default_approvers) {
                    (Some(n), _) if n > 0 && (required as usize) > n => {
                        self.err(
                            required_node.map(|r| r.pos).unwrap_or(name_pos),
                            format!(
                                "{label} requires {required} approvals but names only {n} approver{}",
                                if n == 1 { "" } else { "s" }
                            ),
                            None,
                        );
                    }
                    (None, false) => {
                        if required > 1 {
                            self.err(
                                required_node.map(|r| r.pos).unwrap_or(name_pos),
                                format!("{label} requires {required} approvals but names no approvers"),
                                Some("list them under `approvers:` on the step, the genflow or the top level"),
                            );
                        } else {
                            self.warn(
                                name_pos,
                                format!("approval {label} names no approvers: anyone who can run `fleet approve` can decide"),
                                Some("add `approvers:` on the step, the genflow or the top level"),
                            );
                        }
                    }
                    _ => {}
                }
            }
            StepKind::Publish if f.get("destinations").is_none() => {
                self.err(
                    f.node.pos,
                    format!("publish {label} has no `destinations`: say where the approved document goes"),
                    Some("e.g. `destinations: [{path: dist/RELEASE_NOTES.md}]`"),
                );
            }
            _ => {}
        }

        let step = Step {
            name: name?,
            kind,
            prompt,
            corpus,
            include_ignored,
            sources,
            depends_on: deps.iter().map(|(d, _)| d.clone()).collect(),
            out,
            model,
            question,
            approvers,
            required,
            allow_self_approval,
            remind_every,
            to,
            webhook,
            channels,
            from,
            destinations,
            on_flag,
            retries,
            timeout,
            // Already reported on any other kind; kept off it so no
            // follow-on fan-out errors pile up.
            for_each: for_each.filter(|_| matches!(kind, StepKind::Report | StepKind::Review)),
            max_items,
            instance: None,
        };
        Some(ParsedStep {
            step,
            name_pos,
            out_pos: out_node.map(|n| n.pos),
            redraft_pos,
            from_pos: from_node.map(|n| n.pos),
            for_each_pos,
            destinations_pos: f.get("destinations").map(|n| n.pos),
            deps,
        })
    }

    pub(super) fn corpus_glob(&mut self, glob: String, pos: Pos) -> Option<String> {
        if glob.starts_with('/') || glob.starts_with('\\') || glob.get(1..2) == Some(":") {
            self.err(
                pos,
                format!(
                    "corpus glob `{glob}` is absolute; globs are relative to the workspace root"
                ),
                None,
            );
            return None;
        }
        if glob.split(['/', '\\']).any(|c| c == "..") {
            self.err(
                pos,
                format!("corpus glob `{glob}` contains `..` and could leave the workspace"),
                None,
            );
            return None;
        }
        Some(glob)
    }

    pub(super) fn out_path(&mut self, node: &Node) -> Option<String> {
        let s = self.nonempty_string(node, "`out`")?;
        if s.starts_with('/') || s.starts_with('\\') || s.get(1..2) == Some(":") {
            self.err(
                node.pos,
                format!(
                    "`out: {s}` is an absolute path; outputs are relative to the run directory"
                ),
                Some("write a relative file name such as `readiness.md`"),
            );
            return None;
        }
        if s.split(['/', '\\']).any(|c| c == "..") {
            self.err(
                node.pos,
                format!("`out: {s}` contains `..` and would escape the run directory"),
                None,
            );
            return None;
        }
        if s.ends_with('/') || normalize_out(&s).is_empty() {
            self.err(node.pos, format!("`out: {s}` must name a file"), None);
            return None;
        }
        Some(s)
    }

    pub(super) fn channel(
        &mut self,
        c: String,
        pos: Pos,
        has_to: bool,
        has_webhook: bool,
    ) -> Option<String> {
        match c.as_str() {
            "email" if !has_to => {
                self.err(pos, "channel `email` needs recipients in `to`", None);
                None
            }
            "webhook" if !has_webhook => {
                self.err(pos, "channel `webhook` needs a `webhook` URL", None);
                None
            }
            "email" | "webhook" | "file" => Some(c),
            other => match other.strip_prefix("slack:") {
                Some(url) if is_http_url(url) => Some(c),
                Some(_) => {
                    self.err(
                        pos,
                        format!("`{other}`: a slack channel needs an incoming-webhook URL after `slack:`"),
                        None,
                    );
                    None
                }
                None => {
                    let help =
                        did_you_mean(other, ["email", "webhook", "file"]).unwrap_or_else(|| {
                            "expected `email`, `webhook`, `file` or `slack:<url>`".into()
                        });
                    self.err_help(pos, format!("unknown channel `{other}`"), Some(help));
                    None
                }
            },
        }
    }

    pub(super) fn on_flag(&mut self, node: &Node) -> (Option<OnFlag>, Option<Pos>) {
        let Some(f) = self.fields(node, "`on_flag`", &["redraft", "max", "severity"]) else {
            return (None, None);
        };
        let redraft_node = self.required(&f, "redraft", "`on_flag`");
        let redraft = redraft_node.and_then(|n| self.nonempty_string(n, "`on_flag.redraft`"));
        let max = f
            .get("max")
            .and_then(|n| self.uint(n, "`on_flag.max`", 1, 10))
            .unwrap_or(1) as u32;
        let severity = f.get("severity").and_then(|n| self.severity(n));
        match redraft {
            Some(redraft) => (
                Some(OnFlag {
                    redraft,
                    max,
                    severity,
                }),
                redraft_node.map(|n| n.pos),
            ),
            None => (None, None),
        }
    }

    /// `on_flag.severity`: `high`, `medium` or `low`.
    fn severity(&mut self, node: &Node) -> Option<FlagSeverity> {
        let s = self.string(node, "`on_flag.severity`")?;
        let found = FlagSeverity::ALL.into_iter().find(|v| v.as_str() == s);
        if found.is_none() {
            let names = FlagSeverity::ALL.map(FlagSeverity::as_str);
            let help = did_you_mean(&s, names)
                .unwrap_or_else(|| format!("expected one of: {}", names.join(", ")));
            self.err_help(
                node.pos,
                format!("unknown `on_flag.severity` `{s}`"),
                Some(help),
            );
        }
        found
    }

    pub(super) fn sources(&mut self, node: &Node) -> Vec<Source> {
        let NodeKind::Seq(items) = &node.kind else {
            self.err(
                node.pos,
                format!(
                    "`sources` must be a list of {{name, command}}, found {}",
                    node.type_name()
                ),
                None,
            );
            return Vec::new();
        };
        let mut seen: HashMap<String, Pos> = HashMap::new();
        let mut out = Vec::new();
        for item in items {
            let Some(f) = self.fields(item, "a source", &["name", "command"]) else {
                continue;
            };
            let name_node = self.required(&f, "name", "a source");
            let name = name_node.and_then(|n| self.name(n, "source name"));
            let command = self
                .required(&f, "command", "a source")
                .and_then(|n| match &n.kind {
                    NodeKind::Seq(_) => {
                        let argv: Vec<String> = self
                            .string_list(n, "`command`")
                            .into_iter()
                            .map(|(s, _)| s)
                            .collect();
                        if argv.is_empty() {
                            self.err(n.pos, "`command` must not be empty", None);
                            None
                        } else {
                            Some(SourceCommand::Argv(argv))
                        }
                    }
                    _ => self
                        .nonempty_string(n, "`command`")
                        .map(SourceCommand::Shell),
                });
            if let (Some(name), Some(command), Some(np)) = (name, command, name_node) {
                if let Some(first) = seen.get(&name) {
                    self.err(
                        np.pos,
                        format!(
                            "duplicate source name `{name}` (first on line {})",
                            first.line
                        ),
                        None,
                    );
                    continue;
                }
                seen.insert(name.clone(), np.pos);
                out.push(Source {
                    name,
                    command,
                    env: BTreeMap::new(),
                });
            }
        }
        out
    }
}

pub(super) struct ParsedStep {
    pub(super) step: Step,
    pub(super) name_pos: Pos,
    pub(super) out_pos: Option<Pos>,
    pub(super) redraft_pos: Option<Pos>,
    pub(super) from_pos: Option<Pos>,
    pub(super) for_each_pos: Option<Pos>,
    pub(super) destinations_pos: Option<Pos>,
    pub(super) deps: Vec<(String, Pos)>,
}
