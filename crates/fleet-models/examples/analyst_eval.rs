//! Prints how the builtin analyst scores against its answer keys
//! (tests/fixtures/analyst): recall and precision per fixture and overall,
//! then every miss, false flag and bad citation by fixture and fact.
//!
//! ```sh
//! cargo run -p fleet-models --example analyst_eval            # every fixture
//! cargo run -p fleet-models --example analyst_eval -- rails   # fixtures whose name contains "rails"
//! ```
//! Exits 1 below the targets (recall >= 95%, <= 5% of must-not-flag lines flagged, no bad citation).

#[path = "../tests/analyst/mod.rs"]
mod analyst;

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let evaluation = analyst::Evaluation {
        fixtures: analyst::fixture_names()
            .iter()
            .filter(|n| n.contains(&filter))
            .map(|n| analyst::score(n))
            .collect(),
    };
    print!("{}", evaluation.table());
    // FLEET_EVAL_SHOW=1 also prints each fixture's report and flags.
    if std::env::var_os("FLEET_EVAL_SHOW").is_some() {
        for name in analyst::fixture_names()
            .iter()
            .filter(|n| n.contains(&filter))
        {
            let key = analyst::load_key(name);
            let (report, flags, _) = analyst::run_fixture(name, &key);
            println!("\n===== {name}\n{report}");
            for f in &flags.flags {
                let at: Vec<String> = f
                    .evidence
                    .iter()
                    .map(|c| format!("{}:{}", c.path, c.line))
                    .collect();
                println!(
                    "{} {} {} [{}]",
                    f.id,
                    f.severity.as_str(),
                    f.claim,
                    at.join(", ")
                );
            }
        }
    }
    if !evaluation.meets_targets() {
        std::process::exit(1);
    }
}
