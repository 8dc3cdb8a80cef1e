//! The Pub/Sub API through a tonic client generated from the same proto: auth, topics,
//! schemas, Subscribe replay presets, flow control, keepalive, idle close, errors and TLS.

use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::Utc;
use serde_json::json;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::salesforce::cdc::{BusSettings, EventBus, bitmap};
use sfjira_sandbox::salesforce::changes::{
    ChangeSink, ChangeType, CommittedTransaction, RecordChange,
};
use sfjira_sandbox::salesforce::meta::{CompoundComponent, FieldMeta, FieldType, ObjectMeta};
use sfjira_sandbox::salesforce::pubsub::proto::pub_sub_client::PubSubClient;
use sfjira_sandbox::salesforce::pubsub::proto::{
    FetchRequest, FetchResponse, PublishRequest, ReplayPreset, SchemaRequest, TopicRequest,
};
use sfjira_sandbox::salesforce::pubsub::{
    self, PubSubFaults, PubSubSettings, Session, StaticTokens, TlsSettings,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

const TOKEN: &str = "00D000000000001!AQtoken";
const ORG: &str = "00D000000000001AAA";
const INSTANCE: &str = "https://sandbox.my.salesforce.com";
const TOPIC: &str = "/data/AccountChangeEvent";

fn account() -> ObjectMeta {
    let mut fields = vec![
        FieldMeta::new("Id", FieldType::Id),
        FieldMeta::new("Name", FieldType::String),
        FieldMeta::new("Type", FieldType::Picklist),
    ];
    let parts = [
        "Street",
        "City",
        "State",
        "PostalCode",
        "Country",
        "Latitude",
        "Longitude",
        "GeocodeAccuracy",
    ];
    let mut billing = FieldMeta::new("BillingAddress", FieldType::Address);
    billing.components = parts
        .iter()
        .map(|p| CompoundComponent {
            name: p.to_string(),
            field: format!("Billing{p}"),
        })
        .collect();
    fields.push(billing);
    for p in parts {
        let mut f = FieldMeta::new(
            &format!("Billing{p}"),
            if p.starts_with('L') {
                FieldType::Double
            } else {
                FieldType::String
            },
        );
        f.compound_parent = Some("BillingAddress".into());
        fields.push(f);
    }
    fields.push(FieldMeta::new("AnnualRevenue", FieldType::Currency));
    ObjectMeta {
        name: "Account".into(),
        label: "Account".into(),
        key_prefix: "001".into(),
        custom: false,
        fields,
    }
}

struct Env {
    bus: Arc<EventBus>,
    client: PubSubClient<Channel>,
    faults: Arc<PubSubFaults>,
}

async fn start(settings: PubSubSettings) -> Env {
    start_with_clock(settings, SandboxClock::real_time()).await
}

async fn start_with_clock(settings: PubSubSettings, clock: SandboxClock) -> Env {
    let bus = Arc::new(EventBus::new(&[account()], BusSettings::default(), clock.clone()).unwrap());
    let tokens = Arc::new(StaticTokens::new());
    tokens.insert(
        TOKEN,
        Session {
            user_id: "005000000000001AAA".into(),
            org_id: ORG.into(),
            instance_url: INSTANCE.into(),
        },
    );
    tokens.expire("expired-token");
    let faults = Arc::new(PubSubFaults::new());
    let settings = PubSubSettings {
        faults: faults.clone(),
        ..settings
    };
    let (addr, _server) = pubsub::spawn_local(bus.clone(), tokens, settings, clock)
        .await
        .unwrap();
    let client = PubSubClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    Env {
        bus,
        client,
        faults,
    }
}

fn fast() -> PubSubSettings {
    PubSubSettings {
        keepalive: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(5),
        ..PubSubSettings::default()
    }
}

fn authed<T>(msg: T) -> Request<T> {
    with_token(msg, TOKEN)
}

fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("accesstoken", token.parse().unwrap());
    r.metadata_mut()
        .insert("instanceurl", INSTANCE.parse().unwrap());
    r.metadata_mut().insert("tenantid", ORG.parse().unwrap());
    r
}

