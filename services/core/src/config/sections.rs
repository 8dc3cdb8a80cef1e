//! The configuration types, one per top-level section, and their validation. These structs are
//! the user's contract: unknown keys are errors (a typo must not silently fall back to a
//! default), every field says what it is for, and every default is a named function.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Secret};

/// The whole deployment configuration. Services read the sections they need; per-service
/// sections (`jira_sink`, …) are added here as `Option<…>` fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SfjiraConfig {
    /// Which instance this process is.
    #[serde(default)]
    pub service: ServiceConfig,
    /// The Kafka cluster every record goes through.
    pub kafka: KafkaConfig,
    /// The schema registry holding the Avro schemas of every topic.
    pub registry: RegistryConfig,
    /// Logs (and later traces) of this process.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The health and metrics endpoint.
    #[serde(default)]
    pub http: HttpConfig,
    /// The transformer (only the transformer reads it).
    #[serde(default)]
    pub transformer: Option<TransformerConfig>,
    /// jira-source (only jira-source reads it); see `jira_source.rs`.
    #[serde(default)]
    pub jira_source: Option<super::JiraSourceConfig>,
    /// salesforce-source (only salesforce-source reads it); see `salesforce_source.rs`.
    #[serde(default)]
    pub salesforce_source: Option<super::SalesforceSourceConfig>,
    /// jira-sink (only jira-sink reads it); see `jira_sink.rs`.
    #[serde(default)]
    pub jira_sink: Option<super::JiraSinkConfig>,
    /// salesforce-sink (only salesforce-sink reads it); see `salesforce_sink.rs`.
    #[serde(default)]
    pub salesforce_sink: Option<super::SalesforceSinkConfig>,
}

impl SfjiraConfig {
    /// Checks what types cannot: formats, ranges, pairs of keys that go together.
    /// [`super::load`] calls it; call it again after changing a loaded config in code.
    ///
    /// # Errors
    ///
    /// The first invalid value, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
        self.kafka.validate()?;
        self.registry.validate()?;
        self.telemetry.validate()?;
        if let Some(t) = &self.transformer {
            t.validate()?;
        }
        if let Some(s) = &self.salesforce_source {
            s.validate()?;
        }
        if let Some(j) = &self.jira_source {
            j.validate()?;
        }
        if let Some(j) = &self.jira_sink {
            j.validate()?;
        }
        if let Some(s) = &self.salesforce_sink {
            s.validate()?;
        }
        Ok(())
    }
}

/// The transformer: which mapping it runs and how it batches its transactions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// The mapping file (see docs/mapping.md).
    #[serde(default = "default_mapping")]
    pub mapping: std::path::PathBuf,
    /// The consumer group of every transformer instance of this deployment.
    #[serde(default = "default_transformer_group")]
    pub group_id: String,
    /// Records per Kafka transaction at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long a transaction of a caught-up stream stays open for more records before it
    /// commits what it has (a backlog's transactions fill up to `batch_size` instead).
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
}

fn default_mapping() -> std::path::PathBuf {
    "config/mapping.yaml".into()
}
fn default_transformer_group() -> String {
    "sfjira-transformer".into()
}
fn default_batch_size() -> usize {
    // Each transaction costs the broker ~4.5 ms of CPU here, whatever its size (`txn_phases`
    // example): at 2 000 records that was a third of the broker's work per record while a
    // backlog drains. Records stream through the transformer, but each record of the open
    // transaction is tracked until its delivery: on 300 000-record `make bench` runs the peak
    // RSS was 97-102 MB at 10 000 and 90-93 MB at 5 000 (80-88 and 80-84 MB once the
    // read-ahead was cut too), for the same speed; a transaction lasts ~50 ms at full speed.
    5_000
}
fn default_batch_wait_ms() -> u64 {
    // On a caught-up stream this is what every change waits, so it stays small (at 100 ms it
    // was a fifth of the end-to-end p99, `make bench`); under a backlog transactions fill first.
    20
}

