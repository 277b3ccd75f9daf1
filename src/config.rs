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
    /// `DATABASE_PATH` or `DATABASE_URL`: where the data lives.
    pub database: DatabaseConfig,
    /// `API_KEY`: the value every protected request must send in `X-API-Key`.
    pub api_key: Secret,
    /// `JWT_SECRET`: the HS256 key; `None` means "generate one at start".
    pub jwt_secret: Option<Secret>,
    /// `JWT_SECRET_PREVIOUS`: an earlier `JWT_SECRET`, still accepted when verifying, never used to sign.
    pub jwt_secret_previous: Option<Secret>,
    /// `TOKEN_TTL_MINUTES`: how long an access token lives.
    pub token_ttl: Duration,
    /// `REFRESH_TOKEN_TTL_DAYS`: how long a refresh token lives; a session whose refresh token expires ends.
    pub refresh_ttl: Duration,
    /// `CORS_ORIGINS`: which browser origins may call the API.
    pub cors_origins: CorsOrigins,
    /// `LOGIN_RATE_LIMIT`: failed logins allowed per minute for one username from one address (10x that per
    /// address); 0 turns the limit off.
    pub login_rate_limit: u32,
    /// `TRUST_PROXY`: where the client address comes from.
    pub trust_proxy: TrustProxy,
}

/// Where a request's client address comes from (`TRUST_PROXY`). It keys the login rate limit, the per-address
/// connection cap and the access log, so a client must never be able to pick it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TrustProxy {
    /// `false`: the socket peer; clients connect directly.
    #[default]
    No,
    /// `true`: the last `X-Forwarded-For` entry, the one the trusted proxy appended. Entries before it are
    /// whatever the client sent.
    LastForwardedFor,
    /// A header name (lowercase), such as `x-real-ip`, that the proxy sets itself and clients cannot.
    Header(String),
}

impl TrustProxy {
    /// Whether the socket peer is a proxy speaking for many clients.
    pub fn behind_proxy(&self) -> bool {
        *self != Self::No
    }
}

/// Where the data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// `DATABASE_PATH`: an SQLite file, created and migrated on start.
    Sqlite(PathBuf),
    /// `DATABASE_URL`: a PostgreSQL database, migrated on start.
    Postgres(PostgresUrl),
}

/// Most connections one process opens to PostgreSQL unless `DATABASE_POOL_SIZE` says otherwise: enough to keep
/// both cores busy while some queries wait on the network, and few enough that a dozen replicas stay well
/// inside PostgreSQL's default `max_connections` of 100.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// A PostgreSQL URL and the pool to open on it. `Debug` hides the URL, which may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    url: String,
    /// `DATABASE_POOL_SIZE`.
    pub pool_size: usize,
}

impl PostgresUrl {
    /// A URL of the `postgres://` or `postgresql://` scheme; its parts are checked when the store connects.
    pub fn new(url: impl Into<String>, pool_size: usize) -> Self {
        Self {
            url: url.into(),
            pool_size,
        }
    }

    /// The URL itself, password included: for the store alone.
    pub fn expose(&self) -> &str {
        &self.url
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl(<redacted>, pool_size: {})", self.pool_size)
    }
}

/// The origins allowed to call the API from a browser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers at all: browsers keep other origins out.
    #[default]
    None,
    /// `*`: any origin.
    Any,
    /// These origins exactly (scheme, host and port, as browsers send `Origin`).
    List(Vec<String>),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8000,
            database: DatabaseConfig::Sqlite(PathBuf::from("tasky.db")),
            api_key: Secret::from("123456"),
            jwt_secret: None,
            jwt_secret_previous: None,
            token_ttl: Duration::from_secs(30 * 60),
            refresh_ttl: Duration::from_secs(30 * DAY_SECS),
            cors_origins: CorsOrigins::None,
            login_rate_limit: 10,
            trust_proxy: TrustProxy::No,
        }
    }
}

