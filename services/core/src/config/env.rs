//! The `SFJIRA_<SECTION>__<KEY>` environment overrides as a figment provider. The naming rules
//! and why this is not figment's own `Env` are in the parent module comment.

use std::collections::BTreeMap;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::ConfigError;

/// The prefix of every sfjira variable.
pub(super) const PREFIX: &str = "SFJIRA_";
/// Separates nesting levels in a variable name.
const NESTING: &str = "__";
/// The provider's name in figment metadata; `secret.rs` and `error.rs` recognise values from
/// the environment by it.
pub(super) const PROVIDER_NAME: &str = "environment variable";
/// Maps whose keys are librdkafka property names: in their keys `_` stands for `.`.
const PROPERTY_MAPS: &[&str] = &["properties", "secret_properties"];

/// The configuration keys set in the environment, nested like the YAML.
pub(super) struct Overrides {
    dict: Dict,
}

impl Overrides {
    /// Collects the `SFJIRA_…__…` variables of `env`.
    ///
    /// # Errors
    ///
    /// A variable whose name has an empty segment (`SFJIRA_KAFKA__`), or one that sets a key
    /// another variable uses as a section.
    pub(super) fn new(env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut dict = Dict::new();
        for (name, value) in env {
            let Some(path) = key_path(name) else { continue };
            let problem = if path.iter().any(String::is_empty) {
                Some("has an empty key segment".to_string())
            } else {
                insert(&mut dict, &path, Value::from(value.clone())).err()
            };
            if let Some(problem) = problem {
                let path: Vec<&str> = path
                    .iter()
                    .map(String::as_str)
                    .filter(|s| !s.is_empty())
                    .collect();
                return Err(ConfigError {
                    key: path.join("."),
                    problem: format!("environment variable {name} {problem}"),
                    fix: "name it SFJIRA_<SECTION>__<KEY>, one `__` between levels, e.g. \
                          SFJIRA_KAFKA__BOOTSTRAP_SERVERS"
                        .into(),
                    location: Some(format!("env {name}")),
                });
            }
        }
        Ok(Overrides { dict })
    }
}

/// The key path a variable sets, or `None` if it is not a configuration variable (no `__`
/// after the prefix: `SFJIRA_CONFIG`, `SFJIRA_TEST_…`).
fn key_path(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix(PREFIX)?;
    if !rest.contains(NESTING) {
        return None;
    }
    let mut path: Vec<String> = Vec::new();
    for segment in rest.split(NESTING) {
        let mut key = segment.to_ascii_lowercase();
        if path
            .last()
            .is_some_and(|parent| PROPERTY_MAPS.contains(&parent.as_str()))
        {
            key = key.replace('_', ".");
        }
        path.push(key);
    }
    Some(path)
}

/// The variable that sets `path`: the inverse of [`key_path`], for error messages.
pub(super) fn var_name<S: AsRef<str>>(path: &[S]) -> String {
    let segments: Vec<String> = path
        .iter()
        .map(|s| s.as_ref().replace('.', "_").to_ascii_uppercase())
        .collect();
    format!("{PREFIX}{}", segments.join(NESTING))
}

fn insert(dict: &mut Dict, path: &[String], value: Value) -> Result<(), String> {
    let conflict = || "sets a key that another SFJIRA_ variable uses as a section".to_string();
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut current = dict;
    for segment in parents {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| Value::from(Dict::new()));
        match entry {
            Value::Dict(_, inner) => current = inner,
            _ => return Err(conflict()),
        }
    }
    if current.contains_key(last) {
        return Err(conflict());
    }
    current.insert(last.clone(), value);
    Ok(())
}

impl Provider for Overrides {
    fn metadata(&self) -> Metadata {
        Metadata::named(PROVIDER_NAME).interpolater(|_: &Profile, keys: &[&str]| var_name(keys))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_key_paths_and_back() {
        assert_eq!(
            key_path("SFJIRA_KAFKA__BOOTSTRAP_SERVERS").unwrap(),
            ["kafka", "bootstrap_servers"]
        );
        assert_eq!(
            key_path("SFJIRA_KAFKA__SECRET_PROPERTIES__SASL_PASSWORD").unwrap(),
            ["kafka", "secret_properties", "sasl.password"]
        );
        assert_eq!(key_path("SFJIRA_CONFIG"), None);
        assert_eq!(key_path("SFJIRA_TEST_KAFKA_URL"), None);
        assert_eq!(key_path("OTHER__THING"), None);
        assert_eq!(
            var_name(&["kafka", "secret_properties", "sasl.password"]),
            "SFJIRA_KAFKA__SECRET_PROPERTIES__SASL_PASSWORD"
        );
    }
}
