//! End to end, as the connector sees the org: REST writes made over HTTP(S) with a token from
//! `/services/oauth2/token` reach a Pub/Sub API subscriber (a tonic client generated from the
//! same proto) as Change Data Capture events with the right header, the right field bitmaps
//! (decoded here independently, per reference §2.4) and the right values. Once over plain
//! HTTP/gRPC, once over TLS trusting only the CA file the org generated at start, and once
//! through the `sfjira-sandbox` binary started with `--tls-ca-out`.
//!
//! Every wait is bounded: a missing event fails the test after a few seconds with a message.

#[path = "salesforce_support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::types::Value;
use serde_json::{Value as Json, json};
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::salesforce::config::TlsConfig;
use sfjira_sandbox::salesforce::pubsub::proto::pub_sub_client::PubSubClient;
use sfjira_sandbox::salesforce::pubsub::proto::{
    FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, TopicRequest,
};
use sfjira_sandbox::salesforce::wiring::{FullOrg, spawn_full_for_tests};
use support::{CONSUMER_KEY, CONSUMER_SECRET, V, config, form};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Request, Streaming};

const CLIENT_ID: &str = "sfjira-e2e";
const TOPIC: &str = "/data/AccountChangeEvent";
/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(5);

/// A logged-in connector: REST client, gRPC client, and what the token response said.
struct Connector {
    http: reqwest::Client,
    base: String,
    grpc: PubSubClient<Channel>,
    token: String,
    instance_url: String,
    org_id: String,
    user_id: String,
}

impl Connector {
    /// Client-credentials login over `http`, then `/services/oauth2/userinfo` for the org and
    /// user Ids (as pozil's client does, reference §1.2).
    async fn login(
        http: reqwest::Client,
        base: &str,
        key: &str,
        secret: &str,
        grpc: Channel,
    ) -> Connector {
        let resp = http
            .post(format!("{base}/services/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "client_credentials"),
                ("client_id", key),
                ("client_secret", secret),
            ]))
            .send()
            .await
            .expect("token request");
        assert_eq!(resp.status(), 200, "token endpoint");
        let body: Json = resp.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap().to_string();
        let instance_url = body["instance_url"].as_str().unwrap().to_string();
        let info: Json = http
            .get(format!("{base}/services/oauth2/userinfo"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("userinfo request")
            .json()
            .await
            .unwrap();
        Connector {
            base: base.to_string(),
            grpc: PubSubClient::new(grpc),
            org_id: info["organization_id"].as_str().unwrap().to_string(),
            user_id: info["user_id"].as_str().unwrap().to_string(),
            http,
            token,
            instance_url,
        }
    }

    fn authed<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        let md = r.metadata_mut();
        md.insert("accesstoken", self.token.parse().unwrap());
        md.insert("instanceurl", self.instance_url.parse().unwrap());
        md.insert("tenantid", self.org_id.parse().unwrap());
        r
    }

    /// A REST call carrying `Sforce-Call-Options: client=<CLIENT_ID>`; (status, body).
    async fn rest(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> (u16, Json) {
        let mut req = self
            .http
            .request(method, format!("{}{V}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Sforce-Call-Options", format!("client={CLIENT_ID}"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("REST call");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Json::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, v)
    }

    async fn subscribe(&mut self, first: FetchRequest) -> Subscription {
        let (tx, rx) = mpsc::channel(8);
        tx.send(first).await.unwrap();
        let request = self.authed(ReceiverStream::new(rx));
        let stream = tokio::time::timeout(WAIT, self.grpc.subscribe(request))
            .await
            .expect("Subscribe did not answer within 5 s")
            .expect("Subscribe refused")
            .into_inner();
        Subscription {
            _tx: tx,
            stream,
            buffered: Vec::new(),
        }
    }

    async fn schema(&mut self, id: &str, cache: &mut HashMap<String, Schema>) -> Schema {
        if let Some(s) = cache.get(id) {
            return s.clone();
        }
        let info = self
            .grpc
            .get_schema(self.authed(SchemaRequest {
                schema_id: id.to_string(),
            }))
            .await
            .expect("GetSchema")
            .into_inner();
        let schema = Schema::parse_str(&info.schema_json).expect("schema JSON");
        cache.insert(id.to_string(), schema.clone());
        schema
    }
}

struct Subscription {
    _tx: mpsc::Sender<FetchRequest>,
    stream: Streaming<FetchResponse>,
    buffered: Vec<(String, Vec<u8>)>,
}

impl Subscription {
    /// The next `n` events as (schema id, payload), skipping keepalives; panics after [`WAIT`]
    /// without one.
    async fn events(&mut self, n: usize) -> Vec<(String, Vec<u8>)> {
        while self.buffered.len() < n {
            let r = tokio::time::timeout(WAIT, self.stream.message())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "only {} of {n} change events arrived within 5 s",
                        self.buffered.len()
                    )
                })
                .expect("Subscribe stream failed")
                .expect("Subscribe stream ended");
            for e in r.events {
                let ev = e.event.expect("ConsumerEvent without event");
                self.buffered.push((ev.schema_id, ev.payload));
            }
        }
        self.buffered.drain(..n).collect()
    }
}

