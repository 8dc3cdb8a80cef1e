//! [`ConfigError`], and turning figment's errors and validation failures into one that says
//! which key, what is wrong, how to fix it, and where the value came from. A service that will
//! not start is only as quick to fix as this message is precise.

use std::cell::OnceCell;
use std::fmt;
use std::path::Path;

use figment::error::Kind;
use figment::value::Value;
use figment::{Figment, Metadata};

use super::env;
use super::secret::ENV_VAR_PLACEHOLDER;

/// Why the configuration cannot be used. Displays as
/// `config error at kafka.bootstrap_servers (config/sfjira.yaml:7): <problem>; fix: <fix>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error{}{}: {problem}; fix: {fix}", Key(.key), Location(.location))]
pub struct ConfigError {
    /// Dotted path of the offending key, e.g. `kafka.bootstrap_servers`; empty when the problem
    /// is the file as a whole (unreadable, not YAML).
    pub key: String,
    /// What is wrong, with what was expected.
    pub problem: String,
    /// What to change.
    pub fix: String,
    /// Where the value came from, when known: `path/to/file.yaml:12` or
    /// `env SFJIRA_KAFKA__BOOTSTRAP_SERVERS`.
    pub location: Option<String>,
}

impl ConfigError {
    /// An invalid value at `key`; the loader fills in the location.
    pub fn invalid(
        key: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
            location: None,
        }
    }
}

struct Key<'a>(&'a String);
impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " at {}", self.0)
        }
    }
}

struct Location<'a>(&'a Option<String>);
impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(location) => write!(f, " ({location})"),
            None => Ok(()),
        }
    }
}

/// Finds where values came from, for one load.
pub(super) struct Locator<'a> {
    figment: &'a Figment,
    file: Option<&'a Path>,
    /// The YAML text, read only if an error needs a line number.
    text: OnceCell<Option<String>>,
}

impl<'a> Locator<'a> {
    pub(super) fn new(figment: &'a Figment, file: Option<&'a Path>) -> Self {
        Locator {
            figment,
            file,
            text: OnceCell::new(),
        }
    }

    /// Maps the first of figment's errors (it may chain several; one precise message beats a
    /// wall of them, and fixing it reveals the next).
    pub(super) fn figment_error(&self, error: figment::Error) -> ConfigError {
        let mut path = error.path.clone();
        let parent = |path: &[String]| match path {
            [] => "the top level".to_string(),
            path => format!("`{}`", path.join(".")),
        };
        let (problem, fix, exact) = match &error.kind {
            Kind::MissingField(name) => {
                path.push(name.to_string());
                let key = path.join(".");
                let problem = format!("missing required key `{name}` in {}", parent(&error.path));
                let fix = if error.path.is_empty() {
                    // A whole section: there is no single variable to suggest.
                    format!(
                        "add a `{name}:` section to the config file, or set its keys as {}__<KEY> \
                         (see docs/configuration.md)",
                        env::var_name(&path)
                    )
                } else {
                    format!(
                        "set {key} in the config file or as {}",
                        env::var_name(&path)
                    )
                };
                (problem, fix, false)
            }
            Kind::UnknownField(name, allowed) => {
                let within = parent(&path[..path.len().saturating_sub(1)]);
                let problem = format!("unknown key `{name}` in {within}");
                let fix = format!(
                    "allowed keys in {within}: {}; check the spelling",
                    allowed.join(", ")
                );
                (problem, fix, true)
            }
            Kind::UnknownVariant(value, allowed) => (
                format!("unknown value `{value}`"),
                format!("use one of: {}", allowed.join(", ")),
                true,
            ),
            Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                let expected = plain_type(expected);
                (
                    format!("expected {expected}, found {actual}"),
                    format!("set {} to {expected}", path.join(".")),
                    true,
                )
            }
            Kind::Message(message) => match message.split_once("; fix: ") {
                Some((problem, fix)) => (problem.to_string(), fix.to_string(), true),
                // With no key, figment could not parse the file at all.
                None if path.is_empty() => (
                    message.clone(),
                    "correct the YAML syntax at that position".to_string(),
                    true,
                ),
                None => (
                    message.clone(),
                    "see docs/configuration.md for the expected value".to_string(),
                    true,
                ),
            },
            other => (
                other.to_string(),
                "see docs/configuration.md".to_string(),
                true,
            ),
        };
        ConfigError {
            fix: fix.replace(ENV_VAR_PLACEHOLDER, &env::var_name(&path)),
            key: path.join("."),
            problem,
            location: self.describe(error.metadata.as_ref(), &path, exact),
        }
    }

    /// Fills in where the value behind a validation error came from.
    pub(super) fn locate(&self, mut error: ConfigError) -> ConfigError {
        if error.location.is_none() {
            let merged = self.figment.extract::<Value>().ok();
            if let Some((path, value)) = merged.as_ref().and_then(|v| find_dotted(v, &error.key)) {
                let metadata = self.figment.get_metadata(value.tag());
                error.location = self.describe(metadata, &path, true);
            }
        }
        error
    }

    /// `file:line` or `env VAR` for a value at `path` from the provider `metadata`. `exact` is
    /// false when `path` names a key that is absent: no variable to point at then, but the file
    /// line of its parent still helps.
    fn describe(
        &self,
        metadata: Option<&Metadata>,
        path: &[String],
        exact: bool,
    ) -> Option<String> {
        let is_env = metadata.is_some_and(|m| m.name == env::PROVIDER_NAME);
        if is_env {
            return exact.then(|| format!("env {}", env::var_name(path)));
        }
        let file = metadata
            .and_then(|m| m.source.as_ref())
            .and_then(|s| s.file_path())
            .or(self.file)?;
        let text = self.text.get_or_init(|| std::fs::read_to_string(file).ok());
        Some(match text.as_deref().and_then(|t| find_line(t, path)) {
            Some(line) => format!("{}:{line}", file.display()),
            None => file.display().to_string(),
        })
    }
}

