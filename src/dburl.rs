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

/// The URL with any password replaced by `***`, safe for messages and logs.
pub fn redact(url: &str) -> String {
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
    let read_only = match dialect {
        Dialect::Postgres => Some("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"),
        Dialect::Mysql => Some("SET SESSION TRANSACTION READ ONLY"),
        Dialect::Sqlite => None,
    };
    if let Some(sql) = read_only {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .map_err(fail)?;
    }
    Ok(conn)
}

/// Driver messages sometimes echo the URL; make sure a password never survives in them.
pub(crate) fn scrub(message: &str, url: &str) -> String {
    let redacted = redact(url);
    if redacted == url {
        return message.to_string();
    }
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('@').next())
        .and_then(|userinfo| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .unwrap_or("");
    let m = message.replace(url, &redacted);
    if password.is_empty() {
        m
    } else {
        m.replace(password, "***")
    }
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
