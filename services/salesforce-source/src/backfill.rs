//! Backfill / initial load (`sfjira backfill salesforce --entity Opportunity`, or
//! `salesforce_source.backfill_on_start`): reads an entity's existing records over REST with
//! paged SOQL (`SELECT … WHERE SystemModstamp >= <since> ORDER BY SystemModstamp, Id`,
//! following `nextRecordsUrl`) and publishes each to `salesforce.cdc.<Entity>` as a snapshot
//! record: the same typed Avro layout as the change events (the entity's change-event schema,
//! found with `GetTopic` + `GetSchema`), change type `CREATE`, `changedFields` = every field
//! with a value, `commitTimestamp` = the record's `SystemModstamp`, `changeOrigin` =
//! `sfjira-backfill`, `replay_id` empty, and the Kafka header `sfjira.snapshot: true`.
//!
//! Each page is one Kafka transaction together with the resume position in
//! `sfjira.checkpoints` (key `salesforce-source:backfill:<Entity>`: the last `SystemModstamp`
//! and Id published), so an interrupted backfill resumes after the last committed page and
//! never publishes a record twice; `restart` ignores the stored position. Throttled: at most
//! `rate` records per second, and it stops (committed and resumable) with a clear message
//! once `Sforce-Limit-Info` shows more than `max_api_share` of the daily API allocation used.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use sfjira_core::avro::AvroCodec;
use sfjira_core::config::{SalesforceSourceConfig, SfjiraConfig};
use sfjira_core::kafka::{TransactionalProducer, client_config, topic_name};

use crate::auth::Session;
use crate::decode::{Change, EventSchema};
use crate::events::ApiUsage;
use crate::gap::{API_VERSION, epoch_ms, fill, soql};
use crate::publish::Publisher;

/// The Kafka header that marks a snapshot (backfill) record.
pub const HEADER: &str = "sfjira.snapshot";
/// `ChangeEventHeader.changeOrigin` of snapshot records.
pub const ORIGIN: &str = "sfjira-backfill";

/// What to backfill and how fast.
#[derive(Debug, Clone)]
pub struct Options {
    /// The object API name (`Opportunity`, `Escalation__c`).
    pub entity: String,
    /// Only records with `SystemModstamp >= since` (default: all).
    pub since: Option<DateTime<Utc>>,
    /// At most this many records per second (default: unthrottled).
    pub rate: Option<f64>,
    /// Ignore a stored position and start over.
    pub restart: bool,
    /// Records per page (`Sforce-Query-Options: batchSize`; Salesforce clamps to 200–2000).
    pub page_size: usize,
    /// Stop once more than this share of the daily API allocation is used (default: config).
    pub max_api_share: Option<f64>,
    /// Stop after this many pages (as an interruption would; tests).
    pub max_pages: Option<usize>,
}

impl Options {
    pub fn new(entity: &str) -> Options {
        Options {
            entity: entity.to_string(),
            since: None,
            rate: None,
            restart: false,
            page_size: 2000,
            max_api_share: None,
            max_pages: None,
        }
    }
}

/// The resume position of an entity's backfill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub entity: String,
    /// The `since` the backfill started with (RFC 3339), if any.
    pub since: Option<String>,
    /// `SystemModstamp` (epoch ms) and Id of the last record published.
    pub last_modstamp_ms: Option<i64>,
    pub last_id: Option<String>,
    /// Records published so far.
    pub records: u64,
    /// Every page was read.
    pub done: bool,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub entity: String,
    pub topic: String,
    /// Records published by this run.
    pub records: u64,
    pub pages: usize,
    /// Resumed from a stored position.
    pub resumed: bool,
    /// The backfill is complete (now, or already before this run).
    pub done: bool,
}

/// The checkpoint key of `entity`'s backfill.
pub fn key(entity: &str) -> String {
    crate::checkpoint::key(&format!("backfill:{entity}"))
}

/// The CDC channel of `entity`: `/data/AccountChangeEvent`, `/data/Foo__ChangeEvent`.
pub fn channel_of(entity: &str) -> String {
    match entity.strip_suffix("__c") {
        Some(custom) => format!("/data/{custom}__ChangeEvent"),
        None => format!("/data/{entity}ChangeEvent"),
    }
}