/// Serde's names for primitive types, in words for people who do not write Rust.
fn plain_type(expected: &str) -> &str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number >= 0",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        other => other,
    }
}

/// Walks `root` along a dotted key whose segments may themselves contain dots
/// (`kafka.properties.sasl.password`), preferring the longest segment that exists at each
/// level. Returns the real segments and the value.
fn find_dotted<'v>(root: &'v Value, key: &str) -> Option<(Vec<String>, &'v Value)> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut path = Vec::new();
    let mut value = root;
    let mut rest = &parts[..];
    while !rest.is_empty() {
        let dict = value.as_dict()?;
        let (n, next) = (1..=rest.len())
            .rev()
            .find_map(|n| dict.get(&rest[..n].join(".")).map(|v| (n, v)))?;
        path.push(rest[..n].join("."));
        value = next;
        rest = &rest[n..];
    }
    Some((path, value))
}

/// The 1-based line of the key at `path` in block-style YAML, or of its deepest ancestor that
/// is there. Best effort (flow mappings and lists are not entered): figment keeps no positions,
/// and a line number is a convenience, not something to parse YAML twice for.
pub(super) fn find_line(text: &str, path: &[String]) -> Option<usize> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut best: Option<(usize, usize)> = None; // (matched depth, line)
    for (index, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') || content.starts_with('-') {
            continue;
        }
        let Some(key) = yaml_key(content) else {
            continue;
        };
        let indent = line.len() - content.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        let depth = stack.len();
        if depth <= path.len() && stack.iter().zip(path).all(|((_, k), p)| k == p) {
            if depth == path.len() {
                return Some(index + 1);
            }
            if best.is_none_or(|(d, _)| depth > d) {
                best = Some((depth, index + 1));
            }
        }
    }
    best.map(|(_, line)| line)
}

/// The key of a `key: value` or `key:` line, unquoting `"key"` and `'key'`.
fn yaml_key(content: &str) -> Option<String> {
    if let Some(quote) = content.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let inner = &content[1..];
        let end = inner.find(quote)?;
        return inner[end + 1..]
            .starts_with(':')
            .then(|| inner[..end].to_string());
    }
    let end = content
        .find(": ")
        .or_else(|| content.strip_suffix(':').map(str::len))?;
    Some(content[..end].trim_end().to_string())
}
