//! The transformer on the real broker and registry: Salesforce change records in, commands and
//! dead letters out, exactly once — across a restart, a SIGKILL, and a replay of the input.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command as Process};
use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use rdkafka::message::{Headers, Message, OwnedMessage};
use sfjira_core::avro::{AvroCodec, WriterSchema};
use sfjira_core::command::{Command, CommandKind};
use sfjira_core::config::SfjiraConfig;
use sfjira_core::kafka::{IdempotentProducer, OutRecord};
use sfjira_tests::*;
use sfjira_transformer::mapping::Mapping;
use sfjira_transformer::runtime::Transformer;

const OPPORTUNITY_CHANGE: &str = r#"{"type":"record","name":"OpportunityChangeEvent","namespace":"com.sforce.eventbus","fields":[
 {"name":"ChangeEventHeader","type":{"type":"record","name":"ChangeEventHeader","fields":[
   {"name":"entityName","type":"string"},{"name":"recordIds","type":{"type":"array","items":"string"}},
   {"name":"changeType","type":{"type":"enum","name":"ChangeType","symbols":["CREATE","UPDATE","DELETE","UNDELETE","GAP_CREATE","GAP_UPDATE","GAP_DELETE","GAP_UNDELETE","GAP_OVERFLOW"]}},
   {"name":"changeOrigin","type":"string"},{"name":"transactionKey","type":"string"},{"name":"sequenceNumber","type":"int"},
   {"name":"commitTimestamp","type":"long"},{"name":"commitNumber","type":"long"},{"name":"commitUser","type":"string"},
   {"name":"nulledFields","type":{"type":"array","items":"string"}},{"name":"diffFields","type":{"type":"array","items":"string"}},
   {"name":"changedFields","type":{"type":"array","items":"string"}}]}},
 {"name":"replay_id","type":"string"},
 {"name":"Id","type":["null","string"],"default":null},
 {"name":"Name","type":["null","string"],"default":null},
 {"name":"StageName","type":["null","string"],"default":null},
 {"name":"Amount","type":["null","double"],"default":null},
 {"name":"CloseDate","type":["null","string"],"default":null},
 {"name":"AccountId","type":["null","string"],"default":null},
 {"name":"Description","type":["null","string"],"default":null}]}"#;

struct Stack {
    prefix: String,
    dir: PathBuf,
    config: PathBuf,
    cfg: SfjiraConfig,
}

impl Stack {
    async fn new(name: &str, batch_size: usize) -> Stack {
        let prefix = format!("{}.", unique(name));
        for t in [
            "salesforce.cdc.Opportunity",
            "jira.issues",
            "jira.comments",
            "jira.worklogs",
            "jira.commands",
            "salesforce.commands",
            "transformer.dlq",
        ] {
            create_topic(&format!("{prefix}{t}"), 2).await;
        }
        let dir = std::env::temp_dir().join(unique("transformer-test"));
        std::fs::create_dir_all(&dir).unwrap();
        let mapping = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/mapping.yaml");
        let config = dir.join("sfjira.yaml");
        std::fs::write(
            &config,
            format!(
                "service: {{instance_id: t1}}\nkafka:\n  bootstrap_servers: \"{}\"\n  topic_prefix: \"{prefix}\"\nregistry:\n  url: \"{}\"\n\
                 http:\n  listen: 127.0.0.1:0\ntransformer:\n  mapping: {}\n  group_id: {prefix}transformer\n  batch_size: {batch_size}\n  batch_wait_ms: 50\n",
                bootstrap(),
                registry_url(),
                mapping.display()
            ),
        )
        .unwrap();
        let cfg =
            sfjira_core::config::load_from(Some(&config), Vec::<(String, String)>::new()).unwrap();
        Stack {
            prefix,
            dir,
            config,
            cfg,
        }
    }

    fn topic(&self, t: &str) -> String {
        format!("{}{t}", self.prefix)
    }

