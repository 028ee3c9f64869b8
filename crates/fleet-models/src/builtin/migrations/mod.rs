//! Migrations: group files into migrations (`.up.sql`/`.down.sql` pairs,
//! Flyway `V`/`U` scripts, `up.sql`/`down.sql` directories, `up/`/`down/`
//! trees, single files, Liquibase changesets), then judge each by its
//! tool's own rules: how it rolls back (a written reverse, one the tool
//! derives, or none), what it destroys and what it rewrites, in the
//! forward direction only (a down migration dropping what its up created
//! is expected).
//!
//! One reader per tool family: `sql` (plain SQL, Flyway, Prisma, Sqitch),
//! `rails`, `python` (Alembic, Django), `js` (Knex, Sequelize, TypeORM, and
//! PHP's Laravel and Doctrine, which share the shape), `ecto`, `efcore`,
//! `liquibase`; `common` holds what they share and `rules` the line rules
//! that `spec.rs` holds to their regexes.

mod common;
mod ecto;
mod efcore;
mod js;
mod liquibase;
mod python;
mod rails;
mod rules;
mod sql;
#[cfg(test)]
mod tests;

// The line rules, for `spec.rs` to hold to their regexes.
#[cfg(test)]
pub(in crate::builtin) use rules::{
    WORDS, Word, def_line, is_js_down, is_scale_figure, is_sql_backfill, is_sql_statement,
    is_sql_up_marker, rails_irreversible_call, sql_destructive, sql_rollback_line,
};
pub(in crate::builtin) use rules::{flyway, is_sql_down_marker, leading_number};

use super::analysis::{Migration, cite};
use common::{Reverse, Scan};
use fleet_corpus::Document;
use std::collections::{BTreeMap, BTreeSet};

/// Is this corpus path a migration file this module understands? (A
/// Liquibase changelog is known by its text: see [`is_migration_doc`].)
pub(crate) fn is_migration(path: &str) -> bool {
    let lower = crate::text::ascii_lowercase(path);
    let (dir, file) = lower.rsplit_once('/').unwrap_or(("", &lower));
    let ext = file.rsplit_once('.').map_or("", |(_, e)| e);
    if !matches!(
        ext,
        "sql" | "rb" | "py" | "js" | "ts" | "exs" | "cs" | "php"
    ) {
        return false;
    }
    if matches!(
        file,
        "__init__.py" | "env.py" | "schema.rb" | "seeds.rb" | "schema.sql"
    ) || file.ends_with(".designer.cs")
        || file.ends_with("modelsnapshot.cs")
        || file.ends_with(".d.ts")
    {
        return false;
    }
    let in_migration_dir = dir.split('/').any(|seg| {
        matches!(
            seg,
            "migrations"
                | "migration"
                | "migrate"
                | "versions"
                | "db_migrations"
                | "sql_migrations"
        )
    });
    // Sqitch keeps its scripts in `deploy/` and `revert/` (and checks in `verify/`).
    let parent = dir.rsplit('/').next().unwrap_or(dir);
    let sqitch = ext == "sql" && matches!(parent, "deploy" | "revert");
    in_migration_dir
        || sqitch
        || (ext == "sql"
            && (flyway(file).is_some() || file.ends_with(".up.sql") || file.ends_with(".down.sql")))
}

/// [`is_migration`], or a Liquibase changelog (XML, YAML or formatted SQL).
pub(crate) fn is_migration_doc(doc: &Document) -> bool {
    is_migration(&doc.path) || liquibase::is_changelog(doc)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Up,
    Down,
    Single,
}

