//! What flowed, read back from Kafka itself rather than from the services' own claims: records
//! per topic (read_committed, so aborted transactions do not count), what each sink did (from
//! `sfjira.audit`), what was dead-lettered and why (the DLQ topics' `sfjira.error.code`
//! headers), and the end-to-end latency of every applied write (source commit time to the
//! sink's write, both recorded in the audit entry).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Headers, Message};
use sfjira_core::audit::{AuditEntry, AuditResult};
use sfjira_core::kafka::read_to_end;

/// Counts gathered from the topics.
#[derive(Debug, Default)]
pub struct Summary {
    /// Topic → committed records.
    pub records: BTreeMap<String, usize>,
    /// (sink, operation, result) → entries.
    pub writes: BTreeMap<(String, String, String), usize>,
    /// (DLQ topic, error code) → records.
    pub dead_letters: BTreeMap<(String, String), usize>,
    /// Per sink: milliseconds from the source commit to the write, sorted.
    pub latencies_ms: BTreeMap<String, Vec<i64>>,
}

impl Summary {
    /// Reads every topic of `topics.yaml` (with `prefix`) to its end.
    pub fn gather(base: &ClientConfig, topics_yaml: &Path, prefix: &str) -> anyhow::Result<Self> {
        let mut s = Summary::default();
        for spec in sfjira_core::topics::load(topics_yaml, prefix)? {
            let messages = read_to_end(base, &spec.name, &BTreeMap::new())?;
            let base_name = spec
                .name
                .strip_prefix(prefix)
                .unwrap_or(&spec.name)
                .to_string();
            s.records.insert(base_name.clone(), messages.len());
            if base_name == sfjira_core::audit::TOPIC {
                for e in messages
                    .iter()
                    .filter_map(|m| m.payload().and_then(AuditEntry::parse))
                {
                    s.add_audit(&e);
                }
            }
            if base_name.ends_with(".dlq") {
                for m in &messages {
                    let code = header(m, "sfjira.error.code").unwrap_or_else(|| "?".into());
                    *s.dead_letters.entry((base_name.clone(), code)).or_default() += 1;
                }
            }
        }
        for v in s.latencies_ms.values_mut() {
            v.sort_unstable();
        }
        Ok(s)
    }

    fn add_audit(&mut self, e: &AuditEntry) {
        let result = format!("{:?}", e.result).to_lowercase();
        *self
            .writes
            .entry((e.sink.clone(), e.operation.clone(), result))
            .or_default() += 1;
        if e.result == AuditResult::Applied && e.source_time_ms > 0 {
            self.latencies_ms
                .entry(e.sink.clone())
                .or_default()
                .push(e.finished_ms - e.source_time_ms);
        }
    }

    /// The `q` quantile (0–1) of a sink's latencies, nearest rank.
    pub fn latency_quantile(&self, sink: &str, q: f64) -> Option<i64> {
        let v = self.latencies_ms.get(sink).filter(|v| !v.is_empty())?;
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }

    /// The summary as aligned text tables.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Records per topic (committed)");
        for (topic, n) in self.records.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(out, "  {topic:<40} {n:>7}");
        }
        let _ = writeln!(out, "\nCommands applied by the sinks (sfjira.audit)");
        if self.writes.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for ((sink, op, result), n) in &self.writes {
            let _ = writeln!(out, "  {sink:<17} {op:<12} {result:<11} {n:>5}");
        }
        let _ = writeln!(
            out,
            "\nDead letters by code (replayed ones included: `sfjira dlq list` shows what still waits)"
        );
        if self.dead_letters.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for ((topic, code), n) in &self.dead_letters {
            let _ = writeln!(
                out,
                "  {topic:<28} {code:<10} {n:>5}   (sfjira errors | grep {code})"
            );
        }
        let _ = writeln!(out, "\nEnd-to-end latency, source commit to target write");
        if self.latencies_ms.is_empty() {
            let _ = writeln!(out, "  (no applied writes with a source time)");
        }
        for (sink, v) in &self.latencies_ms {
            let p50 = self.latency_quantile(sink, 0.5).unwrap_or_default();
            let p99 = self.latency_quantile(sink, 0.99).unwrap_or_default();
            let _ = writeln!(
                out,
                "  into {:<12} p50 {p50:>6} ms   p99 {p99:>6} ms   ({} writes)",
                sink.trim_end_matches("-sink"),
                v.len()
            );
        }
        out
    }
}

fn header<M: Message>(m: &M, name: &str) -> Option<String> {
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let mut s = Summary::default();
        s.latencies_ms
            .insert("jira-sink".into(), (1..=100).collect());
        assert_eq!(s.latency_quantile("jira-sink", 0.5), Some(50));
        assert_eq!(s.latency_quantile("jira-sink", 0.99), Some(99));
        assert_eq!(s.latency_quantile("salesforce-sink", 0.5), None);
    }
}
