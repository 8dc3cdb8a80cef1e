//! The deployment configuration: one YAML file shared by every sfjira service, every key
//! overridable from the environment, validated once at start so a bad deployment fails before
//! it touches Kafka rather than an hour later in a sink.
//!
//! This module owns *reading* the configuration and reporting what is wrong with it; the
//! components own what the values mean (the Kafka module turns [`KafkaConfig`] into librdkafka
//! settings, and so on). The types in `sections.rs` are the user's contract, documented key by
//! key in `docs/configuration.md`.
//!
//! # Layering
//!
//! `serde` defaults < the YAML file < `SFJIRA_…` environment variables. The file is the one given
//! to [`load`], or else the one named by `SFJIRA_CONFIG`, or else none (environment and defaults
//! only, handy in containers).
//!
//! # Environment variables
//!
//! `SFJIRA_<SECTION>__<KEY>`: after the `SFJIRA_` prefix, a double underscore nests, so
//! `SFJIRA_KAFKA__BOOTSTRAP_SERVERS` is `kafka.bootstrap_servers`. Only variables with a `__`
//! after the prefix are configuration keys. That leaves `SFJIRA_CONFIG`, `SFJIRA_TEST_…` and any
//! other single-underscore name free for other uses, and we chose it over a list of known
//! sections because such a list must be kept in step with every section added later (forget
//! one and its overrides are silently ignored), whereas with this rule a misspelt section
//! (`SFJIRA_KAFAK__…`) is an "unknown key" error. Inside `properties` and `secret_properties`
//! maps a single `_` stands for `.`, since librdkafka property names are dotted and shells do not
//! allow dots in variable names: `SFJIRA_KAFKA__SECRET_PROPERTIES__SASL_PASSWORD` sets
//! `kafka.secret_properties."sasl.password"`. Values are taken as strings and converted where a
//! field wants a number or boolean; lists cannot be set from the environment.
//!
//! We read the variables with our own small provider (`env.rs`) rather than figment's `Env`,
//! because `Env` only reads the process environment (so [`load_from`] could not be tested
//! without mutating global state, which races between parallel tests) and it parses values, so
//! a password like `12345` would become a number.
//!
//! # Secrets
//!
//! A [`Secret`] is written `{ env: VAR }` or `{ file: /path }` in the YAML; a literal there is
//! refused, because a YAML file gets committed, copied and attached to tickets. A literal that
//! comes from an `SFJIRA_…` variable is fine: it is already in the environment. Telling the two
//! apart uses figment's provenance: every value carries a tag naming the provider it came
//! from. `Secret`'s `Deserialize` looks the tag up and resolves the reference (reads the
//! variable or the file) right there, during extraction. Doing it inside deserialization, not
//! in a later pass over the typed config, means figment attaches the key path to any error for
//! free, and a `Secret` field added to any future section obeys the same rules without being
//! registered anywhere (a forgotten registration in a second pass would be an unresolved secret
//! at runtime). Serde gives `Deserialize` no context argument, so the figment and the
//! environment reach it through a thread-local set only for the duration of [`load_from`]'s
//! extraction (`secret.rs`). `Debug` of a `Secret`, and so of every config struct, shows where
//! the secret came from, never its value.
//!
//! # Errors
//!
//! Every failure is one [`ConfigError`]: the dotted key, the problem, the fix, and where the
//! value came from (`file:line` or the environment variable), mapped from figment's errors
//! (`error.rs`) or raised by [`SfjiraConfig::validate`].
//!
//! # Adding a section
//!
//! Add a field to [`SfjiraConfig`] (`Option<…>` for a per-service section) whose type has
//! `#[serde(deny_unknown_fields)]`, a doc comment on every field and named defaults; call its
//! `validate` from [`SfjiraConfig::validate`]; document it in `docs/configuration.md`.

mod env;
mod error;
mod jira_sink;
mod jira_source;
mod salesforce_sink;
mod salesforce_source;
mod secret;
mod sections;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Yaml};

pub use error::ConfigError;
pub use jira_sink::{DeleteMode, JiraSinkConfig};
pub use jira_source::{JiraOAuthConfig, JiraSourceConfig};
pub use salesforce_sink::SalesforceSinkConfig;
pub use salesforce_source::{
    AuthKind, OnInvalidReplay, SalesforceAuth, SalesforceSourceConfig, StartFrom,
};
pub use secret::Secret;
pub use sections::{
    HttpConfig, KafkaConfig, LogFormat, RegistryConfig, ServiceConfig, SfjiraConfig,
    TelemetryConfig, TransformerConfig,
};

/// The environment variable naming the YAML file when [`load`] is given no path.
pub const CONFIG_PATH_VAR: &str = "SFJIRA_CONFIG";

/// Loads and validates the configuration from `path` (or `$SFJIRA_CONFIG`, or no file) and the
/// process environment.
///
/// # Errors
///
/// The first problem found, naming the key; see [`ConfigError`].
pub fn load(path: Option<&Path>) -> Result<SfjiraConfig, ConfigError> {
    // Variables that are not UTF-8 cannot be sfjira keys or secrets we could use; skip them
    // rather than fail on some unrelated variable.
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    load_from(path, env)
}

/// [`load`] with the environment given explicitly, so tests need not touch the process's.
/// `{ env: VAR }` secrets and `SFJIRA_CONFIG` are looked up in `env` too.
///
/// # Errors
///
/// As [`load`].
pub fn load_from(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<SfjiraConfig, ConfigError> {
    let env: BTreeMap<String, String> = env.into_iter().collect();
    let path: Option<PathBuf> = path.map(Path::to_path_buf).or_else(|| {
        env.get(CONFIG_PATH_VAR)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });

    let mut figment = Figment::new();
    if let Some(path) = &path {
        // figment reads a missing file as an empty one; a deployment pointing at a file that is
        // not there is a mistake worth stopping for.
        if let Err(e) = std::fs::File::open(path) {
            return Err(ConfigError {
                key: String::new(),
                problem: format!("cannot read config file {}: {e}", path.display()),
                fix: format!("check the path given to the service or in {CONFIG_PATH_VAR}"),
                location: Some(path.display().to_string()),
            });
        }
        figment = figment.merge(Yaml::file_exact(path));
    }
    figment = figment.merge(env::Overrides::new(&env)?);

    let locator = error::Locator::new(&figment, path.as_deref());
    // Lossy: environment values are strings, and `"10000"` must fill a `u64`.
    let config: SfjiraConfig = secret::with_context(&figment, &env, || {
        figment
            .extract_lossy()
            .map_err(|e| locator.figment_error(e))
    })?;
    config.validate().map_err(|e| locator.locate(e))?;
    Ok(config)
}
