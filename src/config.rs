//! The config file (`--config`, or `./gapfill.toml` when present): the mapping, the database and
//! the sources of one incident, so that commands need no long lists of flags (SPEC §4). Flags
//! override it; relative paths in it are relative to the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    mapping: Option<String>,
    database: Option<String>,
    #[serde(default)]
    sources: SourcesFile,
    #[serde(default)]
    drift: DriftFile,
    /// What the simulator records about an incident it wrote; for people and `evaluate`.
    #[serde(default)]
    #[allow(dead_code)]
    incident: Option<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourcesFile {
    #[serde(default)]
    stripe: Paths,
    #[serde(default)]
    stripe_api: bool,
    #[serde(default)]
    calendar: Paths,
    #[serde(default)]
    mail: Paths,
    #[serde(default)]
    csv: Paths,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DriftFile {
    /// The ignore file of known and accepted differences.
    ignore: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Paths {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Paths {
    fn resolve(self, base: &Path) -> Vec<PathBuf> {
        let list = match self {
            Paths::None => Vec::new(),
            Paths::One(p) => vec![p],
            Paths::Many(v) => v,
        };
        list.into_iter().map(|p| base.join(p)).collect()
    }
}

/// What one run works on, after the file and the flags.
#[derive(Debug, Default, Clone)]
pub struct Config {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    pub mapping: Option<PathBuf>,
    pub database: Option<String>,
    pub stripe: Vec<PathBuf>,
    pub stripe_api: bool,
    pub calendar: Vec<PathBuf>,
    pub mail: Vec<PathBuf>,
    pub csv: Vec<PathBuf>,
    /// `gapfill drift`'s ignore file.
    pub drift_ignore: Option<PathBuf>,
}

impl Config {
    /// Reads `explicit`, or `./gapfill.toml` when it exists, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let default = PathBuf::from("gapfill.toml");
                if !default.is_file() {
                    return Ok(Config::default());
                }
                default
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        Config::parse(&path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| {
            let at = crate::mapping::Locator::new(path, text).problem(
                e.span().map(|s| s.start).unwrap_or(0),
                crate::mapping::Severity::Error,
                e.message().trim().to_string(),
            );
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line: at.line,
                column: at.column,
                message: at.message,
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        Ok(Config {
            file: Some(path.to_path_buf()),
            mapping: file.mapping.map(|m| base.join(m)),
            database: file.database.map(|d| relative_sqlite(&d, base)),
            stripe: file.sources.stripe.resolve(base),
            stripe_api: file.sources.stripe_api,
            calendar: file.sources.calendar.resolve(base),
            mail: file.sources.mail.resolve(base),
            csv: file.sources.csv.resolve(base),
            drift_ignore: file.drift.ignore.map(|p| base.join(p)),
        })
    }
}

/// `sqlite://restored.db` in a config file means the file beside the config.
fn relative_sqlite(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite://") {
        Some(rest) if !rest.starts_with('/') && !rest.starts_with(':') => {
            format!("sqlite://{}", base.join(rest).display())
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_file() {
        let c = Config::parse(
            Path::new("/inc/gapfill.toml"),
            "mapping = \"m.toml\"\ndatabase = \"sqlite://restored.db\"\n[sources]\nstripe = \"evidence/stripe\"\nmail = [\"a.mbox\", \"/abs/b.mbox\"]\n[incident]\nseed = 1\n",
        )
        .unwrap();
        assert_eq!(c.mapping, Some(PathBuf::from("/inc/m.toml")));
        assert_eq!(c.database.as_deref(), Some("sqlite:///inc/restored.db"));
        assert_eq!(c.stripe, vec![PathBuf::from("/inc/evidence/stripe")]);
        assert_eq!(
            c.mail,
            vec![PathBuf::from("/inc/a.mbox"), PathBuf::from("/abs/b.mbox")]
        );
        assert!(c.calendar.is_empty());
        let pg = Config::parse(Path::new("g.toml"), "database = \"postgres://h/db\"\n").unwrap();
        assert_eq!(pg.database.as_deref(), Some("postgres://h/db"));
    }

    #[test]
    fn mistakes_are_located() {
        let e = Config::parse(
            Path::new("g.toml"),
            "mapping = \"m\"\n[sources]\nmial = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("g.toml:3:1: unknown field `mial`"), "{e}");
    }
}
