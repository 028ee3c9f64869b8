//! The analyst against its answer keys (tests/fixtures/analyst): fails when
//! recall of must-find facts drops below 95%, when more than 5% of the
//! must-not-flag lines are flagged, or when any citation misquotes its line.
//! `cargo run -p fleet-models --example analyst_eval` prints the same table.

mod analyst;

#[test]
fn the_analyst_meets_its_answer_keys() {
    let names = analyst::fixture_names();
    assert!(
        !names.is_empty(),
        "no fixtures under {}",
        analyst::fixtures_dir().display()
    );
    let evaluation = analyst::evaluate();
    let table = evaluation.table();
    println!("{table}");
    assert!(evaluation.meets_targets(), "below the targets:\n{table}");
}

#[test]
fn every_key_names_lines_that_exist() {
    for name in analyst::fixture_names() {
        let key = analyst::load_key(&name);
        let corpus = analyst::corpus_of(&name, &key);
        let lines_of = |path: &str| {
            corpus
                .documents
                .iter()
                .find(|d| d.path == path)
                .map(|d| d.text.lines().count() as u64)
                .unwrap_or_else(|| panic!("{name}: key names {path}, not in the corpus"))
        };
        for fact in &key.must_find {
            let n = lines_of(&fact.path);
            assert!(
                !fact.lines.is_empty(),
                "{name}: {} names no line",
                fact.fact
            );
            for &l in &fact.lines {
                assert!(
                    (1..=n).contains(&l),
                    "{name}: {}:{l} is past the end",
                    fact.path
                );
            }
        }
        for q in &key.must_not_flag {
            let n = lines_of(&q.path);
            if let Some(l) = q.line {
                assert!(
                    (1..=n).contains(&l),
                    "{name}: {}:{l} is past the end",
                    q.path
                );
            }
        }
    }
}
