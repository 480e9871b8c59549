//! The one typed configuration: defaults, then an optional TOML file, then
//! environment variables. Invalid values stop the start with a message that
//! names the setting.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `SWIFTDROP_ADDR`
    pub addr: SocketAddr,
    /// `SWIFTDROP_DATA_DIR`: SQLite file, uploads, generated signing key.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: unset means the SQLite file in the data folder.
    pub database_url: Option<String>,
    /// `REDIS_URL`: shared gates; unset means in-process.
    pub redis_url: Option<String>,
    /// `SWIFTDROP_REDIS_CA_FILE`: root certificates (PEM) that verify a
    /// `rediss://` server, for one whose certificate a private CA signed;
    /// unset means the public roots.
    pub redis_ca_file: Option<PathBuf>,
    /// `AMQP_URL`: the broker; unset means the in-process bus.
    pub amqp_url: Option<String>,
    /// Prefix of the broker's exchange and queues (`SWIFTDROP_AMQP_PREFIX`).
    pub amqp_prefix: String,
    /// Prefix of every Redis key (`SWIFTDROP_REDIS_PREFIX`).
    pub redis_prefix: String,
    /// `SWIFTDROP_SECRET`: JWT signing secret; unset means generated once
    /// and kept in the data folder.
    pub secret: Option<String>,
    pub access_ttl_seconds: u64,
    pub refresh_ttl_seconds: u64,
    pub reservation_ttl_seconds: u64,
    pub bcrypt_cost: u32,
    /// Password hashes run at once (default: half the cores, at least 1).
    pub hash_concurrency: usize,
    /// The longest a password hash may expect to queue before sign-ups and
    /// logins get 503 (`SWIFTDROP_HASH_MAX_WAIT_SECONDS`).
    pub hash_max_wait_seconds: u64,
    /// `human` or `json` (`SWIFTDROP_LOG`); `RUST_LOG` sets the filter.
    pub log: LogFormat,
    pub body_limit_bytes: usize,
    pub request_timeout_seconds: u64,
    /// A request head must arrive within this (and an idle keep-alive
    /// connection is closed after it); a body gets it as a head start.
    pub header_timeout_seconds: u64,
    /// After that head start a request body must average at least this.
    pub body_min_bytes_per_second: u64,
    /// Open connections one client address may hold (WebSockets included);
    /// trusted proxies are exempt.
    pub max_connections_per_address: usize,
    /// Comma-separated origins allowed by CORS; `*` for any; empty for none.
    #[serde(deserialize_with = "comma_list")]
    pub cors_origins: Vec<String>,
    /// Comma-separated proxy addresses whose `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "comma_list")]
    pub trusted_proxies: Vec<String>,
    pub login_attempts_per_minute: u32,
    /// The general per-address limit on `/api`; 0 turns it off.
    pub api_requests_per_second: u32,
    pub api_burst: u32,
    pub db_max_connections: u32,
    /// How long a request waits for a database connection before it is
    /// answered 503 (the database is down or saturated): fail fast.
    pub db_acquire_timeout_seconds: u64,
    /// Purchase attempts per second per address, and their burst.
    pub purchase_requests_per_second: u32,
    pub purchase_burst: u32,
    /// Bids per second per address, and their burst.
    pub bid_requests_per_second: u32,
    pub bid_burst: u32,
    /// Most purchases one reservation transaction groups (1 turns group
    /// commit off, for comparison).
    pub reserve_batch_max: usize,
    /// S3-compatible bucket for uploads; unset keeps them in the data folder.
    pub s3_bucket: Option<String>,
    /// Endpoint of an S3-compatible service (MinIO, R2, ...); unset for AWS.
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    /// S3 credentials; unset falls back to the usual `AWS_*` variables.
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            redis_url: None,
            redis_ca_file: None,
            amqp_url: None,
            amqp_prefix: "swiftdrop".to_owned(),
            redis_prefix: "swiftdrop:".to_owned(),
            secret: None,
            access_ttl_seconds: 1800,
            refresh_ttl_seconds: 30 * 24 * 3600,
            reservation_ttl_seconds: 600,
            bcrypt_cost: 12,
            hash_concurrency: (cores / 2).max(1),
            hash_max_wait_seconds: 10,
            log: LogFormat::Human,
            body_limit_bytes: 1024 * 1024,
            request_timeout_seconds: 30,
            header_timeout_seconds: 10,
            body_min_bytes_per_second: 1024,
            max_connections_per_address: 256,
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            login_attempts_per_minute: 5,
            api_requests_per_second: 100,
            api_burst: 200,
            db_max_connections: 16,
            db_acquire_timeout_seconds: 5,
            purchase_requests_per_second: 5,
            purchase_burst: 10,
            bid_requests_per_second: 5,
            bid_burst: 10,
            reserve_batch_max: services::sales::DEFAULT_MAX_BATCH,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
        }
    }
}

