//! Wiring the sink from the deployment configuration: topics, the links store (loaded, then
//! tailed), the applied command ids and last-written times from `sfjira.audit`, the field
//! catalog from `GET /field`, the producers and the consumer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use sfjira_core::audit::{self, AuditResult};
use sfjira_core::avro::AvroCodec;
use sfjira_core::config::SfjiraConfig;
use sfjira_core::dlq::DlqRouter;
use sfjira_core::kafka::{
    IdempotentProducer, KafkaConsumer, TransactionalProducer, client_config, topic_name,
};
use sfjira_core::links::{self, LinkStore};

use crate::fields::FieldCatalog;
use crate::jira::JiraClient;
use crate::runtime::{Runtime, TXN_TIMEOUT};
use crate::sink::{CrashPoint, STAGE, Sink};

/// Builds a ready-to-run sink from `cfg` (its `jira_sink` section is required).
///
/// # Errors
///
/// No `jira_sink` section; Kafka, the registry or Jira unreachable at start.
pub async fn build(cfg: &SfjiraConfig) -> anyhow::Result<Runtime> {
    let sc = cfg
        .jira_sink
        .clone()
        .context("the configuration has no `jira_sink` section; see docs/configuration.md")?;
    let base = client_config(&cfg.kafka);
    let links_topic = topic_name(&cfg.kafka, links::TOPIC);
    let audit_topic = topic_name(&cfg.kafka, audit::TOPIC);
    let commands_topic = topic_name(&cfg.kafka, "jira.commands");

    let store = {
        let (b, t) = (base.clone(), links_topic.clone());
        tokio::task::spawn_blocking(move || LinkStore::load(&b, &t))
            .await?
            .with_context(|| format!("loading {links_topic}"))?
    };
    let lookback = Duration::from_secs(sc.audit_lookback_hours * 3600);
    let entries = {
        let (b, t) = (base.clone(), audit_topic.clone());
        tokio::task::spawn_blocking(move || audit::read_since(&b, &t, Some(lookback)))
            .await?
            .with_context(|| format!("reading {audit_topic}"))?
    };
    // Per command, its latest result: applied or skipped means done (a replay is skipped); a
    // command whose latest entry is `failed` (say created, then its status unreachable) stays
    // replayable from the DLQ.
    let mut latest: HashMap<String, AuditResult> = HashMap::new();
    let mut written: HashMap<(String, String), i64> = HashMap::new();
    for e in entries.into_iter().filter(|e| e.sink == STAGE) {
        if e.result != AuditResult::Superseded {
            latest.insert(e.command_id.clone(), e.result);
        }
        if e.result == AuditResult::Applied {
            for f in e.after.keys() {
                let at = written
                    .entry((e.external_ref.clone(), f.clone()))
                    .or_insert(e.source_time_ms);
                *at = (*at).max(e.source_time_ms);
            }
        }
    }
    let applied: HashSet<String> = latest
        .into_iter()
        .filter(|(_, r)| matches!(r, AuditResult::Applied | AuditResult::Skipped))
        .map(|(id, _)| id)
        .collect();

    let jira = Arc::new(JiraClient::new(&sc)?);
    let fields = jira
        .call(Method::GET, "fields", "/rest/api/3/field", None)
        .await
        .map_err(|(e, _)| anyhow::anyhow!("reading the site's fields (GET /field): {e}"))?;
    let fields = FieldCatalog::from_fields(&fields);

    let txn_id = format!("{}-{STAGE}-{}", sc.group_id, cfg.service.instance_id);
    let producer = TransactionalProducer::new(&base, &txn_id, TXN_TIMEOUT).await?;
    let link_producer = IdempotentProducer::new(&base)?;
    let consumer = KafkaConsumer::new_static(
        &base,
        &sc.group_id,
        &cfg.service.instance_id,
        &[&commands_topic],
    )?;
    let codec = AvroCodec::new(&cfg.registry)?;
    let dlq = DlqRouter::new(STAGE, &cfg.kafka.topic_prefix, &cfg.service.instance_id)
        .redacting([sc.api_token.expose().to_string()]);
    tracing::info!(
        links = store.len(),
        applied = applied.len(),
        "jira-sink state loaded"
    );
    let sink = Sink {
        cfg: sc,
        jira,
        fields,
        links: store,
        links_topic,
        audit_topic,
        dlq,
        link_producer: Some(link_producer),
        crash: CrashPoint::from_env(),
        written: Mutex::new(written),
        failed: Mutex::new(HashMap::new()),
    };
    Ok(Runtime::new(
        Arc::new(sink),
        consumer,
        producer,
        codec,
        applied,
    ))
}
