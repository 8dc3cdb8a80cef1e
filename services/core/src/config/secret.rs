//! Secrets in the configuration: where they may come from, resolving them at load time, and
//! keeping them out of `Debug` output (and so out of logs and error reports).
//!
//! See the parent module comment for why resolution happens inside `Deserialize` and why the
//! figment and the environment reach it through a thread-local.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use figment::Figment;
use figment::value::{Dict, Tag, Value};
use secrecy::{ExposeSecret, SecretString};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::env;

/// Stands for the key's own `SFJIRA_…` variable in error fixes; `error.rs` fills it in once the
/// key path is known (a `Deserialize` impl does not know where it is in the tree).
pub(super) const ENV_VAR_PLACEHOLDER: &str = "{env_var}";

/// A configuration value that must not be seen: a password, a client secret, a private key.
///
/// Its value is held in a [`SecretString`] (zeroed on drop) and is only reachable through
/// [`Secret::expose`], so every place that uses it is greppable. `Debug` shows the origin,
/// e.g. `Secret(env:KAFKA_PASSWORD)`, never the value. There is deliberately no `Display`.
#[derive(Clone)]
pub struct Secret {
    value: SecretString,
    origin: Origin,
}

/// Where a secret came from: worth showing (it tells an operator which variable or file to
/// check), and harmless to show.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    /// `{ env: VAR }` in the YAML.
    Env(String),
    /// `{ file: /path }` in the YAML.
    File(PathBuf),
    /// A literal in an `SFJIRA_…` variable.
    EnvOverride,
    /// Made in code with [`Secret::new`].
    Code,
}

impl Secret {
    /// Wraps a value obtained some other way (tests, a token fetched at runtime).
    pub fn new(value: impl Into<String>) -> Self {
        Secret {
            value: SecretString::from(value.into()),
            origin: Origin::Code,
        }
    }

    /// The secret itself, for the code that has to hand it to a client library. Never log it.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Env(var) => write!(f, "Secret(env:{var})"),
            Origin::File(path) => write!(f, "Secret(file:{})", path.display()),
            Origin::EnvOverride => f.write_str("Secret(env:SFJIRA_…)"),
            Origin::Code => f.write_str("Secret([redacted])"),
        }
    }
}

/// What a `Secret` needs from the load in progress.
struct Context {
    /// To find which provider a value came from (its tag's metadata).
    figment: Figment,
    /// The environment `{ env: VAR }` is read from.
    env: BTreeMap<String, String>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Runs `f` (the extraction) with the load context installed for `Secret`'s `Deserialize`,
/// restoring the previous one afterwards, even on panic.
pub(super) fn with_context<R>(
    figment: &Figment,
    env: &BTreeMap<String, String>,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore(Option<Context>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CONTEXT.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let context = Context {
        figment: figment.clone(),
        env: env.clone(),
    };
    let _restore = Restore(CONTEXT.with(|c| c.borrow_mut().replace(context)));
    f()
}

/// Whether the value tagged `tag` came from an `SFJIRA_…` variable. Without a context (a
/// `Secret` deserialized outside [`super::load_from`]) the origin is unknown, so no.
fn from_env_override(tag: Tag) -> bool {
    CONTEXT.with(|c| {
        c.borrow().as_ref().is_some_and(|c| {
            c.figment
                .get_metadata(tag)
                .is_some_and(|m| m.name == env::PROVIDER_NAME)
        })
    })
}

/// Reads `var` from the load's environment, or the process's outside a load.
fn read_var(var: &str) -> Option<String> {
    CONTEXT.with(|c| match c.borrow().as_ref() {
        Some(c) => c.env.get(var).cloned(),
        None => std::env::var(var).ok(),
    })
}

const EXPECTED: &str = "expected `{ env: VAR_NAME }` or `{ file: /path/to/file }`";

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through figment, `Value` keeps the tags; through any other deserializer it still
        // works, with default tags (and so literals refused).
        let value = <Value as Deserialize>::deserialize(deserializer)?;
        resolve(&value).map_err(D::Error::custom)
    }
}

/// Turns the raw value into a secret, or an error message `"<problem>; fix: <fix>"` that never
/// contains the value.
fn resolve(value: &Value) -> Result<Secret, String> {
    match value {
        Value::Dict(_, dict) => resolve_reference(dict),
        Value::String(tag, literal) if from_env_override(*tag) => {
            if literal.is_empty() {
                return Err(format!(
                    "the environment variable setting this secret is empty; fix: set \
                     {ENV_VAR_PLACEHOLDER} to the secret, or unset it"
                ));
            }
            Ok(Secret {
                value: SecretString::from(literal.clone()),
                origin: Origin::EnvOverride,
            })
        }
        Value::String(..) | Value::Num(..) | Value::Bool(..) | Value::Char(..) => Err(format!(
            "a secret cannot be written in the config file, which gets committed and copied \
             around; fix: write `{{ env: VAR_NAME }}` or `{{ file: /path/to/file }}` instead, \
             or set the environment variable {ENV_VAR_PLACEHOLDER}"
        )),
        Value::Empty(..) | Value::Array(..) => Err(format!(
            "{EXPECTED}; fix: write the secret's reference as `{{ env: VAR_NAME }}` or \
             `{{ file: /path/to/file }}`"
        )),
    }
}

fn resolve_reference(dict: &Dict) -> Result<Secret, String> {
    let mut entries = dict.iter();
    let (kind, target) = match (entries.next(), entries.next()) {
        (Some((kind, Value::String(_, target))), None) => (kind.as_str(), target),
        _ => {
            let keys: Vec<&str> = dict.keys().map(String::as_str).collect();
            return Err(format!(
                "{EXPECTED}, got a map with keys [{}]; fix: use exactly one of `env` or `file`, \
                 with a string value",
                keys.join(", ")
            ));
        }
    };
    let value = match kind {
        "env" => {
            let value = read_var(target).ok_or_else(|| {
                format!(
                    "environment variable {target} is not set; fix: set {target} in the \
                     service's environment"
                )
            })?;
            if value.is_empty() {
                return Err(format!(
                    "environment variable {target} is empty; fix: set {target} to the secret"
                ));
            }
            (value, Origin::Env(target.clone()))
        }
        "file" => {
            let mut value = std::fs::read_to_string(target).map_err(|e| {
                format!("cannot read secret file {target}: {e}; fix: check the path and that the service may read it")
            })?;
            // Files written by `echo` or editors end with a newline that is not part of the
            // secret; anything else is kept verbatim.
            if value.ends_with('\n') {
                value.pop();
                if value.ends_with('\r') {
                    value.pop();
                }
            }
            if value.is_empty() {
                return Err(format!(
                    "secret file {target} is empty; fix: write the secret into it"
                ));
            }
            (value, Origin::File(PathBuf::from(target)))
        }
        other => {
            return Err(format!(
                "{EXPECTED}, got `{other}`; fix: use `env` (a variable name) or `file` (a path)"
            ));
        }
    };
    Ok(Secret {
        value: SecretString::from(value.0),
        origin: value.1,
    })
}