/// Accepts `"a, b"` from the environment or `["a", "b"]` from TOML.
fn comma_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        List(Vec<String>),
    }
    let items = match Raw::deserialize(deserializer)? {
        Raw::Text(text) => text.split(',').map(str::to_owned).collect(),
        Raw::List(list) => list,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

impl Config {
    /// Defaults, then `file` (TOML, if given), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        let figment = figment
            .merge(
                Env::prefixed("SWIFTDROP_")
                    // The config file's path and the test suite's own settings are not settings.
                    .filter(|key| {
                        let key = key.as_str().to_ascii_lowercase();
                        key != "config" && !key.starts_with("test_")
                    }),
            )
            .merge(Env::raw().only(&["DATABASE_URL", "REDIS_URL", "AMQP_URL"]));
        let config: Config = figment.extract().map_err(|err| anyhow::anyhow!(describe(err)))?;
        config.validate()?;
        Ok(config)
    }

    /// Rules serde cannot express. Each message names its setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(4..=31).contains(&self.bcrypt_cost) {
            bail!(
                "SWIFTDROP_BCRYPT_COST must be between 4 and 31 (got {})",
                self.bcrypt_cost
            );
        }
        if self.access_ttl_seconds == 0 {
            bail!("SWIFTDROP_ACCESS_TTL_SECONDS must be more than 0");
        }
        if self.refresh_ttl_seconds < self.access_ttl_seconds {
            bail!("SWIFTDROP_REFRESH_TTL_SECONDS must be at least SWIFTDROP_ACCESS_TTL_SECONDS");
        }
        if self.reservation_ttl_seconds == 0 {
            bail!("SWIFTDROP_RESERVATION_TTL_SECONDS must be more than 0");
        }
        if self.request_timeout_seconds == 0 {
            bail!("SWIFTDROP_REQUEST_TIMEOUT_SECONDS must be more than 0");
        }
        if self.header_timeout_seconds == 0 {
            bail!("SWIFTDROP_HEADER_TIMEOUT_SECONDS must be more than 0");
        }
        if self.body_min_bytes_per_second == 0 {
            bail!("SWIFTDROP_BODY_MIN_BYTES_PER_SECOND must be more than 0");
        }
        if self.max_connections_per_address == 0 {
            bail!("SWIFTDROP_MAX_CONNECTIONS_PER_ADDRESS must be more than 0");
        }
        if self.body_limit_bytes < 1024 {
            bail!("SWIFTDROP_BODY_LIMIT_BYTES must be at least 1024");
        }
        if self.db_max_connections == 0 {
            bail!("SWIFTDROP_DB_MAX_CONNECTIONS must be more than 0");
        }
        if self.db_acquire_timeout_seconds == 0 {
            bail!("SWIFTDROP_DB_ACQUIRE_TIMEOUT_SECONDS must be more than 0");
        }
        if self.reserve_batch_max == 0 {
            bail!("SWIFTDROP_RESERVE_BATCH_MAX must be more than 0");
        }
        if self.hash_concurrency == 0 {
            bail!("SWIFTDROP_HASH_CONCURRENCY must be more than 0");
        }
        if self.hash_max_wait_seconds == 0 {
            bail!("SWIFTDROP_HASH_MAX_WAIT_SECONDS must be more than 0");
        }
        if let Some(secret) = &self.secret
            && secret.len() < 32
        {
            bail!("SWIFTDROP_SECRET must be at least 32 characters");
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:") || url.starts_with("postgres:") || url.starts_with("postgresql:"))
        {
            bail!("DATABASE_URL must start with sqlite: or postgres:");
        }
        if let Some(url) = &self.amqp_url {
            check_service_url("AMQP_URL", url, &["amqp", "amqps"])?;
        }
        if let Some(url) = &self.redis_url {
            check_service_url("REDIS_URL", url, &["redis", "rediss"])?;
        }
        if self.redis_ca_file.is_some()
            && !self
                .redis_url
                .as_ref()
                .is_some_and(|u| u.starts_with("rediss://"))
        {
            bail!("SWIFTDROP_REDIS_CA_FILE is set, but REDIS_URL is not a rediss:// (TLS) URL");
        }
        self.trusted_proxy_ips()?;
        Ok(())
    }

    pub fn trusted_proxy_ips(&self) -> anyhow::Result<Vec<IpAddr>> {
        self.trusted_proxies
            .iter()
            .map(|p| {
                p.parse()
                    .with_context(|| format!("SWIFTDROP_TRUSTED_PROXIES: {p:?} is not an IP address"))
            })
            .collect()
    }

    /// The database to open: `DATABASE_URL`, or the SQLite file in the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("swiftdrop.db").display()
            ),
        }
    }

    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_ttl_seconds)
    }
}

