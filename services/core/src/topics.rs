//! Topics as code: `infra/topics.yaml` declares every topic sfjira uses; [`apply`] makes the
//! cluster match it and reports what it cannot make match.
//!
//! What is fixed: missing topics are created; `cleanup.policy`, `retention.ms` and declared
//! `configs` are set when they differ. What is only reported ([`TopicAction::Drift`]): a
//! partition count other than declared. Fewer partitions could be grown, but growing moves keys
//! to other partitions and breaks sfjira's per-record ordering, so that is an operator's
//! decision, not a side effect of `apply`; more partitions cannot be undone at all.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use serde::Deserialize;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanupPolicy {
    Delete,
    Compact,
}

impl CleanupPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
        }
    }
}

/// One declared topic, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// -1: the broker's `default.replication.factor`.
    pub replication_factor: i32,
    pub cleanup_policy: CleanupPolicy,
    /// -1: forever.
    pub retention_ms: i64,
    pub configs: BTreeMap<String, String>,
}

impl TopicSpec {
    /// The topic configs this spec requires (cleanup policy, retention, and the rest).
    pub fn desired_configs(&self) -> BTreeMap<String, String> {
        let mut c = self.configs.clone();
        c.insert("cleanup.policy".into(), self.cleanup_policy.as_str().into());
        c.insert("retention.ms".into(), self.retention_ms.to_string());
        c
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicsFile {
    defaults: Defaults,
    topics: Vec<TopicEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    partitions: i32,
    replication_factor: i32,
    cleanup_policy: CleanupPolicy,
    retention_ms: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicEntry {
    name: String,
    partitions: Option<i32>,
    replication_factor: Option<i32>,
    cleanup_policy: Option<CleanupPolicy>,
    retention_ms: Option<i64>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// Reads and validates a topics file; names get `prefix` in front.
pub fn load(path: &Path, prefix: &str) -> anyhow::Result<Vec<TopicSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text, prefix).with_context(|| format!("in {}", path.display()))
}

pub fn parse(text: &str, prefix: &str) -> anyhow::Result<Vec<TopicSpec>> {
    let file: TopicsFile = serde_yaml::from_str(text)?;
    let d = &file.defaults;
    let mut seen = HashSet::new();
    let mut specs = Vec::with_capacity(file.topics.len());
    for t in file.topics {
        let spec = TopicSpec {
            name: format!("{prefix}{}", t.name),
            partitions: t.partitions.unwrap_or(d.partitions),
            replication_factor: t.replication_factor.unwrap_or(d.replication_factor),
            cleanup_policy: t.cleanup_policy.unwrap_or(d.cleanup_policy),
            retention_ms: t.retention_ms.unwrap_or(d.retention_ms),
            configs: t.configs,
        };
        if !seen.insert(spec.name.clone()) {
            bail!("topic {} is declared twice", spec.name);
        }
        if spec.partitions < 1 {
            bail!(
                "topic {}: partitions must be at least 1, got {}",
                spec.name,
                spec.partitions
            );
        }
        if spec.replication_factor == 0 || spec.replication_factor < -1 {
            bail!(
                "topic {}: replication_factor must be -1 (broker default) or at least 1",
                spec.name
            );
        }
        if spec.retention_ms < -1 {
            bail!(
                "topic {}: retention_ms must be -1 (forever) or a number of milliseconds",
                spec.name
            );
        }
        for key in ["cleanup.policy", "retention.ms"] {
            if spec.configs.contains_key(key) {
                bail!(
                    "topic {}: set {key} with its own field, not under configs",
                    spec.name
                );
            }
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// What [`apply`] did, or found, for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicAction {
    Created {
        name: String,
    },
    Unchanged {
        name: String,
    },
    /// Configs set to the declared values: (key, was, now).
    ConfigUpdated {
        name: String,
        changes: Vec<(String, Option<String>, String)>,
    },
    /// A difference `apply` does not fix.
    Drift {
        name: String,
        problem: String,
    },
}

impl std::fmt::Display for TopicAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicAction::Created { name } => write!(f, "created    {name}"),
            TopicAction::Unchanged { name } => write!(f, "ok         {name}"),
            TopicAction::ConfigUpdated { name, changes } => {
                write!(f, "updated    {name}:")?;
                for (k, was, now) in changes {
                    write!(f, " {k} {} -> {now};", was.as_deref().unwrap_or("(unset)"))?;
                }
                Ok(())
            }
            TopicAction::Drift { name, problem } => write!(f, "DRIFT      {name}: {problem}"),
        }
    }
}

/// Makes the cluster match `specs` (see the module comment). With `dry_run`, only reports what
/// it would do.
pub async fn apply(
    base: &ClientConfig,
    specs: &[TopicSpec],
    dry_run: bool,
) -> anyhow::Result<Vec<TopicAction>> {
    let admin: AdminClient<DefaultClientContext> =
        base.create().context("creating the Kafka admin client")?;
    let opts = AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT));
    let existing = partition_counts(&admin)?;

    let mut actions = Vec::with_capacity(specs.len());
    let mut to_create = Vec::new();
    for spec in specs {
        match existing.get(&spec.name) {
            None => to_create.push(spec),
            Some(&count) => actions.push(reconcile(&admin, &opts, spec, count, dry_run).await?),
        }
    }
    if !to_create.is_empty() {
        let configs: Vec<BTreeMap<String, String>> =
            to_create.iter().map(|s| s.desired_configs()).collect();
        let new_topics: Vec<NewTopic<'_>> = to_create
            .iter()
            .zip(&configs)
            .map(|(s, cfg)| {
                cfg.iter().fold(
                    NewTopic::new(
                        &s.name,
                        s.partitions,
                        TopicReplication::Fixed(s.replication_factor),
                    ),
                    |t, (k, v)| t.set(k, v),
                )
            })
            .collect();
        if !dry_run {
            for result in admin.create_topics(&new_topics, &opts).await? {
                match result {
                    Ok(_) => {}
                    Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                        tracing::info!(topic = %name, "created concurrently by someone else");
                    }
                    Err((name, e)) => bail!("creating topic {name}: {e}"),
                }
            }
        }
        actions.extend(to_create.iter().map(|s| TopicAction::Created {
            name: s.name.clone(),
        }));
    }
    Ok(actions)
}