impl Default for TransformerConfig {
    fn default() -> Self {
        TransformerConfig {
            mapping: default_mapping(),
            group_id: default_transformer_group(),
            batch_size: default_batch_size(),
            batch_wait_ms: default_batch_wait_ms(),
        }
    }
}

impl TransformerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=100_000).contains(&self.batch_size) {
            return Err(ConfigError::invalid(
                "transformer.batch_size",
                format!("{} is out of range", self.batch_size),
                "use 1 to 100000 records per transaction (default 5000)",
            ));
        }
        // The transaction is open on the broker while it waits, so the wait stays far inside
        // the producer's transaction timeout (librdkafka's `transaction.timeout.ms`, 60 s).
        if self.batch_wait_ms == 0 || self.batch_wait_ms > 10_000 {
            return Err(ConfigError::invalid(
                "transformer.batch_wait_ms",
                format!("{} is out of range", self.batch_wait_ms),
                "use 1 to 10000 milliseconds (default 20); a transaction stays open while it waits, and the broker aborts one open for 60 s",
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                "transformer.group_id",
                "empty",
                "name the consumer group, e.g. sfjira-transformer",
            ));
        }
        Ok(())
    }
}

/// Identity of this process among the instances of its service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Names this instance; Kafka transactional ids are derived from it. A restarted instance
    /// must come back with the same id so that Kafka fences its zombie predecessor, so use
    /// something stable per instance (a StatefulSet pod name, a host name), never a random
    /// value. Only `[A-Za-z0-9._-]`, as it ends up in Kafka ids and metric labels. Default: the
    /// host name, or `local`.
    #[serde(default = "default_instance_id")]
    pub instance_id: String,
    /// After SIGTERM/SIGINT, how long the service may take to finish the batch in hand and
    /// stop, in seconds; past it the process exits with status 1 (what it had not committed is
    /// read again by the next instance, as after a crash). With the brokers gone, Kafka calls
    /// wait 30 s and are retried (a jira-source took 160 s to stop), and an orchestrator kills
    /// the process anyway (Kubernetes after 30 s). Default 20.
    #[serde(default = "default_stop_grace_secs")]
    pub stop_grace_secs: u64,
}

fn default_stop_grace_secs() -> u64 {
    20
}

fn default_instance_id() -> String {
    // Linux keeps the host name here; `HOSTNAME` is set by container runtimes but usually not
    // exported by shells, so it is only the fallback.
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".to_string())
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            instance_id: default_instance_id(),
            stop_grace_secs: default_stop_grace_secs(),
        }
    }
}

impl ServiceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.instance_id.is_empty() || !self.instance_id.chars().all(is_id_char) {
            return Err(ConfigError::invalid(
                "service.instance_id",
                format!("expected [A-Za-z0-9._-]+, got {:?}", self.instance_id),
                "use letters, digits, '.', '_' and '-' only (it becomes part of Kafka transactional ids)",
            ));
        }
        if !(1..=3600).contains(&self.stop_grace_secs) {
            return Err(ConfigError::invalid(
                "service.stop_grace_secs",
                format!("expected 1–3600 seconds, got {}", self.stop_grace_secs),
                "give the seconds a stopping service may take, e.g. 20 (less than the orchestrator's own grace period)",
            ));
        }
        Ok(())
    }
}

/// The Kafka cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Brokers to bootstrap from: `host:port[,host:port…]`. Required.
    pub bootstrap_servers: String,
    /// librdkafka properties passed through as-is (`security.protocol`, `ssl.ca.location`,
    /// `sasl.mechanism`, …), so any cluster setup librdkafka supports works without code.
    /// Properties holding secrets are refused here: use `secret_properties`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties whose values are secrets (`sasl.password`, …), each
    /// `{ env: VAR }` or `{ file: /path }`.
    #[serde(default)]
    pub secret_properties: BTreeMap<String, Secret>,
    /// Prepended to every sfjira topic name, so several deployments can share a cluster.
    #[serde(default)]
    pub topic_prefix: String,
}