fn fetch_earliest(n: i32) -> FetchRequest {
    FetchRequest {
        topic_name: TOPIC.into(),
        replay_preset: ReplayPreset::Earliest as i32,
        replay_id: Vec::new(),
        num_requested: n,
        auth_refresh: String::new(),
    }
}

// ---- Avro helpers ----

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    let Value::Record(fields) = v else {
        panic!("not a record: {v:?}")
    };
    &fields
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .1
}

/// A union's value (`["null", T]`), or the value itself.
fn unwrap_union(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

fn string(v: &Value) -> Option<String> {
    match unwrap_union(v) {
        Value::String(s) => Some(s.clone()),
        Value::Enum(_, s) => Some(s.clone()),
        Value::Null => None,
        other => panic!("not a string: {other:?}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    let Value::Array(a) = unwrap_union(v) else {
        panic!("not an array: {v:?}")
    };
    a.iter().map(|s| string(s).unwrap()).collect()
}

/// `BillingAddress.City`-style access into a nested record; `None` when null.
fn value_at(record: &Value, path: &str) -> Option<Value> {
    let mut v = record;
    for part in path.split('.') {
        v = unwrap_union(field(v, part));
        if matches!(v, Value::Null) {
            return None;
        }
    }
    Some(v.clone())
}

/// Field names of a record schema, unwrapping `["null", record]` unions.
fn record_fields(schema: &Schema) -> Option<Vec<(String, Schema)>> {
    match schema {
        Schema::Record(r) => Some(
            r.fields
                .iter()
                .map(|f| (f.name.clone(), f.schema.clone()))
                .collect(),
        ),
        Schema::Union(u) => u.variants().iter().find_map(record_fields),
        _ => None,
    }
}

/// Bit positions set in `0x<hex>` (big-endian; bit 0 = least significant).
fn bits(hex: &str) -> Vec<usize> {
    let digits = hex
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("bitmap {hex:?} does not start with 0x"));
    let mut out = Vec::new();
    for (i, c) in digits.chars().rev().enumerate() {
        let nibble = c
            .to_digit(16)
            .unwrap_or_else(|| panic!("bad hex in {hex:?}"));
        for b in 0..4 {
            if nibble & (1 << b) != 0 {
                out.push(i * 4 + b);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Decodes `changedFields`/`nulledFields` back to names, as the official samples do
/// (`fdc:python/util/ChangeEventHeaderUtility.py`): element `0x…` over the top-level fields,
/// `pos-0x…` over the fields of the compound field at `pos` (`BillingAddress.City`).
fn decode_bitmap(schema: &Schema, elements: &[String]) -> Vec<String> {
    let top = record_fields(schema).expect("event schema is a record");
    let mut names = Vec::new();
    for e in elements {
        match e.split_once('-') {
            None => names.extend(bits(e).into_iter().map(|i| top[i].0.clone())),
            Some((pos, hex)) => {
                let (parent, parent_schema) = &top[pos.parse::<usize>().unwrap()];
                let nested = record_fields(parent_schema)
                    .unwrap_or_else(|| panic!("{parent} is not a compound field"));
                names.extend(
                    bits(hex)
                        .into_iter()
                        .map(|i| format!("{parent}.{}", nested[i].0)),
                );
            }
        }
    }
    names
}

/// One decoded change event.
struct Event {
    record: Value,
    change_type: String,
    record_ids: Vec<String>,
    change_origin: String,
    commit_user: String,
    transaction_key: String,
    changed: Vec<String>,
    nulled: Vec<String>,
}

impl Event {
    fn decode(schema: &Schema, payload: &[u8]) -> Event {
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
            .build()
            .unwrap();
        let record = reader.read_value(&mut &payload[..]).expect("Avro payload");
        let h = field(&record, "ChangeEventHeader").clone();
        assert_eq!(string(field(&h, "entityName")).as_deref(), Some("Account"));
        assert_eq!(field(&h, "sequenceNumber"), &Value::Int(1));
        assert!(
            matches!(field(&h, "commitTimestamp"), Value::Long(t) if *t > 1_600_000_000_000),
            "commitTimestamp is epoch ms"
        );
        Event {
            change_type: string(field(&h, "changeType")).unwrap(),
            record_ids: strings(field(&h, "recordIds")),
            change_origin: string(field(&h, "changeOrigin")).unwrap_or_default(),
            commit_user: string(field(&h, "commitUser")).unwrap_or_default(),
            transaction_key: string(field(&h, "transactionKey")).unwrap_or_default(),
            changed: decode_bitmap(schema, &strings(field(&h, "changedFields"))),
            nulled: decode_bitmap(schema, &strings(field(&h, "nulledFields"))),
            record,
        }
    }

    fn value(&self, path: &str) -> Option<Value> {
        value_at(&self.record, path)
    }
}

fn text(s: &str) -> Option<Value> {
    Some(Value::String(s.into()))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The scenario both transports run: subscribe, then create / update a compound part / null
/// fields / delete over REST, and check the four change events.
async fn rest_writes_reach_the_subscriber(c: &mut Connector) {
    // EARLIEST on a fresh org: no race between the subscription starting and the writes.
    let mut sub = c.subscribe(fetch_earliest(10)).await;

    let (status, created) = c
        .rest(
            reqwest::Method::POST,
            "/sobjects/Account",
            Some(json!({"Name": "E2E Corp", "Phone": "+47 555 0100", "BillingCity": "Oslo"})),
        )
        .await;
    assert_eq!(status, 201, "create: {created}");
    let id = created["id"].as_str().unwrap().to_string();
    let record = format!("/sobjects/Account/{id}");
    let (status, body) = c
        .rest(
            reqwest::Method::PATCH,
            &record,
            Some(json!({"BillingCity": "Bergen"})),
        )
        .await;
    assert_eq!(status, 204, "update BillingCity: {body}");
    let (status, body) = c
        .rest(
            reqwest::Method::PATCH,
            &record,
            Some(json!({"Phone": null, "BillingCity": null})),
        )
        .await;
    assert_eq!(status, 204, "null Phone and BillingCity: {body}");
    let (status, body) = c.rest(reqwest::Method::DELETE, &record, None).await;
    assert_eq!(status, 204, "delete: {body}");

    let mut schemas = HashMap::new();
    let mut events = Vec::new();
    for (schema_id, payload) in sub.events(4).await {
        let schema = c.schema(&schema_id, &mut schemas).await;
        events.push(Event::decode(&schema, &payload));
    }
    let version = V.trim_start_matches("/services/data/v");
    let origin = format!("com/salesforce/api/rest/{version};client={CLIENT_ID}");
    for e in &events {
        assert_eq!(e.record_ids, [id.as_str()]);
        assert_eq!(e.change_origin, origin);
        assert_eq!(
            e.commit_user, c.user_id,
            "commitUser is the integration user"
        );
        assert!(!e.transaction_key.is_empty());
    }
    let keys: std::collections::HashSet<_> = events.iter().map(|e| &e.transaction_key).collect();
    assert_eq!(keys.len(), 4, "one transaction per REST call");

    let [create, city, nulls, delete] = &events[..] else {
        unreachable!()
    };
    assert_eq!(create.change_type, "CREATE");
    // "empty for other operations, including record creation" (Apex ChangeEventHeader).
    assert!(create.changed.is_empty() && create.nulled.is_empty());
    assert_eq!(create.value("Name"), text("E2E Corp"));
    assert_eq!(create.value("Phone"), text("+47 555 0100"));
    assert_eq!(create.value("BillingAddress.City"), text("Oslo"));

    assert_eq!(city.change_type, "UPDATE");
    assert_eq!(
        sorted(city.changed.clone()),
        ["BillingAddress.City", "LastModifiedDate"]
    );
    assert!(city.nulled.is_empty());
    assert_eq!(city.value("BillingAddress.City"), text("Bergen"));
    assert_eq!(city.value("Name"), None, "unchanged fields are null");
    assert_eq!(city.value("BillingAddress.State"), None);
    assert!(city.value("LastModifiedDate").is_some());

    assert_eq!(nulls.change_type, "UPDATE");
    assert_eq!(
        sorted(nulls.nulled.clone()),
        ["BillingAddress.City", "Phone"]
    );
    assert_eq!(
        sorted(nulls.changed.clone()),
        ["BillingAddress.City", "LastModifiedDate", "Phone"]
    );
    assert_eq!(nulls.value("Phone"), None);
    assert_eq!(nulls.value("BillingAddress.City"), None);

    assert_eq!(delete.change_type, "DELETE");
    assert!(delete.changed.is_empty() && delete.nulled.is_empty());
    assert_eq!(delete.value("Name"), None);
}

async fn plain_channel(full: &FullOrg) -> Channel {
    Channel::from_shared(format!("http://{}", full.pubsub_addr))
        .unwrap()
        .connect_timeout(WAIT)
        .connect()
        .await
        .expect("gRPC connect")
}

async fn tls_channel(url: String, ca_pem: &[u8]) -> Result<Channel, tonic::transport::Error> {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    Channel::from_shared(url)
        .unwrap()
        .connect_timeout(WAIT)
        .tls_config(tls)?
        .connect()
        .await
}

/// A reqwest client that trusts exactly the given CA (no system roots).
fn https_client(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).expect("CA PEM")])
        .timeout(WAIT)
        .build()
        .unwrap()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sfjira-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn rest_writes_reach_a_pubsub_subscriber_over_plain_http_and_grpc() {
    let full = spawn_full_for_tests(config(), SandboxClock::real_time())
        .await
        .unwrap();
    assert!(full.http.base_url.starts_with("http://"));
    assert_eq!(full.ca_pem_path, None);
    let http = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let grpc = plain_channel(&full).await;
    let base = full.http.base_url.clone();
    let mut c = Connector::login(http, &base, CONSUMER_KEY, CONSUMER_SECRET, grpc).await;
    assert_eq!(c.instance_url, base);
    rest_writes_reach_the_subscriber(&mut c).await;
}

#[tokio::test]
async fn rest_writes_reach_a_pubsub_subscriber_over_tls_trusting_only_the_generated_ca() {
    let dir = temp_dir("e2e-tls");
    let ca_path = dir.join("ca.pem");
    let mut cfg = config();
    cfg.tls = Some(TlsConfig {
        ca_pem_path: ca_path.clone(),
        hosts: Vec::new(),
    });
    let full = spawn_full_for_tests(cfg, SandboxClock::real_time())
        .await
        .unwrap();
    assert_eq!(full.ca_pem_path.as_deref(), Some(ca_path.as_path()));
    let base = full.http.base_url.clone();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let ca = std::fs::read(&ca_path).expect("CA file written before spawn returns");

    // Not trusted without the CA, and no plain HTTP on the TLS port.
    let untrusted = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .unwrap()
        .get(format!("{base}/services/data/"))
        .send()
        .await;
    assert!(
        untrusted.is_err(),
        "a client without the CA must not connect"
    );
    let plain = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .unwrap()
        .get(format!("http://{}/services/data/", full.http.addr))
        .send()
        .await;
    assert!(
        !plain.is_ok_and(|r| r.status().is_success()),
        "plain HTTP must not be served on the TLS port"
    );
    let pubsub_url = format!("https://127.0.0.1:{}", full.pubsub_addr.port());
    let no_roots = Channel::from_shared(pubsub_url.clone())
        .unwrap()
        .connect_timeout(WAIT)
        .tls_config(ClientTlsConfig::new())
        .unwrap()
        .connect()
        .await;
    assert!(
        no_roots.is_err(),
        "a gRPC client without the CA must not connect"
    );

    // Both listeners present certificates from the one CA (by IP and by name).
    let grpc = tls_channel(pubsub_url, &ca).await.expect("gRPC over TLS");
    tls_channel(
        format!("https://localhost:{}", full.pubsub_addr.port()),
        &ca,
    )
    .await
    .expect("gRPC over TLS by host name");
    let mut c = Connector::login(
        https_client(&ca),
        &base,
        CONSUMER_KEY,
        CONSUMER_SECRET,
        grpc,
    )
    .await;
    assert_eq!(c.instance_url, base, "instance_url is https");
    rest_writes_reach_the_subscriber(&mut c).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The binary, killed when the test ends (pass or panic).
struct Sandbox(std::process::Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_file(path: &Path, child: &mut Sandbox) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(bytes) = std::fs::read(path)
            && !bytes.is_empty()
        {
            return bytes;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("sfjira-sandbox exited early ({status}) without writing {path:?}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sfjira-sandbox did not write {path:?} within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_binary_serves_both_listeners_over_tls_with_tls_ca_out() {
    let dir = temp_dir("e2e-bin");
    let ca_path = dir.join("out").join("ca.pem");
    let (http_port, pubsub_port) = (free_port(), free_port());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sfjira-sandbox"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SFJIRA_SANDBOX_") {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .args(["--jira", "false"])
        .args(["--salesforce-listen", &format!("127.0.0.1:{http_port}")])
        .args(["--pubsub-listen", &format!("127.0.0.1:{pubsub_port}")])
        .arg("--tls-ca-out")
        .arg(&ca_path)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start sfjira-sandbox");
    let mut sandbox = Sandbox(child);
    let ca = wait_for_file(&ca_path, &mut sandbox).await;

    let base = format!("https://127.0.0.1:{http_port}");
    let grpc = tls_channel(format!("https://127.0.0.1:{pubsub_port}"), &ca)
        .await
        .expect("gRPC over TLS to the binary");
    let c = Connector::login(
        https_client(&ca),
        &base,
        "sfjira-sandbox-consumer-key",
        "sfjira-sandbox-consumer-secret",
        grpc,
    )
    .await;
    assert_eq!(c.instance_url, base);
    let mut grpc = c.grpc.clone();
    let topic = grpc
        .get_topic(c.authed(TopicRequest {
            topic_name: TOPIC.into(),
        }))
        .await
        .expect("GetTopic over TLS with the https instance URL")
        .into_inner();
    assert_eq!(
        (topic.topic_name.as_str(), topic.can_subscribe),
        (TOPIC, true)
    );
    assert_eq!(topic.tenant_guid, c.org_id);
    drop(sandbox);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_http_side_alone_serves_https_with_its_own_ca() {
    let dir = temp_dir("e2e-http-tls");
    let ca_path = dir.join("ca.pem");
    let mut cfg = config();
    cfg.tls = Some(TlsConfig {
        ca_pem_path: ca_path.clone(),
        hosts: vec!["localhost".into()],
    });
    let org = support::start_with(cfg, SandboxClock::real_time()).await;
    assert!(org.base.starts_with("https://"), "{}", org.base);
    let ca = std::fs::read(&ca_path).expect("CA file written before spawn returns");
    let resp = https_client(&ca)
        .get(format!("{}/services/data/", org.base))
        .send()
        .await
        .expect("HTTPS with the generated CA");
    assert_eq!(resp.status(), 200);
    org.org.server.abort();
    let _ = std::fs::remove_dir_all(dir);
}
