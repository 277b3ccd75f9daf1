//! Configuration: API.md's environment variables, read once at start.
//!
//! [`Config::from_vars`] is a pure function of a lookup, so tests pass a map instead of touching the process
//! environment; [`Config::from_env`] feeds it the real one. A bad value is an error that names its variable.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// Everything the service needs to start, with API.md's defaults. `Debug` shows no secret: [`Secret`] hides its
/// value.
#[derive(Clone, Debug)]
pub struct Config {
    /// `HOST`: the address to bind.
    pub host: IpAddr,
    /// `PORT`: the TCP port; 0 asks the OS for a free one.
    pub port: u16,
    /// `DATABASE_PATH`: the SQLite file, created and migrated on start.
    pub database_path: PathBuf,
    /// `API_KEY`: the value every protected request must send in `X-API-Key`.
    pub api_key: Secret,
    /// `JWT_SECRET`: the HS256 key; `None` means "generate one at start".
    pub jwt_secret: Option<Secret>,
    /// `TOKEN_TTL_MINUTES`: how long an access token lives.
    pub token_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8000,
            database_path: PathBuf::from("tasky.db"),
            api_key: Secret::from("123456"),
            jwt_secret: None,
            token_ttl: Duration::from_secs(30 * 60),
        }
    }
}

/// Longest token lifetime accepted: one year.
const MAX_TTL_MINUTES: u64 = 365 * 24 * 60;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads the variables through `lookup`; unset and empty variables take their defaults.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let mut config = Self::default();

        if let Some(raw) = var("HOST") {
            config.host = raw
                .trim()
                .parse()
                .map_err(|_| ConfigError::new("HOST", format!("not an IP address: {raw:?}")))?;
        }
        if let Some(raw) = var("PORT") {
            config.port = raw.trim().parse().map_err(|_| {
                ConfigError::new("PORT", format!("not a port number (0-65535): {raw:?}"))
            })?;
        }
        if let Some(raw) = var("DATABASE_PATH") {
            if raw == ":memory:" || raw.starts_with("file:") {
                return Err(ConfigError::new(
                    "DATABASE_PATH",
                    format!(
                        "must be a file path, not {raw:?}: every pooled connection needs the same database"
                    ),
                ));
            }
            config.database_path = PathBuf::from(raw);
        }
        if let Some(raw) = var("API_KEY") {
            // Header values are visible ASCII; a key with anything else could never be sent.
            if !raw.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    "API_KEY",
                    "must be printable ASCII without spaces",
                ));
            }
            config.api_key = Secret::from(raw.as_str());
        }
        if let Some(raw) = var("JWT_SECRET") {
            config.jwt_secret = Some(Secret::from(raw.as_str()));
        }
        if let Some(raw) = var("TOKEN_TTL_MINUTES") {
            let minutes: u64 = raw.trim().parse().map_err(|_| {
                ConfigError::new(
                    "TOKEN_TTL_MINUTES",
                    format!("not a whole number of minutes: {raw:?}"),
                )
            })?;
            if !(1..=MAX_TTL_MINUTES).contains(&minutes) {
                return Err(ConfigError::new(
                    "TOKEN_TTL_MINUTES",
                    format!("must be between 1 and {MAX_TTL_MINUTES}, got {minutes}"),
                ));
            }
            config.token_ttl = Duration::from_secs(minutes * 60);
        }
        Ok(config)
    }
}

/// A configuration value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The bytes themselves.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(value: Vec<u8>) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A variable with a value the service cannot start with. Displays as one line naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    /// The variable at fault.
    pub var: &'static str,
    reason: String,
}

impl ConfigError {
    /// An error about `var`.
    pub fn new(var: &'static str, reason: impl Into<String>) -> Self {
        Self {
            var,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(|name| map.get(name).cloned())
    }

    fn rejected(vars: &[(&str, &str)]) -> &'static str {
        parse(vars).expect_err("should be refused").var
    }

    #[test]
    fn no_variables_give_the_documented_defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.host, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(config.port, 8000);
        assert_eq!(config.database_path, PathBuf::from("tasky.db"));
        assert_eq!(config.api_key.expose(), b"123456");
        assert!(config.jwt_secret.is_none());
        assert_eq!(config.token_ttl, Duration::from_secs(1800));
    }

    #[test]
    fn every_variable_is_read() {
        let config = parse(&[
            ("HOST", "0.0.0.0"),
            ("PORT", "9000"),
            ("DATABASE_PATH", "/data/tasky.db"),
            ("API_KEY", "k-e-y"),
            ("JWT_SECRET", "a-secret-of-a-decent-length-0123456789"),
            ("TOKEN_TTL_MINUTES", "5"),
        ])
        .unwrap();
        assert_eq!(config.host, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(config.port, 9000);
        assert_eq!(config.database_path, PathBuf::from("/data/tasky.db"));
        assert_eq!(config.api_key.expose(), b"k-e-y");
        assert_eq!(
            config.jwt_secret.unwrap().expose(),
            b"a-secret-of-a-decent-length-0123456789"
        );
        assert_eq!(config.token_ttl, Duration::from_secs(300));
    }

    #[test]
    fn empty_variables_take_the_default() {
        let config = parse(&[("PORT", ""), ("API_KEY", ""), ("JWT_SECRET", "")]).unwrap();
        assert_eq!(config.port, 8000);
        assert_eq!(config.api_key.expose(), b"123456");
        assert!(config.jwt_secret.is_none());
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(rejected(&[("PORT", "eighty")]), "PORT");
        assert_eq!(rejected(&[("PORT", "65536")]), "PORT");
        assert_eq!(rejected(&[("PORT", "-1")]), "PORT");
        assert_eq!(rejected(&[("HOST", "example.com")]), "HOST");
        assert_eq!(rejected(&[("TOKEN_TTL_MINUTES", "0")]), "TOKEN_TTL_MINUTES");
        assert_eq!(
            rejected(&[("TOKEN_TTL_MINUTES", "ten")]),
            "TOKEN_TTL_MINUTES"
        );
        assert_eq!(
            rejected(&[("TOKEN_TTL_MINUTES", "99999999999999999999")]),
            "TOKEN_TTL_MINUTES"
        );
        assert_eq!(rejected(&[("DATABASE_PATH", ":memory:")]), "DATABASE_PATH");
        assert_eq!(
            rejected(&[("DATABASE_PATH", "file::memory:?cache=shared")]),
            "DATABASE_PATH"
        );
        assert_eq!(rejected(&[("API_KEY", "with space")]), "API_KEY");
    }

    #[test]
    fn the_error_is_one_line_that_starts_with_the_variable() {
        let message = parse(&[("PORT", "eighty")]).unwrap_err().to_string();
        assert!(message.starts_with("PORT: "), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let config = parse(&[
            ("API_KEY", "visible-key"),
            ("JWT_SECRET", "visible-jwt-secret"),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("visible"), "{debug}");
    }
}