/// librdkafka properties known to hold secrets. Names containing `password`, `secret` or
/// `passphrase` are caught too, so a property added in a later librdkafka is not missed.
const SECRET_PROPERTIES: &[&str] = &[
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
];

fn holds_secret(property: &str) -> bool {
    SECRET_PROPERTIES.contains(&property)
        || ["password", "secret", "passphrase"]
            .iter()
            .any(|w| property.contains(w))
}

/// Properties sfjira sets itself; a passthrough value would contradict it.
const MANAGED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    (
        "transactional.id",
        "remove it: each service derives its transactional id from service.instance_id",
    ),
];

/// Longest accepted `topic_prefix`: Kafka topic names stop at 249 characters and the longest
/// sfjira names (`salesforce.cdc.<custom object>`) need about 100 of them.
const MAX_TOPIC_PREFIX: usize = 128;

impl KafkaConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_bootstrap_servers(&self.bootstrap_servers).map_err(|problem| {
            ConfigError::invalid(
                "kafka.bootstrap_servers",
                problem,
                "list the brokers as host:port, comma-separated, e.g. broker1:9092,broker2:9092",
            )
        })?;
        for key in self.properties.keys() {
            let at = format!("kafka.properties.{key}");
            check_property_name(&at, key)?;
            if let Some((_, fix)) = MANAGED_PROPERTIES.iter().find(|(p, _)| p == key) {
                return Err(ConfigError::invalid(
                    &at,
                    format!("`{key}` is managed by sfjira"),
                    *fix,
                ));
            }
            if holds_secret(key) {
                return Err(ConfigError::invalid(
                    &at,
                    format!("`{key}` holds a secret and cannot be a plain property"),
                    format!(
                        "move it to kafka.secret_properties as `{key}: {{ env: VAR_NAME }}` or \
                         `{key}: {{ file: /path/to/file }}`"
                    ),
                ));
            }
        }
        for key in self.secret_properties.keys() {
            let at = format!("kafka.secret_properties.{key}");
            check_property_name(&at, key)?;
            if self.properties.contains_key(key) {
                return Err(ConfigError::invalid(
                    &at,
                    format!("`{key}` is set in both kafka.properties and kafka.secret_properties"),
                    "keep only one of them",
                ));
            }
        }
        if self.topic_prefix.len() > MAX_TOPIC_PREFIX || !self.topic_prefix.chars().all(is_id_char)
        {
            return Err(ConfigError::invalid(
                "kafka.topic_prefix",
                format!(
                    "expected at most {MAX_TOPIC_PREFIX} of [A-Za-z0-9._-], got {:?}",
                    self.topic_prefix
                ),
                "use only the characters Kafka allows in topic names, e.g. `acme.`",
            ));
        }
        Ok(())
    }
}

/// `host:port[,host:port…]`, each entry optionally `scheme://host:port` and IPv6 hosts in
/// brackets, as librdkafka accepts them.
fn check_bootstrap_servers(list: &str) -> Result<(), String> {
    let expected = |why: String| format!("expected host:port[,host:port...], got {list:?}: {why}");
    if list.trim().is_empty() {
        return Err(expected("it is empty".into()));
    }
    for entry in list.split(',').map(str::trim) {
        let hostport = entry.split_once("://").map_or(entry, |(_, rest)| rest);
        let Some((host, port)) = hostport.rsplit_once(':') else {
            return Err(expected(format!("{entry:?} has no port")));
        };
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if host.is_empty() || (host.contains(':') && !bracketed) {
            return Err(expected(format!(
                "{entry:?} has no valid host (IPv6 goes in brackets)"
            )));
        }
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(expected(format!(
                "{entry:?} has port {port:?}, not 1-65535"
            )));
        }
    }
    Ok(())
}