    /// Runs the transformer in-process until `records` commands + dead letters have appeared
    /// in total on the output topics (read_committed), then stops it.
    async fn run_until(&self, expected_outputs: usize) -> sfjira_transformer::runtime::RunSummary {
        let mapping = Mapping::load(&self.cfg.transformer.clone().unwrap().mapping).unwrap();
        let transformer = Transformer::new(&self.cfg, mapping).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(transformer.run(async {
            let _ = stopped.await;
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let n = self.commands().await.len() + self.dead_letters().await.len();
            if n >= expected_outputs || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        stop.send(()).unwrap();
        task.await.unwrap().unwrap()
    }

    async fn commands(&self) -> Vec<(OwnedMessage, Command)> {
        let codec = AvroCodec::new(&self.cfg.registry).unwrap();
        let mut out = Vec::new();
        for m in read_all(
            &self.topic("jira.commands"),
            usize::MAX,
            Duration::from_secs(2),
        )
        .await
        {
            let decoded = codec.decode(m.payload().unwrap()).await.unwrap();
            let cmd = Command::from_avro(decoded.value).unwrap();
            out.push((m, cmd));
        }
        out
    }

    async fn dead_letters(&self) -> Vec<OwnedMessage> {
        read_all(
            &self.topic("transformer.dlq"),
            usize::MAX,
            Duration::from_secs(2),
        )
        .await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn change(
    id: &str,
    change_type: &str,
    origin: &str,
    stage: &str,
    amount: f64,
    close_date: &str,
    replay: u64,
) -> Avro {
    let opt = |v: Avro| Avro::Union(1, Box::new(v));
    let symbols = ["CREATE", "UPDATE"];
    let header = Avro::Record(vec![
        ("entityName".into(), Avro::String("Opportunity".into())),
        (
            "recordIds".into(),
            Avro::Array(vec![Avro::String(id.into())]),
        ),
        (
            "changeType".into(),
            Avro::Enum(
                symbols.iter().position(|s| *s == change_type).unwrap() as u32,
                change_type.into(),
            ),
        ),
        ("changeOrigin".into(), Avro::String(origin.into())),
        (
            "transactionKey".into(),
            Avro::String(format!("tx-{replay}")),
        ),
        ("sequenceNumber".into(), Avro::Int(1)),
        (
            "commitTimestamp".into(),
            Avro::Long(1_795_780_800_000 + replay as i64),
        ),
        ("commitNumber".into(), Avro::Long(replay as i64)),
        (
            "commitUser".into(),
            Avro::String("0055g00000HumanAAA".into()),
        ),
        ("nulledFields".into(), Avro::Array(vec![])),
        ("diffFields".into(), Avro::Array(vec![])),
        (
            "changedFields".into(),
            Avro::Array(vec![Avro::String("StageName".into())]),
        ),
    ]);
    Avro::Record(vec![
        ("ChangeEventHeader".into(), header),
        ("replay_id".into(), Avro::String(format!("{replay:016x}"))),
        ("Id".into(), opt(Avro::String(id.into()))),
        ("Name".into(), opt(Avro::String(format!("Deal {id}")))),
        ("StageName".into(), opt(Avro::String(stage.into()))),
        ("Amount".into(), opt(Avro::Double(amount))),
        ("CloseDate".into(), opt(Avro::String(close_date.into()))),
        (
            "AccountId".into(),
            opt(Avro::String("0015g00000AcmeAAA".into())),
        ),
        ("Description".into(), opt(Avro::String("Two waves".into()))),
    ])
}

async fn publish(stack: &Stack, records: Vec<(String, Option<Avro>)>) {
    let with_no_headers = records
        .into_iter()
        .map(|(k, v)| (k, v, Vec::new()))
        .collect();
    publish_with_headers(stack, with_no_headers).await;
}

/// Key, value (`None`: published as JSON text, not Avro) and headers of a record to publish.
type Published<'a> = (String, Option<Avro>, Vec<(&'a str, &'a str)>);

/// The stack's Opportunity change topic, with a codec and the change schema registered on it.
async fn opportunity_writer(stack: &Stack) -> (String, AvroCodec, Arc<WriterSchema>) {
    let topic = stack.topic("salesforce.cdc.Opportunity");
    let codec = AvroCodec::new(&stack.cfg.registry).unwrap();
    let writer = codec
        .register(&topic, &Schema::parse_str(OPPORTUNITY_CHANGE).unwrap())
        .await
        .unwrap();
    (topic, codec, writer)
}

async fn publish_with_headers(stack: &Stack, records: Vec<Published<'_>>) {
    let (topic, codec, writer) = opportunity_writer(stack).await;
    let producer = IdempotentProducer::new(&client_config()).unwrap();
    for (key, value, headers) in records {
        let payload = match value {
            Some(v) => codec.encode(&writer, v).unwrap(),
            None => br#"{"Id":"not avro"}"#.to_vec(),
        };
        let mut record = OutRecord::new(&topic).key(key).payload(payload);
        for (name, value) in headers {
            record.set_header(name, value);
        }
        producer.send(&record).await.unwrap();
    }
}

fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .map(|h| String::from_utf8_lossy(h.value.unwrap()).into_owned())
}

const HUMAN: &str = "com/salesforce/api/soap/62.0;client=SfdcInternalAPI/";

/// In-process, `telemetry::init` never ran, so no spans are exported and the transformer
/// forwards each record's trace context (`Tracing::Forward`): the command of a traced record
/// continues its trace, an untraced record's command starts one, a dead letter keeps its record's.
#[tokio::test(flavor = "multi_thread")]
async fn outputs_carry_their_records_trace_context() {
    const TRACED: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let stack = Stack::new("xf-trace", 50).await;
    let won = |id: &str, replay| {
        change(
            id,
            "UPDATE",
            HUMAN,
            "Closed Won",
            250_000.0,
            "2026-12-15",
            replay,
        )
    };
    publish_with_headers(
        &stack,
        vec![
            (
                "006T".into(),
                Some(won("006T", 1)),
                vec![("traceparent", TRACED), ("tracestate", "vendor=1")],
            ),
            ("006U".into(), Some(won("006U", 2)), vec![]),
            ("006V".into(), None, vec![("traceparent", TRACED)]),
        ],
    )
    .await;
    stack.run_until(3).await;

    let commands = stack.commands().await;
    let of = |id: &str| {
        &commands
            .iter()
            .find(|(_, c)| c.source.id == id)
            .unwrap_or_else(|| panic!("no command for {id}"))
            .0
    };
    let values = |m: &OwnedMessage, name: &str| -> Vec<String> {
        m.headers()
            .map(|hs| {
                hs.iter()
                    .filter(|h| h.key == name)
                    .map(|h| String::from_utf8_lossy(h.value.unwrap()).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let traced = of("006T");
    assert_eq!(values(traced, "traceparent"), [TRACED]);
    assert_eq!(values(traced, "tracestate"), ["vendor=1"]);
    let untraced = values(of("006U"), "traceparent");
    assert_eq!(untraced.len(), 1, "{untraced:?}");
    let parts: Vec<&str> = untraced[0].split('-').collect();
    assert_eq!(parts.len(), 4, "{untraced:?}");
    assert_ne!(
        parts[1], "0af7651916cd43dd8448eb211c80319c",
        "a trace of its own"
    );
    assert_eq!(parts[3], "01", "sampled");
    let letters = stack.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(values(&letters[0], "traceparent"), [TRACED]);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_become_commands_or_dead_letters_exactly_once_and_replay_gives_the_same_ids() {
    let stack = Stack::new("xf", 50).await;
    publish(
        &stack,
        vec![
            (
                "006A".into(),
                Some(change(
                    "006A",
                    "UPDATE",
                    HUMAN,
                    "Closed Won",
                    250_000.0,
                    "2026-12-15",
                    1,
                )),
            ),
            (
                "006B".into(),
                Some(change(
                    "006B",
                    "UPDATE",
                    "com/salesforce/api/rest/62.0;client=sfjira",
                    "Closed Won",
                    250_000.0,
                    "2026-12-15",
                    2,
                )),
            ),
            (
                "006C".into(),
                Some(change(
                    "006C",
                    "UPDATE",
                    HUMAN,
                    "Closed Won",
                    5_000.0,
                    "2026-12-15",
                    3,
                )),
            ),
            (
                "006D".into(),
                Some(change(
                    "006D",
                    "CREATE",
                    HUMAN,
                    "Closed Won",
                    300_000.0,
                    "15/12/2026",
                    4,
                )),
            ),
            ("006E".into(), None),
            (
                "006F".into(),
                Some(change(
                    "006F",
                    "CREATE",
                    HUMAN,
                    "Closed Won",
                    1_500_000.0,
                    "2027-01-31",
                    6,
                )),
            ),
        ],
    )
    .await;

    let summary = stack.run_until(4).await;
    assert!(summary.records >= 6, "{summary:?}");
    let commands = stack.commands().await;
    let mut by_key: BTreeMap<String, &Command> = BTreeMap::new();
    for (m, c) in &commands {
        assert_eq!(
            m.key(),
            Some(c.target.external_ref.as_bytes()),
            "keyed by the target's external reference"
        );
        assert_eq!(
            header(m, "sfjira.command-id").as_deref(),
            Some(c.command_id.as_str())
        );
        by_key.insert(c.source.id.clone(), c);
    }
    assert_eq!(
        by_key.keys().collect::<Vec<_>>(),
        ["006A", "006F"],
        "won, big, human-made: one command each; the echo and the small deal none"
    );
    let a = by_key["006A"];
    assert_eq!(a.kind, CommandKind::Upsert);
    assert_eq!(
        a.target.parent_ref.as_deref(),
        Some("salesforce:Account:0015g00000AcmeAAA")
    );
    assert_eq!(a.fields["duedate"].value, serde_json::json!("2026-12-15"));
    assert_eq!(
        by_key["006F"].fields["Customer Tier"].value,
        serde_json::json!({"value": "Gold"})
    );

    let dlq = stack.dead_letters().await;
    let codes: BTreeMap<String, String> = dlq
        .iter()
        .map(|m| {
            (
                String::from_utf8_lossy(m.key().unwrap()).into_owned(),
                header(m, "sfjira.error.code").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        BTreeMap::from([
            ("006D".into(), "SFJ-5004".into()),
            ("006E".into(), "SFJ-1001".into())
        ])
    );
    let bad = dlq.iter().find(|m| m.key() == Some(&b"006D"[..])).unwrap();
    assert!(
        header(bad, "__connect.errors.exception.message")
            .unwrap()
            .contains("duedate")
    );

    // A restart of the same group reads nothing twice.
    publish(
        &stack,
        vec![(
            "006G".into(),
            Some(change(
                "006G",
                "CREATE",
                HUMAN,
                "Closed Won",
                120_000.0,
                "2027-02-01",
                7,
            )),
        )],
    )
    .await;
    stack.run_until(5).await;
    let ids: Vec<String> = stack
        .commands()
        .await
        .into_iter()
        .map(|(_, c)| c.command_id)
        .collect();
    assert_eq!(ids.len(), 3, "exactly one more command: {ids:?}");

    // Replay the whole input with Kafka's own tool: the same command ids come out again.
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/kafka/tool");
    let status = Process::new(tool)
        .args([
            "kafka-consumer-groups",
            "--bootstrap-server",
            &bootstrap(),
            "--group",
            &format!("{}transformer", stack.prefix),
        ])
        .args([
            "--topic",
            &stack.topic("salesforce.cdc.Opportunity"),
            "--reset-offsets",
            "--to-earliest",
            "--execute",
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    stack.run_until(3 * 2 + 2 * 2).await;
    let replayed: Vec<String> = stack
        .commands()
        .await
        .into_iter()
        .map(|(_, c)| c.command_id)
        .collect();
    assert_eq!(replayed.len(), 6);
    // (Partitions interleave, so compare counts, not positions.)
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for id in &replayed {
        *counts.entry(id).or_default() += 1;
    }
    assert!(
        ids.iter().all(|id| counts.get(id) == Some(&2)) && counts.len() == 3,
        "a replay produces the same command ids: {counts:?}"
    );
}

/// A backlog streams through in transactions that fill up to `batch_size`, not one per chunk
/// read (256 records) or per `batch_wait_ms`, and every record yields its command once.
#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_is_committed_in_full_transactions_with_every_command_once() {
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    const RECORDS: usize = 3000;
    let stack = Stack::new("xf-backlog", 1000).await;
    let (topic, codec, writer) = opportunity_writer(&stack).await;
    // Queued all at once (one awaited send per record would take minutes).
    let producer: FutureProducer = client_config().create().unwrap();
    let mut deliveries = Vec::new();
    for i in 0..RECORDS {
        let id = format!("006B{i:011}");
        let value = change(
            &id,
            "CREATE",
            HUMAN,
            "Closed Won",
            200_000.0,
            "2027-03-01",
            i as u64 + 1,
        );
        let payload = codec.encode(&writer, value).unwrap();
        let record = FutureRecord::to(&topic).key(&id).payload(&payload);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    for d in deliveries {
        d.await.unwrap().unwrap();
    }

    let summary = stack.run_until(RECORDS).await;
    assert_eq!(summary.records, RECORDS as u64, "{summary:?}");
    assert!(
        (3..=5).contains(&summary.transactions),
        "3 000 records in transactions of up to 1 000: {summary:?}"
    );
    let ids: HashSet<String> = stack
        .commands()
        .await
        .into_iter()
        .map(|(_, c)| c.source.id)
        .collect();
    assert_eq!(ids.len(), RECORDS, "one command per record, none twice");
    assert_eq!(stack.commands().await.len(), RECORDS);
}

fn spawn_transformer(config: &std::path::Path) -> Child {
    Process::new(env!("CARGO_BIN_EXE_sfjira-transformer"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the transformer binary starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkilled_transformer_loses_and_duplicates_nothing() {
    const N: usize = 300;
    let stack = Stack::new("xf-kill", 25).await;
    let records = (0..N).map(|i| {
        let id = format!("006K{i:05}");
        (
            id.clone(),
            Some(change(
                &id,
                "CREATE",
                HUMAN,
                "Closed Won",
                200_000.0,
                "2026-12-15",
                i as u64,
            )),
        )
    });
    publish(&stack, records.collect()).await;

    let mut child = spawn_transformer(&stack.config);
    // Kill it mid-stream, as soon as some commands are visible.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stack.commands().await.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = stack.commands().await.len();

    let mut child = spawn_transformer(&stack.config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while stack.commands().await.len() < N && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    unsafe_sigterm(&child);
    child.wait().unwrap();

    let commands = stack.commands().await;
    let ids: HashSet<String> = commands.iter().map(|(_, c)| c.command_id.clone()).collect();
    let sources: HashSet<String> = commands.iter().map(|(_, c)| c.source.id.clone()).collect();
    assert_eq!(
        commands.len(),
        N,
        "every record once (killed after {before} were visible)"
    );
    assert_eq!(ids.len(), N, "no duplicate command ids");
    assert_eq!(sources.len(), N, "every source record has its command");
    assert!(stack.dead_letters().await.is_empty());
}

/// SIGTERM by PID (graceful stop: the batch in hand is committed first).
fn unsafe_sigterm(child: &Child) {
    let _ = Process::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}
