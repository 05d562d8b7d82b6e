//! Database URLs: which dialect, how to show one without its password, how to connect.

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    #[error("unsupported database URL {0}: use sqlite://PATH, postgres://USER@HOST/DB or mysql://USER@HOST/DB")]
    Scheme(String),
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
}

impl Dialect {
    pub fn of(url: &str) -> Result<Dialect, UrlError> {
        let scheme = url.split(':').next().unwrap_or("");
        match scheme {
            "sqlite" => Ok(Dialect::Sqlite),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "mysql" | "mariadb" => Ok(Dialect::Mysql),
            _ => Err(UrlError::Scheme(redact(url))),
        }
    }

    /// Quotes an identifier. Identifiers come from the reference schema or a checked mapping,
    /// never from evidence.
    pub fn quote(self, ident: &str) -> String {
        match self {
            Dialect::Mysql => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }
}

/// Query parameters that carry a secret in the URLs the drivers take (`?password=` on PostgreSQL
/// and MySQL, libpq's spellings besides).
fn is_secret_param(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "password" | "pass" | "pwd" | "sslpassword" | "ssl-password"
    )
}

/// The URL with any password replaced by `***` (in the userinfo and in `?password=` and its
/// kin), safe for messages and logs. A URL with nothing secret is returned as given.
pub fn redact(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return redact_unparsed(url);
    };
    let mut changed = false;
    if u.password().is_some() {
        changed = u.set_password(Some("***")).is_ok();
    }
    if u.query_pairs().any(|(k, _)| is_secret_param(&k)) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_param(&k) {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        u.to_string()
    } else {
        url.to_string()
    }
}

/// What `url` would not parse as a URL still loses anything after `user:` in its authority.
fn redact_unparsed(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The secrets in `url`, as written and percent-decoded, for scrubbing messages.
fn secrets(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |s: &str| {
        if !s.is_empty() {
            out.push(s.to_string());
            if let Ok(d) = percent_decode(s) {
                if d != s {
                    out.push(d);
                }
            }
        }
    };
    match url::Url::parse(url) {
        Ok(u) => {
            if let Some(p) = u.password() {
                add(p);
            }
            for (k, v) in u.query_pairs() {
                if is_secret_param(&k) {
                    add(&v);
                }
            }
            // The query as written too: a value with `+` or `%` decodes to other text.
            for pair in u.query().unwrap_or("").split('&') {
                if let Some((k, v)) = pair.split_once('=') {
                    if is_secret_param(k) {
                        add(v);
                    }
                }
            }
        }
        Err(_) => {
            if let Some(p) = url
                .split_once("://")
                .and_then(|(_, rest)| rest.split('@').next())
                .and_then(|userinfo| userinfo.split_once(':'))
                .map(|(_, p)| p)
            {
                add(p);
            }
        }
    }
    // Longest first, so that a secret containing another is replaced whole.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// The database's own name, for a person to type before apply: the file name of a SQLite
/// database, the path of a server URL.
pub fn database_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let last = rest.rsplit('/').next().unwrap_or(rest);
    last.to_string()
}

/// Connects for reading. SQLite files are opened read-only; `mariadb://` is accepted as MySQL.
/// One connection, not a pool: a pool retries a refused connection until its timeout, and an
/// engineer mid-outage should hear at once that the database is unreachable.
pub async fn connect_read_only(url: &str) -> Result<AnyConnection, UrlError> {
    sqlx::any::install_default_drivers();
    let dialect = Dialect::of(url)?;
    let url_for_driver = match dialect {
        Dialect::Mysql if url.starts_with("mariadb:") => url.replacen("mariadb:", "mysql:", 1),
        Dialect::Sqlite if !url.contains("mode=") => {
            format!("{url}{}mode=ro", if url.contains('?') { '&' } else { '?' })
        }
        _ => url.to_string(),
    };
    let fail = |e: sqlx::Error| UrlError::Connect {
        url: redact(url),
        message: scrub(&e.to_string(), url),
    };
    let opts = AnyConnectOptions::from_str(&url_for_driver)
        .map_err(fail)?
        .disable_statement_logging();
    let mut conn = opts.connect().await.map_err(fail)?;
    // Every statement on this connection is read-only, not only those inside the baseline's
    // transaction: planning and drift must never write (invariant 1).
    let read_only: &[&str] = match dialect {
        Dialect::Postgres => &["SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"],
        // The same session zone as apply's, or TIMESTAMP columns would read differently here
        // than when apply re-reads them, and a fresh plan would be refused as stale.
        Dialect::Mysql => &["SET SESSION TRANSACTION READ ONLY", MYSQL_SESSION_ZONE],
        Dialect::Sqlite => &[],
    };
    for sql in read_only {
        sqlx::query(sqlx::AssertSqlSafe(*sql))
            .execute(&mut conn)
            .await
            .map_err(fail)?;
    }
    Ok(conn)
}

/// Every MySQL session of gapfill's, reading or writing, works in UTC: TIMESTAMP columns convert
/// from the session's zone, and the plan's instants are UTC.
pub(crate) const MYSQL_SESSION_ZONE: &str = "SET time_zone = '+00:00'";

/// Driver messages sometimes echo the URL; make sure a password never survives in them.
pub(crate) fn scrub(message: &str, url: &str) -> String {
    let redacted = redact(url);
    if redacted == url {
        return message.to_string();
    }
    let mut m = message.replace(url, &redacted);
    for secret in secrets(url) {
        m = m.replace(&secret, "***");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/prod"),
            "postgres://app:***@db:5432/prod"
        );
        assert_eq!(
            redact("mysql://root@127.0.0.1/test"),
            "mysql://root@127.0.0.1/test"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            redact("postgres://u:p%40ss@h/db?sslmode=require"),
            "postgres://u:***@h/db?sslmode=require"
        );
        assert_eq!(
            scrub(
                "error at postgres://u:hunter2@h/db: hunter2 refused",
                "postgres://u:hunter2@h/db"
            ),
            "error at postgres://u:***@h/db: *** refused"
        );
        assert_eq!(
            redact("postgres://app@db/prod?sslmode=require&password=s3cret"),
            "postgres://app@db/prod?sslmode=require&password=***"
        );
        assert_eq!(
            redact("mysql://app@db/prod?PASSWORD=s3cret"),
            "mysql://app@db/prod?PASSWORD=***"
        );
        let url = "postgres://u:p%40ss@h/db?password=a%2Bb";
        assert_eq!(
            scrub("p@ss and p%40ss and a+b and a%2Bb", url),
            "*** and *** and *** and ***"
        );
        // Not a URL the parser takes: the userinfo rule still holds.
        assert_eq!(redact("mysql://u:pw@[bad/db"), "mysql://u:***@[bad/db");
    }

    #[test]
    fn dialects_from_schemes() {
        assert_eq!(Dialect::of("sqlite://a.db").unwrap(), Dialect::Sqlite);
        assert_eq!(Dialect::of("postgresql://h/db").unwrap(), Dialect::Postgres);
        assert_eq!(Dialect::of("mariadb://h/db").unwrap(), Dialect::Mysql);
        assert!(Dialect::of("oracle://u:pw@h")
            .unwrap_err()
            .to_string()
            .contains("u:***@h"));
    }
}