fn check_property_name(at: &str, key: &str) -> Result<(), ConfigError> {
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    {
        return Err(ConfigError::invalid(
            at,
            format!("{key:?} is not a librdkafka property name"),
            "use the dotted lowercase names of librdkafka's CONFIGURATION.md, e.g. security.protocol",
        ));
    }
    Ok(())
}

/// The schema registry (Confluent-compatible API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL of the Confluent-compatible API, e.g.
    /// `http://127.0.0.1:18081/apis/ccompat/v7` for Apicurio. Required.
    pub url: String,
    /// Basic-auth user; set together with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic-auth password; set together with `username`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Per-request timeout in milliseconds, so a hung registry fails a decode (into the retry
    /// path) instead of stalling the stage.
    #[serde(default = "default_registry_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_registry_timeout_ms() -> u64 {
    10_000
}

impl RegistryConfig {
    /// [`RegistryConfig::timeout_ms`] as a `Duration`.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad_url = |problem: String| {
            ConfigError::invalid(
                "registry.url",
                problem,
                "give the http(s) base URL of the Confluent-compatible API, e.g. \
                 http://127.0.0.1:18081/apis/ccompat/v7",
            )
        };
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| bad_url(format!("{:?} is not a URL: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad_url(format!(
                "expected an http or https URL with a host, got {:?}",
                self.url
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Not echoing the URL: it holds the credentials.
            return Err(ConfigError::invalid(
                "registry.url",
                "the URL contains credentials, which would end up in logs",
                "move them to registry.username and registry.password",
            ));
        }
        match (&self.username, &self.password) {
            (Some(u), _) if u.is_empty() => Err(ConfigError::invalid(
                "registry.username",
                "is empty",
                "set the user name, or remove registry.username and registry.password",
            )),
            (Some(_), None) => Err(ConfigError::invalid(
                "registry.password",
                "registry.username is set but registry.password is not",
                "set registry.password to `{ env: VAR_NAME }` or `{ file: /path }`",
            )),
            (None, Some(_)) => Err(ConfigError::invalid(
                "registry.username",
                "registry.password is set but registry.username is not",
                "set registry.username, or remove registry.password",
            )),
            _ if self.timeout_ms == 0 => Err(ConfigError::invalid(
                "registry.timeout_ms",
                "must be > 0",
                "set a timeout in milliseconds, e.g. 10000",
            )),
            _ => Ok(()),
        }
    }
}

/// How this process reports what it does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `pretty` for people at a terminal, `json` for log collectors.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Which events to log: a `tracing` EnvFilter directive such as `info` or
    /// `info,sfjira_core::kafka=debug`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, multi-line with colours on a terminal.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

fn default_log_level() -> String {
    "info".to_string()
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::default(),
            log_level: default_log_level(),
        }
    }
}

impl TelemetryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.log_level).map_err(|e| {
            ConfigError::invalid(
                "telemetry.log_level",
                format!("{:?} is not a tracing filter: {e}", self.log_level),
                "use a level (error, warn, info, debug, trace) optionally followed by \
                 target=level pairs, e.g. info,sfjira_core=debug",
            )
        })?;
        Ok(())
    }
}

/// The HTTP endpoint serving `/healthz`, `/readyz` and `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on. Loopback by default so nothing is exposed by accident; set
    /// `0.0.0.0:9400` in a container so probes and scrapers can reach it.
    #[serde(default = "default_listen", deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
}

/// A `SocketAddr` whose error says what the form is (serde's says only "invalid syntax").
fn socket_addr<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "expected ip:port, e.g. 127.0.0.1:9400 or [::]:9400, got {text:?}; fix: give an IP \
             address (not a host name) and a port"
        ))
    })
}

fn default_listen() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 9400))
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
        }
    }
}

/// Characters allowed in ids and topic names.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}