/// The shortest `JWT_SECRET` accepted: HS256 keys should be at least as long as its 256-bit output (RFC 7518
/// §3.2), and a shorter secret is within reach of offline guessing from any one token.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Longest token lifetime accepted: one year.
const MAX_TTL_MINUTES: u64 = 365 * 24 * 60;

/// The longest `REFRESH_TOKEN_TTL_DAYS` accepted: ten years.
const MAX_REFRESH_TTL_DAYS: u64 = 3650;

const DAY_SECS: u64 = 24 * 60 * 60;

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
            config.database = DatabaseConfig::Sqlite(PathBuf::from(raw));
        }
        let pool_size = match var("DATABASE_POOL_SIZE") {
            None => DEFAULT_POOL_SIZE,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(size @ 1..=1000) => size,
                _ => {
                    return Err(ConfigError::new(
                        "DATABASE_POOL_SIZE",
                        format!("not a whole number from 1 to 1000: {raw:?}"),
                    ));
                }
            },
        };
        if let Some(raw) = var("DATABASE_URL") {
            let raw = raw.trim();
            if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
                // The value is not echoed: it may hold a password.
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "not a PostgreSQL URL (postgres://user:password@host:port/dbname?sslmode=...)",
                ));
            }
            config.database = DatabaseConfig::Postgres(PostgresUrl::new(raw, pool_size));
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
        let jwt_secret = |name: &'static str| -> Result<Option<Secret>, ConfigError> {
            let Some(raw) = var(name) else {
                return Ok(None);
            };
            if raw.len() < MIN_JWT_SECRET_BYTES {
                return Err(ConfigError::new(
                    name,
                    format!(
                        "must be at least {MIN_JWT_SECRET_BYTES} bytes, got {} (e.g. `openssl rand -base64 48`)",
                        raw.len()
                    ),
                ));
            }
            Ok(Some(Secret::from(raw.as_str())))
        };
        config.jwt_secret = jwt_secret("JWT_SECRET")?;
        config.jwt_secret_previous = jwt_secret("JWT_SECRET_PREVIOUS")?;
        if config.jwt_secret_previous.is_some() && config.jwt_secret.is_none() {
            return Err(ConfigError::new(
                "JWT_SECRET_PREVIOUS",
                "set without JWT_SECRET: it is the secret JWT_SECRET replaced",
            ));
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
        if let Some(raw) = var("REFRESH_TOKEN_TTL_DAYS") {
            let days: u64 = raw.trim().parse().map_err(|_| {
                ConfigError::new(
                    "REFRESH_TOKEN_TTL_DAYS",
                    format!("not a whole number of days: {raw:?}"),
                )
            })?;
            if !(1..=MAX_REFRESH_TTL_DAYS).contains(&days) {
                return Err(ConfigError::new(
                    "REFRESH_TOKEN_TTL_DAYS",
                    format!("must be between 1 and {MAX_REFRESH_TTL_DAYS}, got {days}"),
                ));
            }
            config.refresh_ttl = Duration::from_secs(days * DAY_SECS);
        }
        if let Some(raw) = var("CORS_ORIGINS") {
            config.cors_origins = parse_origins(&raw)?;
        }
        if let Some(raw) = var("LOGIN_RATE_LIMIT") {
            config.login_rate_limit = raw.trim().parse().map_err(|_| {
                ConfigError::new(
                    "LOGIN_RATE_LIMIT",
                    format!("not a whole number (0 turns it off): {raw:?}"),
                )
            })?;
        }
        if let Some(raw) = var("TRUST_PROXY") {
            config.trust_proxy = parse_trust_proxy(&raw)?;
        }
        if matches!(config.database, DatabaseConfig::Postgres(_)) && config.jwt_secret.is_none() {
            return Err(ConfigError::new(
                "JWT_SECRET",
                "required with DATABASE_URL: every process on the database must verify the others' tokens",
            ));
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

/// `true`, `false`, or the name of the header the proxy sets. A name must be an HTTP token (RFC 9110 §5.6.2),
/// so a value that is neither a boolean nor a header name is refused rather than silently trusted.
fn parse_trust_proxy(raw: &str) -> Result<TrustProxy, ConfigError> {
    let value = raw.trim().to_ascii_lowercase();
    Ok(match value.as_str() {
        // Naming X-Forwarded-For is asking for its entry the proxy appended, which `true` means.
        "true" | "1" | "yes" | "on" | "x-forwarded-for" => TrustProxy::LastForwardedFor,
        "false" | "0" | "no" | "off" => TrustProxy::No,
        name if name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) =>
        {
            TrustProxy::Header(value)
        }
        _ => {
            return Err(ConfigError::new(
                "TRUST_PROXY",
                format!("not true, false or a header name such as X-Real-IP: {raw:?}"),
            ));
        }
    })
}

/// `*`, or a comma-separated list of origins such as `https://app.example.com,http://localhost:5173`.
fn parse_origins(raw: &str) -> Result<CorsOrigins, ConfigError> {
    let origins: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    if origins == ["*"] {
        return Ok(CorsOrigins::Any);
    }
    let mut list = Vec::with_capacity(origins.len());
    for origin in origins {
        let well_formed = origin.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && !rest.is_empty()
                && !rest.contains(['/', '*', ' '])
        });
        if !well_formed {
            return Err(ConfigError::new(
                "CORS_ORIGINS",
                format!("not an origin like https://app.example.com (or a lone *): {origin:?}"),
            ));
        }
        list.push(origin.to_ascii_lowercase());
    }
    Ok(if list.is_empty() {
        CorsOrigins::None
    } else {
        CorsOrigins::List(list)
    })
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
        assert_eq!(
            config.database,
            DatabaseConfig::Sqlite(PathBuf::from("tasky.db"))
        );
        assert_eq!(config.api_key.expose(), b"123456");
        assert!(config.jwt_secret.is_none());
        assert_eq!(config.token_ttl, Duration::from_secs(1800));
        assert_eq!(config.cors_origins, CorsOrigins::None);
        assert_eq!(config.login_rate_limit, 10);
        assert_eq!(config.trust_proxy, TrustProxy::No);
        assert!(config.jwt_secret_previous.is_none());
        assert_eq!(config.refresh_ttl, Duration::from_secs(30 * 86_400));
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
            (
                "CORS_ORIGINS",
                "https://App.example.com, http://localhost:5173",
            ),
            ("LOGIN_RATE_LIMIT", "0"),
            ("TRUST_PROXY", "true"),
            (
                "JWT_SECRET_PREVIOUS",
                "the-secret-before-this-one-0123456789",
            ),
            ("REFRESH_TOKEN_TTL_DAYS", "7"),
        ])
        .unwrap();
        assert_eq!(
            config.jwt_secret_previous.as_ref().map(Secret::expose),
            Some(&b"the-secret-before-this-one-0123456789"[..])
        );
        assert_eq!(config.refresh_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(
            config.cors_origins,
            CorsOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:5173".into()
            ])
        );
        assert_eq!(config.login_rate_limit, 0);
        assert_eq!(config.trust_proxy, TrustProxy::LastForwardedFor);
        assert_eq!(config.host, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(config.port, 9000);
        assert_eq!(
            config.database,
            DatabaseConfig::Sqlite(PathBuf::from("/data/tasky.db"))
        );
        assert_eq!(config.api_key.expose(), b"k-e-y");
        assert_eq!(
            config.jwt_secret.unwrap().expose(),
            b"a-secret-of-a-decent-length-0123456789"
        );
        assert_eq!(config.token_ttl, Duration::from_secs(300));
    }

    #[test]
    fn a_secret_of_32_bytes_is_enough_and_a_lone_star_means_any_origin() {
        let config = parse(&[("JWT_SECRET", &"s".repeat(32)), ("CORS_ORIGINS", " * ")]).unwrap();
        assert_eq!(config.jwt_secret.unwrap().expose().len(), 32);
        assert_eq!(config.cors_origins, CorsOrigins::Any);
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
        assert_eq!(
            rejected(&[("JWT_SECRET", "too-short-secret")]),
            "JWT_SECRET"
        );
        assert_eq!(rejected(&[("JWT_SECRET", &"x".repeat(31))]), "JWT_SECRET");
        assert_eq!(rejected(&[("CORS_ORIGINS", "example.com")]), "CORS_ORIGINS");
        assert_eq!(
            rejected(&[("CORS_ORIGINS", "https://a.example, *")]),
            "CORS_ORIGINS"
        );
        assert_eq!(
            rejected(&[("CORS_ORIGINS", "https://example.com/path")]),
            "CORS_ORIGINS"
        );
        assert_eq!(rejected(&[("LOGIN_RATE_LIMIT", "-1")]), "LOGIN_RATE_LIMIT");
        assert_eq!(rejected(&[("LOGIN_RATE_LIMIT", "ten")]), "LOGIN_RATE_LIMIT");
        assert_eq!(rejected(&[("TRUST_PROXY", "X Real IP")]), "TRUST_PROXY");
        let secret = ("JWT_SECRET", "a-secret-of-a-decent-length-0123456789");
        assert_eq!(
            rejected(&[secret, ("JWT_SECRET_PREVIOUS", "too-short-secret")]),
            "JWT_SECRET_PREVIOUS"
        );
        assert_eq!(
            rejected(&[(
                "JWT_SECRET_PREVIOUS",
                "a-secret-of-a-decent-length-0123456789"
            )]),
            "JWT_SECRET_PREVIOUS",
            "a previous secret without a current one"
        );
        for days in ["0", "3651", "a month"] {
            assert_eq!(
                rejected(&[("REFRESH_TOKEN_TTL_DAYS", days)]),
                "REFRESH_TOKEN_TTL_DAYS"
            );
        }
        assert_eq!(rejected(&[("TRUST_PROXY", "X-Real-IP:")]), "TRUST_PROXY");
    }

    #[test]
    fn a_database_url_selects_postgres_and_needs_a_shared_secret() {
        let url = "postgres://tasky:hunter2@db.internal:5432/tasky?sslmode=require";
        let secret = ("JWT_SECRET", "a-secret-of-a-decent-length-0123456789");
        let config = parse(&[
            ("DATABASE_URL", url),
            ("DATABASE_POOL_SIZE", "4"),
            ("DATABASE_PATH", "/ignored.db"),
            secret,
        ])
        .unwrap();
        assert_eq!(
            config.database,
            DatabaseConfig::Postgres(PostgresUrl::new(url, 4))
        );
        assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
        let config = parse(&[("DATABASE_URL", "postgresql://localhost/tasky"), secret]).unwrap();
        let DatabaseConfig::Postgres(url) = config.database else {
            panic!("not postgres")
        };
        assert_eq!(url.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(rejected(&[("DATABASE_URL", url.expose())]), "JWT_SECRET");
        let refused = parse(&[("DATABASE_URL", "mysql://root:hunter2@db/x"), secret]).unwrap_err();
        assert_eq!(refused.var, "DATABASE_URL");
        assert!(!refused.to_string().contains("hunter2"), "{refused}");
        assert_eq!(
            rejected(&[("DATABASE_POOL_SIZE", "0")]),
            "DATABASE_POOL_SIZE"
        );
    }

    #[test]
    fn trust_proxy_takes_a_boolean_or_the_header_the_proxy_sets() {
        let trust = |raw: &str| parse(&[("TRUST_PROXY", raw)]).unwrap().trust_proxy;
        assert_eq!(trust("true"), TrustProxy::LastForwardedFor);
        assert_eq!(trust("FALSE"), TrustProxy::No);
        assert_eq!(trust("X-Forwarded-For"), TrustProxy::LastForwardedFor);
        assert_eq!(trust(" X-Real-IP "), TrustProxy::Header("x-real-ip".into()));
        assert_eq!(
            trust("CF-Connecting-IP"),
            TrustProxy::Header("cf-connecting-ip".into())
        );
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
            (
                "JWT_SECRET",
                "visible-jwt-secret-long-enough-to-be-accepted",
            ),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("visible"), "{debug}");
    }
}
