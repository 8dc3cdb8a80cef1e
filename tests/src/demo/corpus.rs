//! Tools for feeding a running [`Deployment`] bad input and watching where it went: records
//! produced straight onto a stage's topic (raw bytes, or Avro framed with any registered
//! schema), the registry's schemas by id, a service's Prometheus counters, the DLQs as
//! `sfjira dlq list --output json` prints them, forged Jira webhook deliveries, and Avro
//! change records rewritten into bad ones (another record's id, a date no calendar has).
//!
//! Used by the bad-input corpus test (tests/tests/e2e_bad_input.rs). Kept apart from the demo's
//! scenario: nothing here acts like a person; it acts like a broken producer or an attacker.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use apache_avro::types::Value as Avro;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

use super::scenario::Operator;
use super::{Deployment, wait_for};

/// Produces one record (not transactional, acks=all) onto `topic`.
pub async fn produce(
    bootstrap: &str,
    topic: &str,
    key: &str,
    payload: &[u8],
) -> anyhow::Result<()> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()?;
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    Ok(())
}

/// The schema the registry holds under `id` (`GET /schemas/ids/{id}`).
pub async fn registry_schema(registry_url: &str, id: u32) -> anyhow::Result<apache_avro::Schema> {
    let url = format!("{}/schemas/ids/{id}", registry_url.trim_end_matches('/'));
    let body: Value = reqwest::get(&url).await?.error_for_status()?.json().await?;
    let text = body["schema"]
        .as_str()
        .with_context(|| format!("no schema in the answer of {url}: {body}"))?;
    Ok(apache_avro::Schema::parse_str(text)?)
}

/// Where a service of `d` serves `/metrics`: the address its last start logged ("health and
/// metrics endpoint up", JSON logs).
pub fn metrics_url(d: &Deployment, service: &str) -> anyhow::Result<String> {
    let log = std::fs::read_to_string(d.dir.join(format!("{service}.log")))?;
    let listen = log
        .lines()
        .rev()
        .filter(|l| l.contains("health and metrics endpoint up"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| find_key(&v, "listen").map(str::to_string))
        .with_context(|| format!("{service} logged no health endpoint"))?;
    Ok(format!("http://{listen}/metrics"))
}

fn find_key<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    match v {
        Value::Object(o) => o
            .get(key)
            .and_then(Value::as_str)
            .or_else(|| o.values().find_map(|inner| find_key(inner, key))),
        _ => None,
    }
}