/// Checks that a service URL has one of `schemes` and a host, without
/// ever echoing it (it may hold a password).
fn check_service_url(setting: &str, url: &str, schemes: &[&str]) -> anyhow::Result<()> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("{setting} must look like {}://host", schemes[0]);
    };
    if !schemes.contains(&scheme) {
        bail!(
            "{setting} must start with {}",
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or ")
        );
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        bail!("{setting} names no host");
    }
    Ok(())
}

/// Turns a figment error into one line naming the environment variable or
/// file key at fault.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            if let figment::error::Kind::UnknownField(field, _) = &e.kind
                && let Some(message) = retired(field)
            {
                return message.to_owned();
            }
            let key = e.path.join(".");
            let setting = match key.as_str() {
                "database_url" | "redis_url" | "amqp_url" => key.to_uppercase(),
                "" => "configuration".to_owned(),
                _ => format!("SWIFTDROP_{} (or `{key}` in the config file)", key.to_uppercase()),
            };
            format!("invalid setting {setting}: {}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Settings that were removed: refused at start (unknown fields are), and
/// with a message saying what replaced them.
fn retired(field: &str) -> Option<&'static str> {
    match field {
        "hash_queue" => Some(
            "SWIFTDROP_HASH_QUEUE (or `hash_queue` in the config file) is no longer a setting: \
             password hashes are admitted by the wait they will have; set \
             SWIFTDROP_HASH_MAX_WAIT_SECONDS instead",
        ),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
        assert!(Config::default().database_url().starts_with("sqlite://"));
    }

    #[test]
    fn env_overrides_and_errors_name_the_setting() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SWIFTDROP_ADDR", "127.0.0.1:9999");
            jail.set_env("SWIFTDROP_CORS_ORIGINS", "https://a.example, https://b.example");
            jail.set_env("DATABASE_URL", "postgres://u@h/db");
            let config = Config::load(None).unwrap();
            assert_eq!(config.addr.port(), 9999);
            assert_eq!(config.cors_origins, ["https://a.example", "https://b.example"]);
            assert_eq!(config.database_url(), "postgres://u@h/db");

            jail.set_env("SWIFTDROP_BCRYPT_COST", "many");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("SWIFTDROP_BCRYPT_COST"), "{err}");

            jail.set_env("SWIFTDROP_BCRYPT_COST", "3");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("SWIFTDROP_BCRYPT_COST"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn service_urls_are_checked() {
        let with = |amqp: Option<&str>, redis: Option<&str>| Config {
            amqp_url: amqp.map(str::to_owned),
            redis_url: redis.map(str::to_owned),
            ..Config::default()
        };
        assert!(
            with(Some("amqp://guest:guest@127.0.0.1:5672/%2f"), None)
                .validate()
                .is_ok()
        );
        assert!(with(Some("amqps://broker.example"), None).validate().is_ok());
        for bad in ["http://broker", "amqp://", "amqp://user:pw@/vhost", "broker:5672"] {
            let err = with(Some(bad), None).validate().unwrap_err().to_string();
            assert!(err.contains("AMQP_URL"), "{bad}: {err}");
            assert!(!err.contains("pw"), "the URL must not be echoed: {err}");
        }
        assert!(with(None, Some("redis://127.0.0.1:6379")).validate().is_ok());
        assert!(
            with(None, Some("rediss://:secret@cache.example:6380/0"))
                .validate()
                .is_ok()
        );
        let err = with(None, Some("mysql://x")).validate().unwrap_err().to_string();
        assert!(err.contains("REDIS_URL must start with"), "{err}");
    }

    #[test]
    fn the_retired_hash_queue_is_refused_naming_its_replacement() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SWIFTDROP_HASH_QUEUE", "8");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("SWIFTDROP_HASH_MAX_WAIT_SECONDS"), "{err}");
            jail.clear_env();
            jail.set_env("SWIFTDROP_HASH_MAX_WAIT_SECONDS", "0");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("SWIFTDROP_HASH_MAX_WAIT_SECONDS"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn toml_file_is_read() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "swiftdrop.toml",
                "bcrypt_cost = 5\ntrusted_proxies = [\"10.0.0.1\"]\n",
            )?;
            let config = Config::load(Some(Path::new("swiftdrop.toml"))).unwrap();
            assert_eq!(config.bcrypt_cost, 5);
            assert_eq!(config.trusted_proxy_ips().unwrap(), [IpAddr::from([10, 0, 0, 1])]);
            jail.create_file("bad.toml", "no_such_setting = 1\n")?;
            assert!(Config::load(Some(Path::new("bad.toml"))).is_err());
            Ok(())
        });
    }
}