/// Which migration a file belongs to, and as which half.
fn role_and_key(path: &str) -> (Role, String, String) {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    for (suffix, role) in [
        (".up.sql", Role::Up),
        (".down.sql", Role::Down),
        (".undo.sql", Role::Down),
    ] {
        // `suffix` is lowercase: compared in place, not in a lowercased copy.
        let tail = file.get(file.len().saturating_sub(suffix.len())..);
        if file.len() > suffix.len() && tail.is_some_and(|tail| tail.eq_ignore_ascii_case(suffix)) {
            let stem = &file[..file.len() - suffix.len()];
            return (role, format!("{dir}/{stem}"), stem.to_string());
        }
    }
    let parent = dir.rsplit('/').next().unwrap_or(dir);
    match crate::text::ascii_lowercase(file).as_ref() {
        "up.sql" => return (Role::Up, dir.to_string(), parent.to_string()),
        "down.sql" => return (Role::Down, dir.to_string(), parent.to_string()),
        // Prisma: one `migration.sql` per migration directory, named by it.
        "migration.sql" => return (Role::Single, path.to_string(), parent.to_string()),
        _ => {}
    }
    if let Some((kind, version)) = flyway(file) {
        let role = if kind.eq_ignore_ascii_case(&b'u') {
            Role::Down
        } else {
            Role::Up
        };
        let name = file.trim_end_matches(".sql");
        let name = if role == Role::Down {
            format!("V{}", name.get(1..).unwrap_or(""))
        } else {
            name.to_string()
        };
        return (role, format!("{dir}/flyway:{version}"), name);
    }
    let grandparent = dir.rsplit_once('/').map_or("", |(g, _)| g);
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    match crate::text::ascii_lowercase(parent).as_ref() {
        "down" | "rollback" | "rollbacks" | "undo" | "revert" => {
            return (
                Role::Down,
                format!("{grandparent}/{file}"),
                stem.to_string(),
            );
        }
        "up" | "deploy" => return (Role::Up, format!("{grandparent}/{file}"), stem.to_string()),
        _ => {}
    }
    (Role::Single, path.to_string(), stem.to_string())
}

#[derive(Default)]
struct Unit<'d> {
    name: String,
    up: Option<&'d Document>,
    down: Option<&'d Document>,
    single: Option<&'d Document>,
}

/// What the whole corpus says about how a directory's migrations roll back.
#[derive(Default)]
struct Context {
    /// Migration roots ([`root_of`]) where some migration has a down file
    /// or a down section.
    with_downs: BTreeSet<String>,
    /// Directories holding Flyway undo (`U`) scripts, with the lowest
    /// version that has one: undo scripts are kept from then on, so an older
    /// `V` without one predates the convention rather than missing its undo.
    with_undo: BTreeMap<String, Vec<u64>>,
    /// Directories holding Flyway versioned (`V`) scripts.
    flyway: BTreeSet<String>,
}

