//! Settings from the environment (SPEC §4). A missing or bad one stops start-up with one line
//! that names it; no value is ever echoed, since URLs carry passwords.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

/// Where `VOUCHER_BIND` points when it is not set.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// A setting that is missing or cannot be used; `Display` is the one line printed at start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("configuration: {0} is not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("configuration: {name} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// Why, without the value itself.
        reason: String,
    },
}

/// The first admin, created at start when no staff exists (`VOUCHER_BOOTSTRAP_ADMIN`).
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapAdmin {
    /// Login name.
    pub username: String,
    /// Initial password (hashed with argon2 before it is stored).
    pub password: String,
}

impl std::fmt::Debug for BootstrapAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BootstrapAdmin({}, <password>)", self.username)
    }
}

/// Everything `voucherd serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// `DATABASE_URL`.
    pub database: PgConnectOptions,
    /// `VOUCHER_DB_MAX_CONNECTIONS` (default 20): the pool's size.
    pub db_max_connections: u32,
    /// `REDIS_URL`; parsed, not connected: the server starts while Redis is down.
    pub redis_url: String,
    /// `VOUCHER_BIND`, default 127.0.0.1:8080.
    pub bind: SocketAddr,
    /// `VOUCHER_BOOTSTRAP_ADMIN` (`username:password`), optional.
    pub bootstrap_admin: Option<BootstrapAdmin>,
    /// `VOUCHER_KEY_DIR`: signing keys, created on first start.
    pub key_dir: PathBuf,
    /// `VOUCHER_PLATFORM_RATE` / `VOUCHER_PLATFORM_BURST`: requests per second and burst per
    /// platform API key (default 100 and 200).
    pub rate_limits: crate::platform::RateLimits,
    /// `VOUCHER_TRUSTED_PROXIES`: CIDRs whose `X-Forwarded-For` is believed (default none).
    pub trusted_proxies: crate::throttle::TrustedProxies,
    /// `VOUCHER_ANON_PER_MINUTE` / `VOUCHER_ANON_BURST`: per client address and anonymous
    /// endpoint (default 30 a minute, bursts of 20).
    pub anon_limits: crate::throttle::AnonLimits,
    /// `VOUCHER_MAX_CONNECTIONS`: open connections served at once (default 8192).
    pub max_connections: usize,
}

/// Reads variables; `std::env::var` in production, a map in tests.
pub trait Source {
    /// The value of `name`, `None` when unset.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct Environment;

impl Source for Environment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn required(source: &dyn Source, name: &'static str) -> Result<String, ConfigError> {
    match source.get(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

/// `DATABASE_URL`, parsed as a PostgreSQL URL.
pub fn database(source: &dyn Source) -> Result<PgConnectOptions, ConfigError> {
    let url = required(source, "DATABASE_URL")?;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid(
            "DATABASE_URL",
            "must start with postgres:// or postgresql://",
        ));
    }
    PgConnectOptions::from_str(&url)
        .map_err(|_| invalid("DATABASE_URL", "not a valid PostgreSQL connection URL"))
}

/// `REDIS_URL`, checked for form only.
pub fn redis_url(source: &dyn Source) -> Result<String, ConfigError> {
    let url = required(source, "REDIS_URL")?;
    redis::Client::open(url.as_str())
        .map_err(|_| invalid("REDIS_URL", "not a valid redis:// URL"))?;
    Ok(url)
}

impl ServeConfig {
    /// Reads and checks every setting; the first bad one is the error.
    pub fn load(source: &dyn Source) -> Result<ServeConfig, ConfigError> {
        let database = database(source)?;
        let db_max_connections = match source.get("VOUCHER_DB_MAX_CONNECTIONS") {
            None => 20,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => return Err(invalid("VOUCHER_DB_MAX_CONNECTIONS", "must be 1..=1000")),
            },
        };
        let redis_url = redis_url(source)?;
        let bind = source
            .get("VOUCHER_BIND")
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = SocketAddr::from_str(&bind).map_err(|_| {
            invalid(
                "VOUCHER_BIND",
                "must be an address:port such as 127.0.0.1:8080",
            )
        })?;
        let bootstrap_admin = match source.get("VOUCHER_BOOTSTRAP_ADMIN") {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v) => Some(parse_bootstrap_admin(&v)?),
        };
        let key_dir = PathBuf::from(required(source, "VOUCHER_KEY_DIR")?);
        if key_dir.exists() && !key_dir.is_dir() {
            return Err(invalid("VOUCHER_KEY_DIR", "exists and is not a directory"));
        }
        let defaults = crate::platform::RateLimits::default();
        let count = |name: &'static str, default: u32| match source.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(invalid(name, "must be a whole number of at least 1")),
            },
        };
        let rate_limits = crate::platform::RateLimits {
            per_second: count("VOUCHER_PLATFORM_RATE", defaults.per_second)?,
            burst: count("VOUCHER_PLATFORM_BURST", defaults.burst)?,
        };
        let anon_defaults = crate::throttle::AnonLimits::default();
        let anon_limits = crate::throttle::AnonLimits {
            per_minute: count("VOUCHER_ANON_PER_MINUTE", anon_defaults.per_minute)?,
            burst: count("VOUCHER_ANON_BURST", anon_defaults.burst)?,
        };
        let trusted_proxies = crate::throttle::TrustedProxies::parse(
            &source.get("VOUCHER_TRUSTED_PROXIES").unwrap_or_default(),
        )
        .map_err(|_| {
            invalid(
                "VOUCHER_TRUSTED_PROXIES",
                "must be a comma-separated list of CIDRs or IP addresses",
            )
        })?;
        let max_connections = count(
            "VOUCHER_MAX_CONNECTIONS",
            crate::serve::EdgeLimits::default().max_connections as u32,
        )? as usize;
        Ok(ServeConfig {
            rate_limits,
            trusted_proxies,
            anon_limits,
            max_connections,
            database,
            db_max_connections,
            redis_url,
            bind,
            bootstrap_admin,
            key_dir,
        })
    }
}

