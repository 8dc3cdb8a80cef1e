//! Kafka's own operator tools (`infra/kafka/tool`, the broker's jars) driven from tests, and the
//! runbook's procedure for a transaction left open on `__consumer_offsets` built on them. The
//! commands docs/runbook.md tells an operator to run are the ones the tests run, and the table
//! parsing below is the reading an operator does by eye.

use std::path::PathBuf;

use anyhow::{Context, bail};
use tokio::process::Command;

/// `infra/kafka/tool` pointed at one broker.
#[derive(Debug, Clone)]
pub struct KafkaTool {
    script: PathBuf,
    bootstrap: String,
}

/// A transaction still open on a partition, as Kafka's `kafka-transactions` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTransaction {
    pub topic: String,
    pub partition: i32,
    pub producer_id: i64,
    /// The offset `kafka-transactions abort --start-offset` takes.
    pub start_offset: i64,
}

impl KafkaTool {
    pub fn new(bootstrap: &str) -> Self {
        KafkaTool {
            script: repo_root().join("infra/kafka/tool"),
            bootstrap: bootstrap.to_string(),
        }
    }

    /// Runs `name` with `args` against this broker; its standard output, or an error with its
    /// standard error.
    pub async fn run(&self, name: &str, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.script)
            .arg(name)
            .args(["--bootstrap-server", &self.bootstrap])
            .args(args)
            .output()
            .await
            .with_context(|| format!("running {}", self.script.display()))?;
        if !out.status.success() {
            bail!(
                "infra/kafka/tool {name} {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The open transactions on one partition: `kafka-transactions describe-producers` rows whose
    /// `CurrentTransactionStartOffset` is a number (an idle producer shows `None`).
    pub async fn open_transactions(
        &self,
        topic: &str,
        partition: i32,
    ) -> anyhow::Result<Vec<OpenTransaction>> {
        let p = partition.to_string();
        let out = self
            .run(
                "kafka-transactions",
                &["describe-producers", "--topic", topic, "--partition", &p],
            )
            .await?;
        let rows = table(&out);
        let mut open = Vec::new();
        for row in &rows {
            let Some(start) = row.get("CurrentTransactionStartOffset") else {
                bail!("describe-producers printed no CurrentTransactionStartOffset column:\n{out}");
            };
            if let Ok(start_offset) = start.parse() {
                open.push(OpenTransaction {
                    topic: topic.to_string(),
                    partition,
                    producer_id: number(row, "ProducerId", &out)?,
                    start_offset,
                });
            }
        }
        Ok(open)
    }

    /// `kafka-transactions find-hanging` on `topic`: transactions open longer than
    /// `older_than_minutes` that no transaction coordinator tracks any more.
    pub async fn hanging_transactions(
        &self,
        topic: &str,
        older_than_minutes: u32,
    ) -> anyhow::Result<Vec<OpenTransaction>> {
        let minutes = older_than_minutes.to_string();
        let out = self
            .run(
                "kafka-transactions",
                &[
                    "find-hanging",
                    "--broker-id",
                    "1",
                    "--topic",
                    topic,
                    "--max-transaction-timeout",
                    &minutes,
                ],
            )
            .await?;
        table(&out)
            .iter()
            .map(|row| {
                Ok(OpenTransaction {
                    topic: row.get("Topic").cloned().unwrap_or_else(|| topic.into()),
                    partition: number(row, "Partition", &out)? as i32,
                    producer_id: number(row, "ProducerId", &out)?,
                    start_offset: number(row, "StartOffset", &out)?,
                })
            })
            .collect()
    }

    /// `kafka-transactions abort --topic … --partition … --start-offset …`.
    pub async fn abort(&self, t: &OpenTransaction) -> anyhow::Result<()> {
        let (p, o) = (t.partition.to_string(), t.start_offset.to_string());
        self.run(
            "kafka-transactions",
            &[
                "abort",
                "--topic",
                &t.topic,
                "--partition",
                &p,
                "--start-offset",
                &o,
            ],
        )
        .await
        .map(|_| ())
    }
}

impl KafkaTool {
    /// The `__consumer_offsets` partition of this broker that holds `group`'s offsets (the
    /// partition count read from the broker's metadata).
    pub fn offsets_partition(&self, group: &str) -> anyhow::Result<i32> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()?;
        let md = client.fetch_metadata(
            Some("__consumer_offsets"),
            std::time::Duration::from_secs(10),
        )?;
        let partitions = md.topics().first().map_or(0, |t| t.partitions().len());
        anyhow::ensure!(
            partitions > 0,
            "the broker lists no __consumer_offsets partitions"
        );
        Ok(offsets_partition_of(group, partitions as i32))
    }
}

/// The `__consumer_offsets` partition that holds `group`'s offsets: Kafka places a group by
/// its id's Java `String.hashCode`, made non-negative, modulo the topic's partition count
/// (`offsets.topic.num.partitions`; the project's broker has 10).
pub fn offsets_partition_of(group: &str, partitions: i32) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    // Kafka's Utils.abs: Integer.MIN_VALUE maps to 0, not to itself.
    let non_negative = if hash == i32::MIN { 0 } else { hash.abs() };
    non_negative % partitions
}

/// A tool's tab-separated table (header line first, cells padded with spaces) as rows keyed
/// by column name. Lines that are not part of the table (warnings) are skipped.
fn table(out: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = out.lines().filter(|l| l.contains('\t'));
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<String> = header.split('\t').map(|c| c.trim().to_string()).collect();
    lines
        .map(|line| {
            columns
                .iter()
                .cloned()
                .zip(line.split('\t').map(|c| c.trim().to_string()))
                .collect()
        })
        .collect()
}

fn number(
    row: &std::collections::HashMap<String, String>,
    column: &str,
    out: &str,
) -> anyhow::Result<i64> {
    row.get(column)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no number in column {column} of:\n{out}"))
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_land_on_the_partition_kafka_computes() {
        // Java: Math.abs("sfjira-transformer".hashCode()) % 10 etc., computed with the JDK.
        assert_eq!(offsets_partition_of("", 10), 0);
        assert_eq!(offsets_partition_of("a", 10), 7); // "a".hashCode() == 97
        assert_eq!(offsets_partition_of("ab", 50), 3105 % 50); // 97*31+98
    }

    #[test]
    fn reads_the_describe_producers_table() {
        let out = "ProducerId\tProducerEpoch\tLatestCoordinatorEpoch\tLastSequence\tLastTimestamp\tCurrentTransactionStartOffset\t\n\
                   64        \t0            \t0                     \t5           \t1795809763083\tNone                         \t\n\
                   1         \t0            \t0                     \t-1          \t1795809763999\t19                           \t\n";
        let rows = table(out);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["CurrentTransactionStartOffset"], "None");
        assert_eq!(rows[1]["CurrentTransactionStartOffset"], "19");
        assert_eq!(rows[1]["ProducerId"], "1");
    }
}
