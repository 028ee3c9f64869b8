//! `fleet migrate` and `fleet db copy`: the database's schema and moving an
//! embedded installation to PostgreSQL.

use crate::context::database_url;
use crate::workspace::{Locator, UsageError};
use anyhow::{Context, Result, bail};
use fleet_store::{DatabaseUrl, PostgresStore, SqliteStore};
use std::process::ExitCode;

/// The database `--database-url` names, else the workspace's embedded one.
fn target(locator: &Locator) -> Result<DatabaseUrl> {
    match &locator.database_url {
        Some(text) => database_url(locator, text),
        None => {
            let ws = locator.load()?;
            Ok(DatabaseUrl::Sqlite(ws.root.join(".fleet/fleet.db")))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn migrate(locator: &Locator) -> Result<ExitCode> {
    let url = target(locator)?;
    runtime()?.block_on(async {
        match &url {
            DatabaseUrl::Postgres(text) => {
                let applied = PostgresStore::migrate(text)
                    .await
                    .with_context(|| format!("cannot migrate {url}"))?;
                if applied.is_empty() {
                    println!(
                        "{url}: schema already at version {} (nothing to do)",
                        fleet_store::schema_version_known()
                    );
                }
                for (version, name) in applied {
                    println!("{url}: applied migration {version} ({name})");
                }
            }
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                // The embedded database migrates itself when opened.
                SqliteStore::open(path)
                    .await
                    .with_context(|| format!("cannot open {url}"))?;
                println!("{url}: schema up to date");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn copy(locator: &Locator, from: &str, to: &str) -> Result<ExitCode> {
    let DatabaseUrl::Sqlite(source) = database_url(locator, from)? else {
        bail!(UsageError(
            "--from must be the embedded database, e.g. sqlite://.fleet/fleet.db".into()
        ));
    };
    let target = database_url(locator, to)?;
    let DatabaseUrl::Postgres(target_text) = &target else {
        bail!(UsageError(
            "--to must be a PostgreSQL database, e.g. postgres://fleet@db/fleet".into()
        ));
    };
    runtime()?.block_on(async {
        let report = fleet_store::copy_sqlite_to_postgres(&source, target_text)
            .await
            .with_context(|| format!("cannot copy {} to {target}", source.display()))?;
        for (table, rows) in &report.tables {
            println!("  {table:<20} {rows} rows");
        }
        if let Some(problem) = &report.audit.first_problem {
            bail!("copied, but the audit chain on {target} does not verify: {problem}");
        }
        println!(
            "Copied {} to {target}; audit chain verified ({} events, {} artifacts).",
            source.display(),
            report.audit.events_checked,
            report.audit.artifacts_checked
        );
        Ok(ExitCode::SUCCESS)
    })
}