fn commit(bus: &EventBus, n: usize) {
    for i in 0..n {
        let mut values = serde_json::Map::new();
        values.insert("Name".into(), json!(format!("Acme {i}")));
        values.insert("BillingCity".into(), json!("Paris"));
        values.insert("BillingState".into(), json!("IDF"));
        bus.committed(CommittedTransaction {
            changes: vec![RecordChange {
                entity: "Account".into(),
                record_id: format!("001{i:015}"),
                change_type: ChangeType::Create,
                changed_fields: vec!["Name".into(), "BillingCity".into(), "BillingState".into()],
                nulled_fields: vec![],
                values,
            }],
            commit_timestamp: Utc::now(),
            commit_user: "005000000000001AAA".into(),
            change_origin: "com/salesforce/api/rest/64.0;client=sfjira".into(),
        });
    }
}

fn fetch(preset: ReplayPreset, replay_id: Vec<u8>, n: i32) -> FetchRequest {
    FetchRequest {
        topic_name: TOPIC.into(),
        replay_preset: preset as i32,
        replay_id,
        num_requested: n,
        auth_refresh: String::new(),
    }
}

struct Sub {
    tx: mpsc::Sender<FetchRequest>,
    rx: Streaming<FetchResponse>,
}

impl Sub {
    async fn open(client: &mut PubSubClient<Channel>, first: FetchRequest) -> Result<Sub, Status> {
        let (tx, rx) = mpsc::channel(8);
        tx.send(first).await.unwrap();
        let rx = client
            .subscribe(authed(ReceiverStream::new(rx)))
            .await?
            .into_inner();
        Ok(Sub { tx, rx })
    }

    async fn next(&mut self) -> Result<Option<FetchResponse>, Status> {
        tokio::time::timeout(Duration::from_secs(5), self.rx.message())
            .await
            .expect("no response within 5 s")
    }

    /// Next response that carries events (skipping keepalives).
    async fn events(&mut self) -> FetchResponse {
        loop {
            let r = self.next().await.unwrap().expect("stream ended");
            if !r.events.is_empty() {
                return r;
            }
        }
    }