/// The entity of a per-object channel (`None` for `/data/ChangeEvents` and custom channels).
pub fn entity_of(channel: &str) -> Option<String> {
    let name = channel.strip_prefix("/data/")?;
    if let Some(custom) = name.strip_suffix("__ChangeEvent") {
        return Some(format!("{custom}__c"));
    }
    name.strip_suffix("ChangeEvent")
        .filter(|e| !e.is_empty())
        .map(String::from)
}

/// `--since`: RFC 3339 (`2024-05-01T00:00:00Z`), a date (`2024-05-01`), or an age before
/// `now` (`90s`, `30m`, `12h`, `2d`).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().with_context(|| {
        format!("--since {text:?}: give RFC 3339 (2024-05-01T00:00:00Z), a date, or an age like 2d")
    })?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => bail!("--since {text:?}: the age unit must be s, m, h, d or w"),
    };
    Ok(now - chrono::Duration::seconds(n * secs))
}

/// Runs (or resumes) the backfill of `opts.entity`.
pub async fn run(cfg: &SfjiraConfig, opts: &Options) -> anyhow::Result<Report> {
    let settings = cfg
        .salesforce_source
        .clone()
        .context("the configuration has no salesforce_source section")?;
    let entity = &opts.entity;
    let max_share = opts
        .max_api_share
        .unwrap_or(settings.backfill_max_api_share);
    let base = client_config(&cfg.kafka);
    let txn_id = format!(
        "sfjira-salesforce-source-{}-backfill.{entity}",
        cfg.service.instance_id
    );
    // The producer first: it fences a predecessor, so the position read next is final.
    let mut producer = TransactionalProducer::new(&base, &txn_id, Duration::from_secs(30))
        .await
        .with_context(|| format!("starting the transactional producer {txn_id}"))?;
    let checkpoint_topic = topic_name(&cfg.kafka, crate::checkpoint::TOPIC);
    let stored = if opts.restart {
        None
    } else {
        let (base, t, k) = (base.clone(), checkpoint_topic.clone(), key(entity));
        tokio::task::spawn_blocking(move || crate::checkpoint::load_json::<Position>(&base, &t, &k))
            .await??
    };
    let topic = crate::publish::topic_for(&cfg.kafka.topic_prefix, entity);
    let resumed = stored.is_some();
    let mut position = match stored {
        Some(p) if p.done => {
            tracing::info!(%entity, records = p.records, "backfill already complete; --restart to run it again");
            return Ok(Report {
                entity: entity.clone(),
                topic,
                records: 0,
                pages: 0,
                resumed,
                done: true,
            });
        }
        Some(p) => p,
        None => Position {
            entity: entity.clone(),
            since: opts.since.map(|s| s.to_rfc3339()),
            last_modstamp_ms: None,
            last_id: None,
            records: 0,
            done: false,
        },
    };
    tracing::info!(%entity, ?position, resumed, "backfill starting");
    let session = login(&settings).await?;
    let schema = event_schema(&settings, &session, entity).await?;
    let Schema::Record(top) = &schema.salesforce else {
        bail!("the change-event schema of {entity} is not a record");
    };
    let mut publisher = Publisher::new(AvroCodec::new(&cfg.registry)?, &cfg.kafka.topic_prefix);
    let since_ms = position
        .since
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.timestamp_millis());
    let from_ms = position.last_modstamp_ms.or(since_ms);
    let select = soql(top, entity, &[]);
    let mut select = select
        .split(" WHERE ")
        .next()
        .unwrap_or(&select)
        .to_string();
    if !select.contains(" SystemModstamp,") && !select.contains(", SystemModstamp FROM") {
        select = select.replacen(" FROM ", ", SystemModstamp FROM ", 1);
    }
    let filter = from_ms.map_or(String::new(), |ms| {
        // Seconds precision, inclusive; the exact bound is applied to each row below.
        let at = DateTime::from_timestamp_millis(ms - ms.rem_euclid(1000)).unwrap_or_default();
        format!(
            " WHERE SystemModstamp >= {}",
            at.format("%Y-%m-%dT%H:%M:%SZ")
        )
    });
    let q = format!("{select}{filter} ORDER BY SystemModstamp, Id");
    let http = crate::tls::http_client(&settings, Duration::from_secs(120))?;
    let api = session.instance_url.trim_end_matches('/').to_string();
    let mut url = reqwest::Url::parse_with_params(
        &format!("{api}/services/data/{API_VERSION}/query"),
        [("q", q.as_str())],
    )?;
    let started = Instant::now();
    let mut report = Report {
        entity: entity.clone(),
        topic: topic.clone(),
        records: 0,
        pages: 0,
        resumed,
        done: false,
    };
    loop {
        let (rows, next, usage) = page(&http, &session, &url, opts.page_size).await?;
        producer.begin()?;
        for row in &rows {
            let Some(id) = row.get("Id").and_then(Json::as_str) else {
                continue;
            };
            let modstamp = row
                .get("SystemModstamp")
                .and_then(Json::as_str)
                .and_then(epoch_ms)
                .with_context(|| format!("{entity} {id} has no readable SystemModstamp"))?;
            let after_last = match (position.last_modstamp_ms, position.last_id.as_deref()) {
                (Some(ms), Some(last)) => (modstamp, id) > (ms, last),
                _ => true,
            };
            if !after_last || since_ms.is_some_and(|s| modstamp < s) {
                continue;
            }
            let change = snapshot(&schema, top, entity, id, modstamp, row);
            let mut record = publisher.record(&schema, &change).await?;
            record.set_header(HEADER, "true");
            producer.send(&record).await?;
            position.last_modstamp_ms = Some(modstamp);
            position.last_id = Some(id.to_string());
            position.records += 1;
            report.records += 1;
        }
        position.done = next.is_none();
        let checkpoint = sfjira_core::kafka::OutRecord::new(&checkpoint_topic)
            .key(key(entity))
            .payload(serde_json::to_vec(&position)?);
        producer.send(&checkpoint).await?;
        producer.commit().await?;
        report.pages += 1;
        tracing::info!(%entity, page = report.pages, records = position.records, "backfill page committed");
        let Some(next) = next else {
            report.done = true;
            tracing::info!(%entity, records = position.records, "backfill complete");
            return Ok(report);
        };
        if opts.max_pages.is_some_and(|m| report.pages >= m) {
            return Ok(report);
        }
        if let Some(u) = usage
            && u.limit > 0
            && u.used as f64 > max_share * u.limit as f64
        {
            bail!(
                "backfill of {entity} stopped: the org has used {} of its {} daily API requests \
                 ({:.0}%), above the allowed share of {:.0}% (salesforce_source.backfill_max_api_share \
                 or --max-api-share). {} records are committed; run the same command later to \
                 resume where it stopped",
                u.used,
                u.limit,
                100.0 * u.used as f64 / u.limit as f64,
                100.0 * max_share,
                position.records
            );
        }
        if let Some(rate) = opts.rate.filter(|r| *r > 0.0) {
            let due = Duration::from_secs_f64(report.records as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        url = reqwest::Url::parse(&format!("{api}{next}"))
            .with_context(|| format!("nextRecordsUrl {next:?}"))?;
    }
}

/// Runs the backfill of every per-object channel's entity (`backfill_on_start`).
pub async fn on_start(cfg: &SfjiraConfig, settings: &SalesforceSourceConfig) -> anyhow::Result<()> {
    for channel in &settings.channels {
        let Some(entity) = entity_of(channel) else {
            tracing::warn!(%channel, "backfill_on_start: not a per-object channel; skipped");
            continue;
        };
        let report = run(cfg, &Options::new(&entity)).await?;
        tracing::info!(?report, "backfill_on_start");
    }
    Ok(())
}

/// The snapshot change of one REST row, in the change-event layout of `schema`.
fn snapshot(
    schema: &EventSchema,
    top: &apache_avro::schema::RecordSchema,
    entity: &str,
    id: &str,
    modstamp: i64,
    row: &Map<String, Json>,
) -> Change {
    let Schema::Record(kafka) = &schema.kafka else {
        unreachable!("EventSchema::parse makes a record");
    };
    let user = row.get("LastModifiedById").and_then(Json::as_str);
    let mut fields = Vec::with_capacity(kafka.fields.len());
    for (i, f) in kafka.fields.iter().enumerate() {
        let v = if i == 0 {
            header(&f.schema, entity, id, modstamp, user)
        } else if f.name == "replay_id" {
            Value::String(String::new())
        } else {
            empty(&f.schema)
        };
        fields.push((f.name.clone(), v));
    }
    let mut change = Change {
        entity: entity.to_string(),
        record_id: id.to_string(),
        change_type: "CREATE".into(),
        transaction_key: format!("{ORIGIN}:{entity}:{id}"),
        sequence_number: 1,
        commit_timestamp: modstamp,
        value: Value::Record(fields),
        gap: None,
    };
    fill(&mut change, Some(row), top, "CREATE", "");
    change.gap = None;
    change
}

fn header(schema: &Schema, entity: &str, id: &str, modstamp: i64, user: Option<&str>) -> Value {
    let Value::Record(mut fields) = empty(schema) else {
        return empty(schema);
    };
    for (name, v) in &mut fields {
        let s = |text: &str| Value::String(text.to_string());
        let new = match name.as_str() {
            "entityName" => s(entity),
            "recordIds" => Value::Array(vec![s(id)]),
            "changeOrigin" => s(ORIGIN),
            "transactionKey" => s(&format!("{ORIGIN}:{entity}:{id}")),
            "sequenceNumber" => Value::Int(1),
            "commitTimestamp" => Value::Long(modstamp),
            "commitUser" => s(user.unwrap_or_default()),
            _ => continue,
        };
        *v = match v {
            Value::Union(i, _) => Value::Union(*i, Box::new(new)),
            _ => new,
        };
    }
    Value::Record(fields)
}

/// An empty value of `schema`: null for nullable fields, zero, "", [], the first symbol.
fn empty(schema: &Schema) -> Value {
    match schema {
        Schema::Union(u) => match u.variants().iter().position(|v| *v == Schema::Null) {
            Some(i) => Value::Union(i as u32, Box::new(Value::Null)),
            None => Value::Union(0, Box::new(empty(&u.variants()[0]))),
        },
        Schema::Record(r) => Value::Record(
            r.fields
                .iter()
                .map(|f| (f.name.clone(), empty(&f.schema)))
                .collect(),
        ),
        Schema::Enum(e) => Value::Enum(0, e.symbols.first().cloned().unwrap_or_default()),
        Schema::Array(_) => Value::Array(Vec::new()),
        Schema::Map(_) => Value::Map(Default::default()),
        Schema::Boolean => Value::Boolean(false),
        Schema::Int => Value::Int(0),
        Schema::Long => Value::Long(0),
        Schema::Float => Value::Float(0.0),
        Schema::Double => Value::Double(0.0),
        Schema::Bytes => Value::Bytes(Vec::new()),
        _ => Value::String(String::new()),
    }
}

async fn login(settings: &SalesforceSourceConfig) -> anyhow::Result<Session> {
    crate::tls::token_client(settings)?
        .login()
        .await
        .map_err(|e| anyhow::anyhow!("logging in to Salesforce: {e}"))
}

/// The change-event schema of `entity` (`GetTopic` on its channel, then `GetSchema`).
async fn event_schema(
    settings: &SalesforceSourceConfig,
    session: &Session,
    entity: &str,
) -> anyhow::Result<EventSchema> {
    let channel = channel_of(entity);
    let grpc = crate::tls::pubsub_channel(settings).await?;
    let id = crate::pubsub::topic_schema_id(&grpc, session, &channel)
        .await
        .with_context(|| format!("{channel}: is Change Data Capture enabled for {entity}?"))?;
    let json = crate::pubsub::get_schema(&grpc, session, &id).await?;
    Ok(EventSchema::parse(&id, &json)?)
}

/// One page of a query: its rows, the next page's path, and the API usage it reported.
async fn page(
    http: &reqwest::Client,
    session: &Session,
    url: &reqwest::Url,
    page_size: usize,
) -> anyhow::Result<(Vec<Map<String, Json>>, Option<String>, Option<ApiUsage>)> {
    let resp = http
        .get(url.clone())
        .bearer_auth(&session.access_token)
        .header("Sforce-Query-Options", format!("batchSize={page_size}"))
        .send()
        .await
        .context("backfill query")?;
    let status = resp.status();
    let usage = resp
        .headers()
        .get("sforce-limit-info")
        .and_then(|v| v.to_str().ok())
        .and_then(ApiUsage::parse);
    if let Some(u) = &usage {
        u.emit();
    }
    let body: Json = resp.json().await.context("backfill query body")?;
    if !status.is_success() {
        bail!("backfill query failed with {status}: {body}");
    }
    let rows = body
        .get("records")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
    let next = match body.get("nextRecordsUrl").and_then(Json::as_str) {
        Some(n) if body.get("done") != Some(&Json::Bool(true)) => Some(n.to_string()),
        _ => None,
    };
    Ok((rows, next, usage))
}