/// A Flyway version (`2.1`, `2_1`, `20240101`) as numbers, for ordering.
fn flyway_version(text: &str) -> Vec<u64> {
    text.split(['.', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(u64::MAX))
        .collect()
}

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

fn file_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The directory holding a project's migrations: a file's own directory,
/// or its grandparent in the `<name>/up.sql` and `up/<name>.sql` layouts.
fn root_of(path: &str) -> &str {
    let dir = dir_of(path);
    let file = file_of(path).to_ascii_lowercase();
    let parent = file_of(dir).to_ascii_lowercase();
    let nested = matches!(file.as_str(), "up.sql" | "down.sql")
        || matches!(
            parent.as_str(),
            "up" | "down" | "rollback" | "rollbacks" | "undo" | "revert" | "deploy"
        );
    if nested { dir_of(dir) } else { dir }
}

/// Groups migration files into migrations and judges each.
pub(crate) fn analyze(docs: &[&Document]) -> Vec<Migration> {
    let mut judged = Vec::new();
    // The map holds indexes: a `Unit` is large, and a B-tree shifts its
    // values around as keys arrive.
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    let mut units: Vec<Unit<'_>> = Vec::new();
    let mut context = Context::default();
    for doc in docs {
        if liquibase::is_changelog(doc) {
            for (name, scan) in liquibase::read(doc) {
                judged.extend(build(name, None, vec![doc.path.clone()], scan));
            }
            continue;
        }
        let (role, key, name) = role_and_key(&doc.path);
        if role == Role::Down {
            context.with_downs.insert(root_of(&doc.path).to_string());
            if let Some((_, version)) = flyway(file_of(&doc.path)) {
                let version = flyway_version(version);
                context
                    .with_undo
                    .entry(dir_of(&doc.path).to_string())
                    .and_modify(|first| {
                        if version < *first {
                            *first = version.clone();
                        }
                    })
                    .or_insert(version);
            }
        } else if flyway(file_of(&doc.path)).is_some() {
            context.flyway.insert(dir_of(&doc.path).to_string());
        }
        if role == Role::Single
            && doc.path.to_ascii_lowercase().ends_with(".sql")
            && crate::text::lines(&doc.text).any(|l| is_sql_down_marker(l.as_bytes()))
        {
            context.with_downs.insert(root_of(&doc.path).to_string());
        }
        let index = *keys.entry(key).or_insert_with(|| {
            units.push(Unit::default());
            units.len() - 1
        });
        let unit = &mut units[index];
        if unit.name.is_empty() || role != Role::Down {
            unit.name = name;
        }
        match role {
            Role::Up => unit.up = Some(doc),
            Role::Down => unit.down = Some(doc),
            Role::Single => unit.single = Some(doc),
        }
    }
    judged.extend(
        keys.into_values()
            .filter_map(|index| judge(std::mem::take(&mut units[index]), &context)),
    );
    // Corpus order (by path of the forward file) reads most naturally; the
    // sort is stable, so a changelog's changesets keep their order.
    judged.sort_by(|a, b| a.files.first().cmp(&b.files.first()));
    judged
}

/// Reads a single migration file with its tool's reader.
fn scan_single(doc: &Document) -> Scan {
    let lower = crate::text::ascii_lowercase(&doc.path);
    let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "rb" => rails::scan(doc),
        "py" if python::is_django(&doc.text) => python::scan_django(doc),
        "py" => python::scan_alembic(doc),
        // Laravel and Doctrine migrations are PHP classes with up()/down() methods.
        "js" | "ts" | "php" => js::scan(doc),
        "exs" => ecto::scan(doc),
        "cs" => efcore::scan(doc),
        _ => sql::scan_forward(doc),
    }
}

/// The first line with anything on it, for a citation when nothing else fits.
fn first_line(doc: &Document) -> Option<fleet_core::flags::Citation> {
    common::numbered(&doc.text)
        .into_iter()
        .find(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| cite(&doc.path, n, l))
}

/// Prisma Migrate's layout: `migrations/<14-digit timestamp>_<name>/migration.sql`.
fn is_prisma(path: &str) -> bool {
    let parent = file_of(dir_of(path));
    let digits = parent.bytes().take_while(u8::is_ascii_digit).count();
    path.contains("prisma/") || (digits == 14 && parent.as_bytes().get(14) == Some(&b'_'))
}

fn judge(unit: Unit<'_>, context: &Context) -> Option<Migration> {
    let number = leading_number(&unit.name)
        .map(str::to_string)
        .or_else(|| flyway(&format!("{}.sql", unit.name)).map(|(_, version)| version.to_string()));
    let paired = unit.up.is_some();
    // A down file whose up is not in the corpus: nothing to judge.
    let forward_doc = unit.up.or(unit.single)?;
    let file = file_of(&forward_doc.path).to_ascii_lowercase();
    // Beside Flyway's scripts, a SQL file that is neither `V`, `U` nor `R__`
    // is a callback (`afterMigrate.sql`) or a stray file Flyway skips.
    if !paired
        && file.ends_with(".sql")
        && !file.starts_with("r__")
        && context.flyway.contains(dir_of(&forward_doc.path))
    {
        return None;
    }
    let mut scan = if paired {
        sql::scan_forward(forward_doc)
    } else {
        scan_single(forward_doc)
    };
    let mut files = vec![forward_doc.path.clone()];
    if let Some(down) = unit.down {
        files.push(down.path.clone());
        // An empty down file has no line of its own to cite.
        let fallback = scan
            .first_risk()
            .or_else(|| first_line(down))
            .or_else(|| first_line(forward_doc))?;
        scan.reverse = sql::reverse_of_file(down, fallback);
    } else if let Reverse::Missing { reason, .. } = &scan.reverse {
        scan.reverse = missing(reason, forward_doc, &unit.name, paired, context);
    }
    build(unit.name, number, files, scan)
}