async fn reconcile(
    admin: &AdminClient<DefaultClientContext>,
    opts: &AdminOptions,
    spec: &TopicSpec,
    partitions: i32,
    dry_run: bool,
) -> anyhow::Result<TopicAction> {
    let current = describe(admin, opts, &spec.name).await?;
    let desired = spec.desired_configs();
    let changes: Vec<(String, Option<String>, String)> = desired
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), current.get(k).cloned(), v.clone()))
        .collect();
    if partitions != spec.partitions {
        let hint = if partitions < spec.partitions {
            "grow it with `infra/kafka/tool kafka-topics --alter --partitions N` if moving keys between partitions is acceptable"
        } else {
            "Kafka cannot remove partitions: change infra/topics.yaml, or recreate the topic"
        };
        let config_note = if changes.is_empty() {
            String::new()
        } else {
            format!(" (configs also differ: {})", keys(&changes))
        };
        return Ok(TopicAction::Drift {
            name: spec.name.clone(),
            problem: format!(
                "{partitions} partitions, declared {}; {hint}{config_note}",
                spec.partitions
            ),
        });
    }
    if changes.is_empty() {
        return Ok(TopicAction::Unchanged {
            name: spec.name.clone(),
        });
    }
    if !dry_run {
        // AlterConfigs (non-incremental) resets unspecified dynamic configs, so send every
        // declared one: sfjira owns these topics' configs.
        let alter = desired.iter().fold(
            AlterConfig::new(ResourceSpecifier::Topic(&spec.name)),
            |a, (k, v)| a.set(k, v),
        );
        for r in admin.alter_configs([&alter], opts).await? {
            r.map_err(|(_, e)| anyhow::anyhow!("altering configs of {}: {e}", spec.name))?;
        }
    }
    Ok(TopicAction::ConfigUpdated {
        name: spec.name.clone(),
        changes,
    })
}

fn keys(changes: &[(String, Option<String>, String)]) -> String {
    changes
        .iter()
        .map(|(k, _, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn partition_counts(
    admin: &AdminClient<DefaultClientContext>,
) -> anyhow::Result<BTreeMap<String, i32>> {
    let md = admin
        .inner()
        .fetch_metadata(None, ADMIN_TIMEOUT)
        .context("reading cluster metadata (is Kafka reachable at kafka.bootstrap_servers?)")?;
    Ok(md
        .topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

async fn describe(
    admin: &AdminClient<DefaultClientContext>,
    opts: &AdminOptions,
    topic: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], opts)
        .await?;
    let resource = results
        .into_iter()
        .next()
        .context("no answer to describe_configs")?
        .map_err(|e| anyhow::anyhow!("describing {topic}: {e}"))?;
    Ok(resource
        .entries
        .into_iter()
        .filter_map(|e| e.value.map(|v| (e.name, v)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_topics_file_declares_every_design_topic() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/topics.yaml");
        let specs = load(&path, "").unwrap();
        let by_name: BTreeMap<_, _> = specs.iter().map(|s| (s.name.as_str(), s)).collect();
        for name in [
            "salesforce.cdc.Opportunity",
            "jira.issues",
            "jira.comments",
            "jira.worklogs",
            "jira.commands",
            "salesforce.commands",
            "transformer.dlq",
            "jira-sink.dlq",
            "salesforce-sink.dlq",
            "sfjira.audit",
        ] {
            assert!(by_name.contains_key(name), "{name} missing");
        }
        for compacted in ["sfjira.links", "sfjira.checkpoints"] {
            assert_eq!(
                by_name[compacted].cleanup_policy,
                CleanupPolicy::Compact,
                "{compacted}"
            );
        }
        assert_eq!(by_name["jira.issues"].cleanup_policy, CleanupPolicy::Delete);
    }

    #[test]
    fn invalid_files_say_what_is_wrong() {
        let base = "defaults: {partitions: 1, replication_factor: -1, cleanup_policy: delete, retention_ms: 1}\n";
        let dup = format!("{base}topics: [{{name: a}}, {{name: a}}]");
        assert!(
            parse(&dup, "")
                .unwrap_err()
                .to_string()
                .contains("declared twice")
        );
        let zero = format!("{base}topics: [{{name: a, partitions: 0}}]");
        assert!(
            parse(&zero, "")
                .unwrap_err()
                .to_string()
                .contains("partitions must be at least 1")
        );
        let unknown = format!("{base}topics: [{{name: a, partitons: 2}}]");
        assert!(
            parse(&unknown, "")
                .unwrap_err()
                .to_string()
                .contains("partitons")
        );
        let prefixed = parse(&format!("{base}topics: [{{name: a}}]"), "acme.").unwrap();
        assert_eq!(prefixed[0].name, "acme.a");
    }
}