fn parse_bootstrap_admin(value: &str) -> Result<BootstrapAdmin, ConfigError> {
    const NAME: &str = "VOUCHER_BOOTSTRAP_ADMIN";
    let (username, password) = value
        .split_once(':')
        .ok_or_else(|| invalid(NAME, "must be username:password"))?;
    if !is_valid_username(username) {
        return Err(invalid(
            NAME,
            "username must be 3-64 of a-z, 0-9, '.', '_', '-'",
        ));
    }
    if crate::passwords::check_new_password("password", password, &[username]).is_err() {
        return Err(invalid(
            NAME,
            "password must be at least 10 characters and not easy to guess",
        ));
    }
    Ok(BootstrapAdmin {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// Staff usernames: short, lower-case ASCII, safe to show in logs and the audit trail.
pub fn is_valid_username(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str = "postgres://voucher:voucher@127.0.0.1:5432/voucher";

    #[test]
    fn a_complete_environment_loads() {
        let env = MapSource(vec![
            ("DATABASE_URL", DB),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("VOUCHER_KEY_DIR", "/tmp/voucher-keys-test"),
            ("VOUCHER_BOOTSTRAP_ADMIN", "admin:correct-horse"),
        ]);
        let cfg = ServeConfig::load(&env).unwrap();
        assert_eq!(cfg.bind.to_string(), DEFAULT_BIND);
        assert_eq!(cfg.bootstrap_admin.unwrap().username, "admin");
    }

    #[test]
    fn each_missing_or_bad_setting_is_named() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "configuration: DATABASE_URL is not set"),
            (
                vec![("DATABASE_URL", "mysql://x")],
                "configuration: DATABASE_URL is invalid",
            ),
            (
                vec![("DATABASE_URL", DB)],
                "configuration: REDIS_URL is not set",
            ),
            (
                vec![("DATABASE_URL", DB), ("REDIS_URL", "http://x")],
                "configuration: REDIS_URL is invalid",
            ),
            (
                vec![
                    ("DATABASE_URL", DB),
                    ("REDIS_URL", "redis://h"),
                    ("VOUCHER_BIND", "nowhere"),
                ],
                "configuration: VOUCHER_BIND is invalid",
            ),
            (
                vec![
                    ("DATABASE_URL", DB),
                    ("REDIS_URL", "redis://h"),
                    ("VOUCHER_BOOTSTRAP_ADMIN", "admin"),
                ],
                "configuration: VOUCHER_BOOTSTRAP_ADMIN is invalid",
            ),
            (
                vec![
                    ("DATABASE_URL", DB),
                    ("REDIS_URL", "redis://h"),
                    ("VOUCHER_BOOTSTRAP_ADMIN", "admin:short"),
                ],
                "configuration: VOUCHER_BOOTSTRAP_ADMIN is invalid",
            ),
            (
                vec![("DATABASE_URL", DB), ("REDIS_URL", "redis://h")],
                "configuration: VOUCHER_KEY_DIR is not set",
            ),
        ];
        for (vars, want) in cases {
            let source = MapSource(vars);
            let err = ServeConfig::load(&source).unwrap_err().to_string();
            assert!(err.starts_with(want), "got {err:?}, want {want:?}");
            assert!(
                !err.contains("voucher:voucher"),
                "the error must not echo the URL"
            );
        }
    }

    struct MapSource<'a>(Vec<(&'a str, &'a str)>);

    impl Source for MapSource<'_> {
        fn get(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }
}