    /// The status the stream ends with, skipping keepalives (at most 20 responses).
    async fn error(&mut self) -> Status {
        for _ in 0..20 {
            match self.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("closed without error"),
                Err(e) => return e,
            }
        }
        panic!("no error after 20 responses")
    }

    async fn request(&self, n: i32) {
        self.tx
            .send(FetchRequest {
                num_requested: n,
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

fn error_code(s: &Status) -> &str {
    s.metadata()
        .get("error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    let Value::Record(fields) = v else {
        panic!("not a record")
    };
    &fields.iter().find(|(n, _)| n == name).unwrap().1
}

fn strings(v: &Value) -> Vec<String> {
    let Value::Array(a) = v else {
        panic!("not an array")
    };
    a.iter()
        .map(|s| {
            if let Value::String(s) = s {
                s.clone()
            } else {
                panic!()
            }
        })
        .collect()
}

fn update_name_city_and_null_type(bus: &EventBus) {
    let mut values = serde_json::Map::new();
    values.insert("Name".into(), json!("Acme Renamed"));
    values.insert("BillingCity".into(), json!("Lyon"));
    values.insert("Type".into(), serde_json::Value::Null);
    bus.committed(CommittedTransaction {
        changes: vec![RecordChange {
            entity: "Account".into(),
            record_id: "001000000000000000".into(),
            change_type: ChangeType::Update,
            changed_fields: vec!["Name".into(), "BillingCity".into(), "Type".into()],
            nulled_fields: vec!["Type".into()],
            values,
        }],
        commit_timestamp: Utc::now(),
        commit_user: "005000000000001AAA".into(),
        change_origin: String::new(),
    });
}

#[tokio::test]
async fn subscribe_decodes_payload_and_bitmaps() {
    let mut env = start(fast()).await;
    commit(&env.bus, 1);
    update_name_city_and_null_type(&env.bus);
    let topic = env
        .client
        .get_topic(authed(TopicRequest {
            topic_name: TOPIC.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            topic.tenant_guid.as_str(),
            topic.can_subscribe,
            topic.can_publish
        ),
        (ORG, true, false)
    );
    assert!(!topic.rpc_id.is_empty());
    let mut sub = Sub::open(&mut env.client, fetch(ReplayPreset::Earliest, vec![], 10))
        .await
        .unwrap();
    let mut events = Vec::new();
    let mut pending = 0;
    while events.len() < 2 {
        let r = sub.events().await;
        assert!(!r.rpc_id.is_empty());
        assert_eq!(r.latest_replay_id, r.events.last().unwrap().replay_id);
        pending = r.pending_num_requested;
        events.extend(r.events);
    }
    assert_eq!((events.len(), pending), (2, 8));
    assert!(
        events.iter().all(|e| e.replay_id.len() == 8),
        "replay ids are 8-byte big-endian"
    );
    let (create, update) = (
        events[0].event.clone().unwrap(),
        events[1].event.clone().unwrap(),
    );
    assert_eq!(create.schema_id, topic.schema_id);

    let info = env
        .client
        .get_schema(authed(SchemaRequest {
            schema_id: create.schema_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.schema_id, create.schema_id);
    let schema = Schema::parse_str(&info.schema_json).unwrap();
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .unwrap();

    let v = reader.read_value(&mut &create.payload[..]).unwrap();
    let header = field(&v, "ChangeEventHeader");
    assert_eq!(
        field(header, "changeType"),
        &Value::Enum(0, "CREATE".into())
    );
    assert_eq!(strings(field(header, "recordIds")), ["001000000000000000"]);
    assert_eq!(field(header, "sequenceNumber"), &Value::Int(1));
    assert_eq!(
        field(header, "changeOrigin"),
        &Value::String("com/salesforce/api/rest/64.0;client=sfjira".into())
    );
    assert!(
        strings(field(header, "changedFields")).is_empty(),
        "empty for creates"
    );
    assert_eq!(
        field(&v, "Name"),
        &Value::Union(1, Box::new(Value::String("Acme 0".into())))
    );
    let Value::Union(1, billing) = field(&v, "BillingAddress") else {
        panic!("no address")
    };
    assert_eq!(
        field(billing, "City"),
        &Value::Union(1, Box::new(Value::String("Paris".into())))
    );

    let v = reader.read_value(&mut &update.payload[..]).unwrap();
    let header = field(&v, "ChangeEventHeader");
    assert_eq!(
        field(header, "changeType"),
        &Value::Enum(1, "UPDATE".into())
    );
    let changed = strings(field(header, "changedFields"));
    // Id is field 1, Name 2, Type 3, BillingAddress 4 (City is its field 1).
    assert_eq!(changed, ["0x0C", "4-0x02"]);
    assert_eq!(
        bitmap::decode(&schema, &changed).unwrap(),
        ["Name", "Type", "BillingAddress.City"]
    );
    assert_eq!(
        bitmap::decode(&schema, &strings(field(header, "nulledFields"))).unwrap(),
        ["Type"]
    );
    assert_eq!(field(&v, "Type"), &Value::Union(0, Box::new(Value::Null)));
    let Value::Union(1, billing) = field(&v, "BillingAddress") else {
        panic!("no address")
    };
    assert_eq!(
        field(billing, "City"),
        &Value::Union(1, Box::new(Value::String("Lyon".into())))
    );
    assert_eq!(
        field(billing, "State"),
        &Value::Union(0, Box::new(Value::Null)),
        "unchanged part"
    );
}

#[tokio::test]
async fn replay_presets_earliest_latest_custom() {
    let mut env = start(fast()).await;
    commit(&env.bus, 3);
    let mut earliest = Sub::open(&mut env.client, fetch(ReplayPreset::Earliest, vec![], 10))
        .await
        .unwrap();
    let all = earliest.events().await;
    assert_eq!(all.events.len(), 3);

    let mut custom = Sub::open(
        &mut env.client,
        fetch(ReplayPreset::Custom, all.events[0].replay_id.clone(), 10),
    )
    .await
    .unwrap();
    let after_first = custom.events().await;
    let ids: Vec<_> = after_first
        .events
        .iter()
        .map(|e| e.replay_id.clone())
        .collect();
    assert_eq!(
        ids,
        [
            all.events[1].replay_id.clone(),
            all.events[2].replay_id.clone()
        ]
    );

    // LATEST (also the default, 0): only what is committed after subscribing.
    let mut latest = Sub::open(&mut env.client, fetch(ReplayPreset::Latest, vec![], 10))
        .await
        .unwrap();
    let keepalive = latest.next().await.unwrap().unwrap();
    assert!(keepalive.events.is_empty());
    // The keepalive's position may be past the last event ("an advanced position").
    assert!(keepalive.latest_replay_id >= all.events[2].replay_id);
    commit(&env.bus, 1);
    let new = latest.events().await;
    assert_eq!(new.events.len(), 1);
    assert!(new.events[0].replay_id > keepalive.latest_replay_id);
    // Replay fields of later requests are ignored.
    latest
        .tx
        .send(fetch(ReplayPreset::Earliest, vec![], 1))
        .await
        .unwrap();
    let k = latest.next().await.unwrap().unwrap();
    assert!(k.events.is_empty(), "a later EARLIEST must not rewind");
}

#[tokio::test]
async fn flow_control_never_delivers_more_than_requested() {
    let mut env = start(fast()).await;
    commit(&env.bus, 5);
    let mut sub = Sub::open(&mut env.client, fetch(ReplayPreset::Earliest, vec![], 2))
        .await
        .unwrap();
    let r = sub.events().await;
    assert_eq!((r.events.len(), r.pending_num_requested), (2, 0));
    // Nothing more, not even keepalives, while no demand is pending.
    assert!(
        tokio::time::timeout(Duration::from_millis(900), sub.rx.message())
            .await
            .is_err()
    );
    sub.request(1).await;
    let r = sub.events().await;
    assert_eq!((r.events.len(), r.pending_num_requested), (1, 0));
    sub.request(10).await;
    let r = sub.events().await;
    assert_eq!((r.events.len(), r.pending_num_requested), (2, 8));
    let last = r.events[1].replay_id.clone();
    // Idle with demand pending: a keepalive with the latest replay id and the pending count.
    let k = sub.next().await.unwrap().unwrap();
    assert!(k.events.is_empty());
    assert_eq!(k.pending_num_requested, 8);
    assert!(
        k.latest_replay_id > last,
        "the bus moved on without events for this org"
    );
    // Demand adds up, capped at 100.
    sub.request(100).await;
    let k = sub.next().await.unwrap().unwrap();
    assert_eq!(k.pending_num_requested, 100);
    // A stored keepalive position is a valid place to resume: nothing is skipped.
    let stored = k.latest_replay_id.clone();
    drop(sub);
    commit(&env.bus, 1);
    let mut resumed = Sub::open(&mut env.client, fetch(ReplayPreset::Custom, stored, 5))
        .await
        .unwrap();
    let r = resumed.events().await;
    assert_eq!((r.events.len(), r.pending_num_requested), (1, 4));
}

#[tokio::test]
async fn keepalive_interval_runs_on_the_sandbox_clock() {
    // The real default of 60 s, on a clock 600 times faster: about 100 ms of wall time.
    let settings = PubSubSettings {
        keepalive: Duration::from_secs(60),
        ..PubSubSettings::default()
    };
    let mut env = start_with_clock(settings, SandboxClock::new(600.0)).await;
    let mut sub = Sub::open(&mut env.client, fetch(ReplayPreset::Latest, vec![], 3))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let k = sub.next().await.unwrap().unwrap();
    assert!(k.events.is_empty() && k.pending_num_requested == 3);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn org_move_invalidates_replay_ids_and_publish_is_refused() {
    let mut env = start(fast()).await;
    commit(&env.bus, 1);
    let mut sub = Sub::open(&mut env.client, fetch(ReplayPreset::Earliest, vec![], 1))
        .await
        .unwrap();
    let old = sub.events().await.events[0].replay_id.clone();
    env.bus.reset_replay_ids();
    let mut sub = Sub::open(&mut env.client, fetch(ReplayPreset::Custom, old, 1))
        .await
        .unwrap();
    let err = sub.next().await.unwrap_err();
    assert_eq!(
        error_code(&err),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    );

    let publish = PublishRequest {
        topic_name: TOPIC.into(),
        ..Default::default()
    };
    let err = env.client.publish(authed(publish)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let (_tx, rx) = mpsc::channel::<PublishRequest>(1);
    let err = env
        .client
        .publish_stream(authed(ReceiverStream::new(rx)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.metadata().get("rpc-id").is_some());
}

#[tokio::test]
async fn idle_stream_closes_and_suppressed_keepalives_stall() {
    let settings = PubSubSettings {
        idle_timeout: Duration::from_millis(400),
        ..fast()
    };
    let mut env = start(settings).await;
    commit(&env.bus, 1);
    let mut sub = Sub::open(&mut env.client, fetch(ReplayPreset::Earliest, vec![], 1))
        .await
        .unwrap();
    assert_eq!(sub.events().await.pending_num_requested, 0);
    assert!(
        sub.next().await.unwrap().is_none(),
        "closed after the idle window"
    );

    env.faults.update(|f| f.suppress_keepalives = true);
    let mut stalled = Sub::open(&mut env.client, fetch(ReplayPreset::Latest, vec![], 5))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1000), stalled.rx.message())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn dropped_stream_fault_ends_with_unavailable() {
    let mut env = start(fast()).await;
    commit(&env.bus, 3);
    env.faults.update(|f| f.drop_streams_after_events = Some(2));
    let mut sub = Sub::open(&mut env.client, fetch(ReplayPreset::Earliest, vec![], 10))
        .await
        .unwrap();
    assert_eq!(sub.events().await.events.len(), 2);
    let err = sub.next().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().starts_with("RST_STREAM closed stream"));

    // Some(0): an idle open stream is dropped at its next wake-up (here: the keepalive).
    let mut idle = Sub::open(&mut env.client, fetch(ReplayPreset::Latest, vec![], 10))
        .await
        .unwrap();
    assert!(idle.next().await.unwrap().unwrap().events.is_empty());
    env.faults.update(|f| f.drop_streams_after_events = Some(0));
    let err = idle.error().await;
    assert_eq!(err.code(), Code::Unavailable);
}

#[tokio::test]
async fn replay_id_errors_carry_the_error_code() {
    let mut env = start(fast()).await;
    commit(&env.bus, 2);
    // Unknown id.
    let mut sub = Sub::open(
        &mut env.client,
        fetch(ReplayPreset::Custom, 42u64.to_be_bytes().to_vec(), 1),
    )
    .await
    .unwrap();
    let err = sub.next().await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        error_code(&err),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    );
    let rpc_id = err
        .metadata()
        .get("rpc-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        err.message().ends_with(&format!("rpcId: {rpc_id}")),
        "{}",
        err.message()
    );

    // Expired id: shortened retention.
    let mut ok = Sub::open(&mut env.client, fetch(ReplayPreset::Earliest, vec![], 1))
        .await
        .unwrap();
    let first = ok.events().await.events[0].replay_id.clone();
    env.faults
        .update(|f| f.replay_retention = Some(Duration::from_millis(1)));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut sub = Sub::open(&mut env.client, fetch(ReplayPreset::Custom, first, 1))
        .await
        .unwrap();
    let err = sub.next().await.unwrap_err();
    assert_eq!(
        error_code(&err),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    );

    // CUSTOM without an id.
    let mut sub = Sub::open(&mut env.client, fetch(ReplayPreset::Custom, vec![], 1))
        .await
        .unwrap();
    let err = sub.next().await.unwrap_err();
    assert_eq!(
        error_code(&err),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
    );
}

#[tokio::test]
async fn request_errors() {
    let mut env = start(fast()).await;
    let mut sub = Sub::open(&mut env.client, fetch(ReplayPreset::Latest, vec![], 0))
        .await
        .unwrap();
    let err = sub.next().await.unwrap_err();
    assert_eq!(
        (err.code(), error_code(&err)),
        (
            Code::InvalidArgument,
            "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid"
        )
    );

    let mut sub = Sub::open(&mut env.client, fetch(ReplayPreset::Latest, vec![], 1))
        .await
        .unwrap();
    sub.tx
        .send(FetchRequest {
            topic_name: "/data/ContactChangeEvent".into(),
            num_requested: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let err = sub.error().await;
    assert_eq!(
        (err.code(), error_code(&err)),
        (
            Code::InvalidArgument,
            "sfdc.platform.eventbus.grpc.subscription.fetch.topic.mismatch"
        )
    );

    let mut sub = Sub::open(
        &mut env.client,
        FetchRequest {
            topic_name: "/data/NopeChangeEvent".into(),
            num_requested: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let err = sub.next().await.unwrap_err();
    assert_eq!(
        (err.code(), error_code(&err)),
        (
            Code::NotFound,
            "sfdc.platform.eventbus.grpc.topic.not.found"
        )
    );
    let err = env
        .client
        .get_topic(authed(TopicRequest {
            topic_name: "/data/Nope".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), error_code(&err)),
        (
            Code::NotFound,
            "sfdc.platform.eventbus.grpc.topic.not.found"
        )
    );
}

#[tokio::test]
async fn bad_or_expired_token_is_unauthenticated() {
    let mut env = start(fast()).await;
    for token in ["wrong", "expired-token"] {
        let err = env
            .client
            .get_topic(with_token(
                TopicRequest {
                    topic_name: TOPIC.into(),
                },
                token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert_eq!(
            error_code(&err),
            "sfdc.platform.eventbus.grpc.service.auth.error"
        );
        let rpc_id = err
            .metadata()
            .get("rpc-id")
            .expect("rpc-id trailer")
            .to_str()
            .unwrap();
        assert_eq!(rpc_id.len(), 36);
        assert!(
            err.message()
                .starts_with("An authentication exception occurred.")
        );
    }
    let (_tx, rx) = mpsc::channel::<FetchRequest>(1);
    let err = env
        .client
        .subscribe(with_token(ReceiverStream::new(rx), "wrong"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), error_code(&err)),
        (
            Code::Unauthenticated,
            "sfdc.platform.eventbus.grpc.service.auth.error"
        )
    );
    // Missing tenant id.
    let mut r = authed(TopicRequest {
        topic_name: TOPIC.into(),
    });
    r.metadata_mut().remove("tenantid");
    assert_eq!(
        env.client.get_topic(r).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn tls_with_generated_ca() {
    let dir = std::env::temp_dir().join(format!("sfjira-pubsub-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_path = dir.join("ca.pem");
    let clock = SandboxClock::real_time();
    let bus = Arc::new(EventBus::new(&[account()], BusSettings::default(), clock.clone()).unwrap());
    let tokens = Arc::new(StaticTokens::new());
    tokens.insert(
        TOKEN,
        Session {
            user_id: "005000000000001AAA".into(),
            org_id: ORG.into(),
            instance_url: INSTANCE.into(),
        },
    );
    let tls = TlsSettings {
        hosts: vec!["localhost".into()],
        ca_pem_path: ca_path.clone(),
    };
    let settings = PubSubSettings {
        tls: Some(tls),
        ..fast()
    };
    let (addr, _server) = pubsub::spawn_local(bus, tokens, settings, clock)
        .await
        .unwrap();
    let ca = tonic::transport::Certificate::from_pem(std::fs::read(&ca_path).unwrap());
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(ca)
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{}", addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = PubSubClient::new(channel);
    let topic = client
        .get_topic(authed(TopicRequest {
            topic_name: TOPIC.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(topic.topic_name, TOPIC);
    let _ = std::fs::remove_dir_all(dir);
}
