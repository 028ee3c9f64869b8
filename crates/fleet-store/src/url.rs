//! Which database: `--database-url` / `FLEET_DATABASE_URL`, parsed once.
//! A URL's password never leaves this type in text: `Display` and `Debug`
//! print `***` in its place, so logs and errors can name the database.

use crate::StoreError;
use std::path::PathBuf;

#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// The embedded database file.
    Sqlite(PathBuf),
    /// `postgres://` or `postgresql://`, as given (password included).
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite://PATH` (relative paths are relative to the working
    /// directory), `postgres://…` or `postgresql://…`.
    pub fn parse(text: &str) -> Result<DatabaseUrl, StoreError> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::Invalid(
                    "`sqlite://` needs a path, e.g. sqlite://.fleet/fleet.db".into(),
                ));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            // Checked now, so a typo is reported before anything connects.
            text.parse::<tokio_postgres::Config>().map_err(|e| {
                StoreError::Invalid(format!(
                    "database URL {} is not a valid PostgreSQL URL: {e}",
                    redact(text)
                ))
            })?;
            return Ok(DatabaseUrl::Postgres(text.to_owned()));
        }
        Err(StoreError::Invalid(format!(
            "database URL `{}` is not one Fleet knows: use postgres://USER[:PASSWORD]@HOST[:PORT]/DB or sqlite://PATH",
            redact(text)
        )))
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// `scheme://user:***@host…`: the password (and any `password=` query
/// parameter) replaced; everything else kept so the database can be named.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let from = rest_start + colon + 1;
                let to = rest_start + at;
                out.replace_range(from..to, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query = query
            .split('&')
            .map(|kv| {
                if kv.to_ascii_lowercase().starts_with("password=") {
                    "password=***".to_owned()
                } else {
                    kv.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{head}{query}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let url = DatabaseUrl::parse(
            "postgres://fleet:hunter2@db.internal:5432/fleet?password=hunter2&application_name=x",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://fleet:***@db.internal:5432/fleet"),
            "{shown}"
        );
        assert!(shown.contains("application_name=x"));
        let bad = DatabaseUrl::parse("mysql://root:hunter2@h/db")
            .err()
            .map(|e| e.to_string());
        let bad = bad.unwrap_or_default();
        assert!(
            bad.contains("postgres://") && !bad.contains("hunter2"),
            "{bad}"
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://x/fleet.db").ok(),
            Some(DatabaseUrl::Sqlite("x/fleet.db".into()))
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
