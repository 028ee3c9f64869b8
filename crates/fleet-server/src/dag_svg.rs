//! The run's DAG as an inline SVG: one column per dependency depth, boxes
//! coloured by status (CSS classes, so the page needs no inline styles and
//! the CSP can forbid them).

use fleet_core::config::Genflow;
use fleet_core::dag;
use fleet_core::run::RunState;
use std::fmt::Write;

const BOX_W: usize = 150;
const BOX_H: usize = 44;
const COL_GAP: usize = 50;
const ROW_GAP: usize = 18;
const PAD: usize = 8;
const ARC_ROOM: usize = 34;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An `<svg>` element (escaped; safe to embed). `link` gives each step's
/// href (e.g. to its artifact), when it has one.
pub fn render(
    genflow: &Genflow,
    state: &RunState,
    link: impl Fn(usize) -> Option<String>,
) -> String {
    let deps = genflow.dependency_indices();
    let order = dag::topo_order(&deps);
    // Depth = longest path from a root, so every edge points rightwards.
    let mut depth = vec![0usize; genflow.steps.len()];
    for &i in &order {
        depth[i] = deps[i].iter().map(|&d| depth[d] + 1).max().unwrap_or(0);
    }
    let columns = depth.iter().copied().max().map_or(0, |d| d + 1);
    let mut row = vec![0usize; genflow.steps.len()];
    let mut per_column = vec![0usize; columns];
    for &i in &order {
        row[i] = per_column[depth[i]];
        per_column[depth[i]] += 1;
    }
    let rows = per_column.iter().copied().max().unwrap_or(0);
    // Edges that skip a column arc over the boxes between; leave room above.
    let skips = deps
        .iter()
        .enumerate()
        .any(|(i, ds)| ds.iter().any(|&d| depth[i] > depth[d] + 1));
    let top = if skips { PAD + ARC_ROOM } else { PAD };
    let width = PAD * 2 + columns * BOX_W + columns.saturating_sub(1) * COL_GAP;
    let height = top + PAD + rows * BOX_H + rows.saturating_sub(1) * ROW_GAP;
    let pos = |i: usize| {
        (
            PAD + depth[i] * (BOX_W + COL_GAP),
            top + row[i] * (BOX_H + ROW_GAP),
        )
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="dag" role="img" aria-label="steps of the run" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#
    );
    svg.push_str(r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="dag-arrow"/></marker></defs>"#);
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            let (x1, y1) = pos(d);
            let (x2, y2) = pos(i);
            if depth[i] > depth[d] + 1 && row[i] == row[d] {
                // Top centre to top centre, over the boxes in between.
                let (sx, ex) = (x1 + BOX_W / 2, x2 + BOX_W / 2);
                // Longer jumps arc higher, so two arcs from one box stay apart.
                let span = depth[i] - depth[d];
                let lift = y1.min(y2).saturating_sub((10 * span + 6).min(ARC_ROOM + 8));
                let _ = write!(
                    svg,
                    r#"<path class="dag-edge" d="M {sx} {y1} C {sx} {lift}, {ex} {lift}, {ex} {y2}" marker-end="url(#arrow)"/>"#
                );
                continue;
            }
            let (x1, y1) = (x1 + BOX_W, y1 + BOX_H / 2);
            let y2 = y2 + BOX_H / 2;
            let mid = (x1 + x2) / 2;
            let _ = write!(
                svg,
                r#"<path class="dag-edge" d="M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}" marker-end="url(#arrow)"/>"#
            );
        }
    }
    for (i, step) in genflow.steps.iter().enumerate() {
        let (x, y) = pos(i);
        let status = state
            .steps
            .get(i)
            .map(|s| s.status.as_str())
            .unwrap_or("pending");
        let name = escape(&step.name);
        let label = format!("{} · {}", step.kind, status);
        let body = format!(
            r#"<g class="dag-node st-{status}"><title>{name}: {status}</title><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/><text x="{tx}" y="{ty1}" class="dag-name">{name}</text><text x="{tx}" y="{ty2}" class="dag-status">{label}</text></g>"#,
            tx = x + 10,
            ty1 = y + 19,
            ty2 = y + 35,
            label = escape(&label),
        );
        match link(i) {
            Some(href) => {
                let _ = write!(svg, r#"<a href="{}">{body}</a>"#, escape(&href));
            }
            None => svg.push_str(&body),
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_gate_is_four_columns_with_escaped_names() {
        let yaml = r#"
approvers: [a@example.com]
genflows:
  - name: g
    steps:
      - {name: readiness, kind: report, prompt: p, corpus: ["*.md"]}
      - {name: risk-review, kind: review, prompt: p, depends_on: [readiness]}
      - {name: go-no-go, kind: approval, depends_on: [readiness, risk-review]}
      - {name: announce, kind: notify, depends_on: [go-no-go], to: [t@example.com]}
"#;
        let checked = fleet_core::config::check_str(yaml);
        let Some(config) = checked.config else {
            panic!("{:?}", checked.diagnostics)
        };
        let g = &config.genflows[0];
        let state = RunState::new(g, None);
        let svg = render(g, &state, |i| (i == 0).then(|| "/x?a=1&b=2".to_string()));
        assert_eq!(svg.matches("<rect").count(), 4);
        // readiness->risk-review, readiness->go-no-go, risk-review->go-no-go, go-no-go->announce
        assert_eq!(svg.matches("class=\"dag-edge\"").count(), 4);
        assert!(svg.contains("href=\"/x?a=1&amp;b=2\""));
        // announce sits in the fourth column.
        let x_announce = PAD + 3 * (BOX_W + COL_GAP);
        assert!(svg.contains(&format!("<rect x=\"{x_announce}\"")), "{svg}");
        // readiness -> go-no-go skips a column: it arcs over risk-review.
        let from_top = PAD + BOX_W / 2;
        assert!(
            svg.contains(&format!("d=\"M {from_top} {}", PAD + ARC_ROOM)),
            "{svg}"
        );
    }
}