/// What a migration without a reverse lacks, by its tool's convention, and
/// whether that is by design (forward-only: Prisma, Flyway without undo
/// scripts, a directory whose migrations all lack downs). `scanned` is the
/// reader's own phrase (`no \`def down\``) for code migrations.
fn missing(
    scanned: &str,
    forward_doc: &Document,
    name: &str,
    paired: bool,
    context: &Context,
) -> Reverse {
    let path = forward_doc.path.as_str();
    let file = file_of(path);
    let lower = file.to_ascii_lowercase();
    let sql = lower.ends_with(".sql");
    let (reason, forward_only) = if let Some((_, version)) = flyway(file).filter(|_| paired) {
        let first_undo = context.with_undo.get(dir_of(path));
        if first_undo.is_some_and(|first| flyway_version(version) >= *first) {
            ("no undo (U) script".to_string(), false)
        } else if first_undo.is_some() {
            (
                "no undo (U) script (it predates the project's first undo script)".to_string(),
                true,
            )
        } else {
            (
                "no undo (U) script (the project keeps none: it migrates forward only)".to_string(),
                true,
            )
        }
    } else if paired && context.with_downs.contains(root_of(path)) {
        (format!("no down migration (`{name}.down.sql`)"), false)
    } else if paired {
        (
            "no down migration (none of the migrations beside it has one: forward-only)"
                .to_string(),
            true,
        )
    } else if sql && lower.starts_with("r__") {
        (
            "no undo (a repeatable script, re-applied when it changes)".to_string(),
            true,
        )
    } else if sql && lower == "migration.sql" && is_prisma(path) {
        (
            "no down migration (Prisma Migrate is forward-only)".to_string(),
            true,
        )
    } else if sql && context.with_downs.contains(root_of(path)) {
        ("no down/rollback section".to_string(), false)
    } else if sql {
        (
            "no down/rollback section (the migrations beside it have none: forward-only)"
                .to_string(),
            true,
        )
    } else {
        (scanned.to_string(), false)
    };
    Reverse::Missing {
        reason,
        forward_only,
    }
}

/// A judged migration. A file whose forward direction runs nothing and
/// that has no reverse either (a helper module in a migrations directory)
/// is no migration; one with an empty reverse too (an Alembic merge
/// revision: `upgrade()` and `downgrade()` both `pass`) has nothing to lose.
fn build(
    name: String,
    number: Option<String>,
    files: Vec<String>,
    mut scan: Scan,
) -> Option<Migration> {
    if scan.first_statement.is_none() && scan.destructive.is_empty() {
        match &scan.reverse {
            Reverse::Missing { .. } => return None,
            Reverse::Broken { at, .. } => {
                scan.reverse = Reverse::Written {
                    reason: "nothing to roll back (it runs no statement)".into(),
                    at: at.clone(),
                };
            }
            _ => {}
        }
    }
    let (reversible, forward_only, noop_reverse, reason, evidence) = match scan.reverse.clone() {
        Reverse::Written { reason, at } | Reverse::Auto { reason, at } => {
            (true, false, false, reason, at)
        }
        Reverse::Noop { reason, at } => (true, false, true, reason, at),
        Reverse::Broken { reason, at } => (false, false, false, reason, at),
        Reverse::Missing {
            reason,
            forward_only,
        } => {
            let at = scan.first_risk()?;
            (false, forward_only, false, reason, at)
        }
    };
    Some(Migration {
        name,
        number,
        files,
        reversible,
        forward_only,
        noop_reverse,
        reason,
        evidence,
        destructive: scan.destructive,
        backfill: scan.backfill,
        scale: scan.scale,
        hazards: scan.hazards,
    })
}