/// The sum of the Prometheus samples of `name` whose labels include every one of `labels`
/// (0 when there are none yet: counters appear on first increment).
pub async fn counter(url: &str, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
    let text = reqwest::get(url).await?.error_for_status()?.text().await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Runs `sfjira --config <deployment> --output json <args>` as the operator; its stdout.
pub async fn sfjira(op: &Operator, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(&op.sfjira)
        .arg("--config")
        .arg(&op.config)
        .args(["--output", "json"])
        .args(args)
        .envs(op.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .with_context(|| format!("running {}", op.sfjira.display()))?;
    if !out.status.success() {
        bail!(
            "sfjira {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The records waiting in `stage`'s DLQ (not yet replayed), as `sfjira dlq list` reports them:
/// `key`, `code`, `message`, `origin_topic`, `replay_count`, ….
pub async fn dlq_list(op: &Operator, stage: &str) -> anyhow::Result<Vec<Value>> {
    let out = sfjira(op, &["dlq", "list", "--stage", stage]).await?;
    let rows: Value =
        serde_json::from_str(&out).with_context(|| format!("dlq list printed no JSON: {out}"))?;
    Ok(rows.as_array().cloned().unwrap_or_default())
}

/// Posts a delivery to the jira-source webhook endpoint with the given `X-Hub-Signature` (none
/// when `None`); the HTTP status.
pub async fn post_webhook(url: &str, body: &Value, signature: Option<&str>) -> anyhow::Result<u16> {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(
            "x-atlassian-webhook-identifier",
            uuid::Uuid::new_v4().to_string(),
        )
        .body(serde_json::to_vec(body)?);
    if let Some(sig) = signature {
        req = req.header("x-hub-signature", sig);
    }
    Ok(req.send().await?.status().as_u16())
}

/// `X-Hub-Signature` for `body` as Jira computes it: `sha256=` + hex HMAC-SHA256 of the raw
/// body with the webhook's secret (jira-api.md §5).
pub fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Posts raw `body` (signed by the caller) to the webhook endpoint; the HTTP status.
pub async fn post_webhook_raw(url: &str, body: &[u8], signature: &str) -> anyhow::Result<u16> {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(
            "x-atlassian-webhook-identifier",
            uuid::Uuid::new_v4().to_string(),
        )
        .header("x-hub-signature", signature)
        .body(body.to_vec())
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

/// The jira-source webhook URL of `d` (`jira_source.webhook_listen` in its configuration).
pub fn webhook_url(d: &Deployment) -> anyhow::Result<String> {
    let cfg = std::fs::read_to_string(&d.config_path)?;
    let listen = cfg
        .lines()
        .find_map(|l| l.trim().strip_prefix("webhook_listen:"))
        .context("the deployment configuration has no jira_source.webhook_listen")?
        .trim();
    Ok(format!("http://{listen}/webhooks/jira"))
}

/// Points the deployment's configuration at another mapping file. Only services started after
/// this read it: restart the transformer for it to take effect.
pub fn use_mapping(d: &Deployment, mapping: &std::path::Path) -> anyhow::Result<()> {
    let cfg = std::fs::read_to_string(&d.config_path)?;
    let mut found = false;
    let rewritten: Vec<String> = cfg
        .lines()
        .map(|l| {
            if l.starts_with("transformer:") {
                found = true;
                let rest = l.split_once("group_id:").map(|(_, g)| g).unwrap_or(" }");
                format!(
                    "transformer: {{ mapping: \"{}\", group_id:{rest}",
                    mapping.display()
                )
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        bail!("no `transformer:` line in {}", d.config_path.display());
    }
    std::fs::write(&d.config_path, rewritten.join("\n") + "\n")?;
    Ok(())
}

/// key → code of `dlq list` rows.
pub fn codes_by_key(rows: &[Value]) -> BTreeMap<String, String> {
    rows.iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or("-").to_string(),
                r["code"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// Every committed record of `topic`.
pub async fn all_records(
    kafka: &rdkafka::ClientConfig,
    topic: &str,
) -> Vec<rdkafka::message::OwnedMessage> {
    let (kafka, topic) = (kafka.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        sfjira_core::kafka::read_to_end(&kafka, &topic, &BTreeMap::new())
    })
    .await
    .unwrap()
    .unwrap()
}

/// The value of the record keyed `key` on `topic`, once it is there (within 90 s).
pub async fn record_keyed(
    kafka: &rdkafka::ClientConfig,
    topic: &str,
    key: &str,
) -> Option<Vec<u8>> {
    wait_for(Duration::from_secs(90), || async {
        all_records(kafka, topic)
            .await
            .into_iter()
            .find(|m| m.key() == Some(key.as_bytes()))
            .and_then(|m| m.payload().map(<[u8]>::to_vec))
    })
    .await
}

/// `record` with `field` set to a value of its own Avro type that is no calendar date: a date
/// 100 million days out, or epoch milliseconds past what any date-time can hold.
pub fn with_unrepresentable_date(record: Avro, field: &str) -> Avro {
    fn out_of_range(v: Avro) -> Avro {
        match v {
            Avro::Union(i, inner) => Avro::Union(i, Box::new(out_of_range(*inner))),
            Avro::Date(_) => Avro::Date(100_000_000),
            Avro::Long(_) => Avro::Long(i64::MAX),
            Avro::TimestampMillis(_) => Avro::TimestampMillis(i64::MAX),
            other => panic!("{other:?} is not a date-typed value"),
        }
    }
    let Avro::Record(fields) = record else {
        panic!("the model change is not a record");
    };
    Avro::Record(
        fields
            .into_iter()
            .map(|(name, v)| {
                let v = if name == field { out_of_range(v) } else { v };
                (name, v)
            })
            .collect(),
    )
}

/// `record` as the change of another record: its `Id` field (if it has one) says `id`.
pub fn with_id(record: Avro, id: &str) -> Avro {
    let Avro::Record(fields) = record else {
        panic!("not a record");
    };
    Avro::Record(
        fields
            .into_iter()
            .map(|(name, v)| {
                let v = match (name.as_str(), v) {
                    ("Id", Avro::Union(i, _)) => Avro::Union(i, Box::new(Avro::String(id.into()))),
                    ("Id", _) => Avro::String(id.into()),
                    (_, v) => v,
                };
                (name, v)
            })
            .collect(),
    )
}

/// `record` with `field` set to `value`.
pub fn with_field(record: Avro, field: &str, value: Avro) -> Avro {
    let Avro::Record(fields) = record else {
        panic!("not a record");
    };
    Avro::Record(
        fields
            .into_iter()
            .map(|(name, v)| {
                let v = if name == field { value.clone() } else { v };
                (name, v)
            })
            .collect(),
    )
}

/// `schema` with `field` typed `["null", {"type": "int", "logicalType": "date"}]`.
pub fn with_avro_date(schema: &apache_avro::Schema, field: &str) -> apache_avro::Schema {
    let mut json = serde_json::to_value(schema).unwrap();
    let fields = json["fields"].as_array_mut().expect("a record schema");
    let f = fields
        .iter_mut()
        .find(|f| f["name"] == json!(field))
        .unwrap_or_else(|| panic!("no field {field}"));
    f["type"] = json!(["null", {"type": "int", "logicalType": "date"}]);
    json["name"] = json!("DatedOpportunityChangeEvent");
    apache_avro::Schema::parse(&json).unwrap()
}
