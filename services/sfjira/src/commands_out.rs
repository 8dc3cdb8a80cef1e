//! Commands an operator makes (`sfjira rollback`, `sfjira reconcile --repair`), produced the way
//! the transformer produces its own: Avro with the registered command schema, keyed by
//! `target.external_ref` (so they queue behind earlier commands about the same record), with
//! `sfjira.command-id`, `sfjira.source` and a `traceparent` — and all of them in one Kafka
//! transaction, so an operator's action lands whole or not at all. They then go through the
//! sinks like any other command: deduplicated by id, audited, echo-suppressed.

use std::time::Duration;

use rand::Rng;
use sfjira_core::avro::AvroCodec;
use sfjira_core::command::avro::schema as command_schema;
use sfjira_core::command::{Command, System};
use sfjira_core::config::SfjiraConfig;
use sfjira_core::kafka::{OutRecord, TransactionalProducer, client_config, topic_name};

const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// A command and the extra headers it travels with (`sfjira.rollback-of`, …).
pub struct OutCommand {
    pub command: Command,
    pub headers: Vec<(String, String)>,
}

/// Where a command goes: `jira.commands` or `salesforce.commands` of this deployment.
pub fn topic_for(cfg: &SfjiraConfig, system: System) -> String {
    let base = match system {
        System::Jira => "jira.commands",
        System::Salesforce => "salesforce.commands",
    };
    topic_name(&cfg.kafka, base)
}

/// Produces `commands` in one transaction. `tool` names the transactional id (`sfjira-<tool>`,
/// plus `-<topic prefix>` when there is one): two runs of the same tool against one deployment
/// fence each other instead of interleaving. Returns the topic each command went to, in order.
pub async fn produce(
    cfg: &SfjiraConfig,
    tool: &str,
    commands: &[OutCommand],
) -> anyhow::Result<Vec<String>> {
    if commands.is_empty() {
        return Ok(Vec::new());
    }
    let codec = AvroCodec::new(&cfg.registry)?;
    let mut records = Vec::with_capacity(commands.len());
    for out in commands {
        let cmd = &out.command;
        let topic = topic_for(cfg, cmd.target.system);
        let writer = codec.register(&topic, command_schema()).await?;
        let payload = cmd.encode(&writer)?;
        let mut record = OutRecord::new(topic)
            .key(cmd.target.external_ref.clone())
            .payload(payload)
            .header("sfjira.command-id", cmd.command_id.clone())
            .header(
                "sfjira.source",
                format!(
                    "{}.{},{}",
                    cmd.source.system, cmd.source.entity, cmd.source.id
                ),
            )
            // An operator's action starts its own trace.
            .header("traceparent", new_traceparent());
        for (k, v) in &out.headers {
            record.set_header(k.clone(), v.clone());
        }
        records.push(record);
    }
    let txn_id = match cfg.kafka.topic_prefix.trim_end_matches('.') {
        "" => format!("sfjira-{tool}"),
        prefix => format!("sfjira-{tool}-{prefix}"),
    };
    let base = client_config(&cfg.kafka);
    let mut producer = TransactionalProducer::new(&base, &txn_id, TXN_TIMEOUT).await?;
    producer.begin()?;
    for r in &records {
        if let Err(e) = producer.send_prepared(r).await {
            let _ = producer.abort().await;
            return Err(e.into());
        }
    }
    producer.commit().await?;
    Ok(records.into_iter().map(|r| r.topic).collect())
}

/// A W3C `traceparent` with fresh random trace and span ids, sampled.
fn new_traceparent() -> String {
    let mut rng = rand::rng();
    let trace: u128 = rng.random::<u128>().max(1);
    let span: u64 = rng.random::<u64>().max(1);
    format!("00-{trace:032x}-{span:016x}-01")
}

#[cfg(test)]
mod tests {
    #[test]
    fn traceparents_are_well_formed() {
        let t = super::new_traceparent();
        let parts: Vec<&str> = t.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[1].len(), parts[2].len()), (32, 16));
    }
}
