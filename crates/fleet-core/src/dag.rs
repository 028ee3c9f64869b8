//! Graph helpers over step indices. `deps[i]` lists the steps that step `i`
//! depends on. Used by validation (on not-yet-valid input, so nothing here
//! assumes acyclicity unless it says so) and by the run state machine.

use std::collections::BTreeSet;

/// Every elementary cycle representative: one cycle per strongly connected
/// component that has one (including self-loops), as a path of indices that
/// starts and ends at the component's lowest index, following dependency edges.
pub fn find_cycles(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let sccs = strongly_connected(deps);
    let mut cycles = Vec::new();
    for scc in sccs {
        let in_scc: BTreeSet<usize> = scc.iter().copied().collect();
        let start = *in_scc.iter().next().expect("scc is non-empty");
        let cyclic = scc.len() > 1 || deps[start].contains(&start);
        if !cyclic {
            continue;
        }
        if let Some(path) = path_back_to(deps, start, &in_scc) {
            cycles.push(path);
        }
    }
    cycles.sort();
    cycles
}

/// A shortest path `start -> ... -> start` within `allowed` (BFS, so the
/// printed cycle is as short as possible and deterministic).
fn path_back_to(
    deps: &[Vec<usize>],
    start: usize,
    allowed: &BTreeSet<usize>,
) -> Option<Vec<usize>> {
    let mut prev: Vec<Option<usize>> = vec![None; deps.len()];
    let mut queue = std::collections::VecDeque::new();
    for &d in &deps[start] {
        if d == start {
            return Some(vec![start, start]);
        }
        if allowed.contains(&d) && prev[d].is_none() {
            prev[d] = Some(start);
            queue.push_back(d);
        }
    }
    while let Some(n) = queue.pop_front() {
        for &d in &deps[n] {
            if d == start {
                let mut path = vec![start, n];
                let mut cur = n;
                while let Some(p) = prev[cur] {
                    if p == start {
                        break;
                    }
                    path.push(p);
                    cur = p;
                }
                // `path` is start, n, ..., first hop (reversed order); fix it.
                let mut middle: Vec<usize> = path[1..].to_vec();
                middle.reverse();
                let mut out = vec![start];
                out.extend(middle);
                out.push(start);
                return Some(out);
            }
            if allowed.contains(&d) && prev[d].is_none() {
                prev[d] = Some(n);
                queue.push_back(d);
            }
        }
    }
    None
}

/// Tarjan's algorithm, iterative so deep graphs cannot overflow the stack.
fn strongly_connected(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = deps.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut out = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut edge)) = work.last_mut() {
            if *edge == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if *edge < deps[v].len() {
                let w = deps[v][*edge];
                *edge += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                comp.sort_unstable();
                out.push(comp);
            }
        }
    }
    out
}

/// All transitive dependencies of `i` (not including `i` unless it is on a cycle).
pub fn ancestors(deps: &[Vec<usize>], i: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<usize> = deps[i].clone();
    while let Some(d) = todo.pop() {
        if seen.insert(d) {
            todo.extend(deps[d].iter().copied());
        }
    }
    seen
}

/// A topological order (dependencies first, ties by index). Requires an acyclic graph.
pub fn topo_order(deps: &[Vec<usize>]) -> Vec<usize> {
    let n = deps.len();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let before = order.len();
        for i in 0..n {
            if !placed[i] && deps[i].iter().all(|&d| placed[d]) {
                placed[i] = true;
                order.push(i);
            }
        }
        assert!(order.len() > before, "topo_order called on a cyclic graph");
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_two_cycle_and_self_loop() {
        // 0 -> 1 -> 0, 2 -> 2, 3 -> 0
        let deps = vec![vec![1], vec![0], vec![2], vec![0]];
        assert_eq!(find_cycles(&deps), vec![vec![0, 1, 0], vec![2, 2]]);
    }

    #[test]
    fn three_cycle_path_follows_edges() {
        // a(0) depends on c(2), c depends on b(1), b depends on a
        let deps = vec![vec![2], vec![0], vec![1]];
        assert_eq!(find_cycles(&deps), vec![vec![0, 2, 1, 0]]);
    }

    #[test]
    fn acyclic_has_no_cycles_and_orders() {
        let deps = vec![vec![], vec![0], vec![0, 1], vec![2]];
        assert!(find_cycles(&deps).is_empty());
        assert_eq!(topo_order(&deps), vec![0, 1, 2, 3]);
        assert_eq!(ancestors(&deps, 3), BTreeSet::from([0, 1, 2]));
    }
}
