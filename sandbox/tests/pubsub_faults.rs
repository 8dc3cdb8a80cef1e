//! The schema and payload faults of the Pub/Sub server (`PUT /__admin/salesforce/faults`):
//! `getSchemaUnavailable` / `getSchemaUnavailableNextCalls` fail `GetSchema` with the live
//! service's `service.unavailable` status while Subscribe keeps working; `corruptNextEvents`
//! delivers events whose Avro payload is cut short, and delivers them cut short again on a
//! later subscription.

#[path = "salesforce_support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::{Value as Json, json};
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::salesforce::pubsub::proto::pub_sub_client::PubSubClient;
use sfjira_sandbox::salesforce::pubsub::proto::{
    FetchRequest, ReplayPreset, SchemaRequest, TopicRequest,
};
use sfjira_sandbox::salesforce::wiring::{FullOrg, spawn_full_for_tests};
use support::{CONSUMER_KEY, CONSUMER_SECRET, V, config, form};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request};

const TOPIC: &str = "/data/AccountChangeEvent";
const WAIT: Duration = Duration::from_secs(5);

struct Env {
    full: FullOrg,
    http: reqwest::Client,
    grpc: PubSubClient<Channel>,
    token: String,
    instance_url: String,
}

async fn start() -> Env {
    let full = spawn_full_for_tests(config(), SandboxClock::real_time())
        .await
        .unwrap();
    let http = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let body: Json = http
        .post(format!("{}/services/oauth2/token", full.http.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CONSUMER_KEY),
            ("client_secret", CONSUMER_SECRET),
        ]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grpc = PubSubClient::connect(format!("http://{}", full.pubsub_addr))
        .await
        .unwrap();
    Env {
        token: body["access_token"].as_str().unwrap().into(),
        instance_url: body["instance_url"].as_str().unwrap().into(),
        full,
        http,
        grpc,
    }
}

impl Env {
    fn authed<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        let md = r.metadata_mut();
        md.insert("accesstoken", self.token.parse().unwrap());
        md.insert("instanceurl", self.instance_url.parse().unwrap());
        md.insert("tenantid", self.full.http.org.org_id.parse().unwrap());
        r
    }

    async fn put_faults(&self, faults: Json) {
        let resp = self
            .http
            .put(format!(
                "{}/__admin/salesforce/faults",
                self.full.http.base_url
            ))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }

    async fn create_account(&self, name: &str) {
        let status = self
            .http
            .post(format!("{}{V}/sobjects/Account", self.full.http.base_url))
            .bearer_auth(&self.token)
            .json(&json!({ "Name": name }))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
    }

    async fn schema_id(&mut self) -> String {
        let req = self.authed(TopicRequest {
            topic_name: TOPIC.into(),
        });
        self.grpc
            .get_topic(req)
            .await
            .unwrap()
            .into_inner()
            .schema_id
    }

    async fn get_schema(&mut self, id: &str) -> Result<String, tonic::Status> {
        let req = self.authed(SchemaRequest {
            schema_id: id.into(),
        });
        self.grpc
            .get_schema(req)
            .await
            .map(|r| r.into_inner().schema_json)
    }

    /// Every retained event's (id, payload), read by a new subscription from the earliest.
    async fn read_all(&mut self, n: usize) -> Vec<(String, Vec<u8>)> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(FetchRequest {
            topic_name: TOPIC.into(),
            replay_preset: ReplayPreset::Earliest as i32,
            num_requested: 100,
            ..Default::default()
        })
        .await
        .unwrap();
        let req = self.authed(ReceiverStream::new(rx));
        let mut stream = self.grpc.subscribe(req).await.unwrap().into_inner();
        let mut out = Vec::new();
        while out.len() < n {
            let r = tokio::time::timeout(WAIT, stream.message())
                .await
                .expect("events within 5 s")
                .unwrap()
                .expect("stream open");
            for e in r.events {
                let pe = e.event.unwrap();
                out.push((pe.id, pe.payload));
            }
        }
        out
    }
}

#[tokio::test]
async fn get_schema_fails_service_unavailable_while_subscribe_works() {
    let mut env = start().await;
    let id = env.schema_id().await;
    env.get_schema(&id).await.expect("healthy at first");

    env.put_faults(json!({"getSchemaUnavailable": true})).await;
    let e = env.get_schema(&id).await.unwrap_err();
    assert_eq!(e.code(), Code::Internal);
    assert_eq!(
        e.metadata().get("error-code").unwrap(),
        "sfdc.platform.eventbus.grpc.service.unavailable"
    );
    assert_eq!(e.metadata().get("type").unwrap(), "GetSchema");
    env.create_account("Still streamed").await;
    assert_eq!(env.read_all(1).await.len(), 1, "Subscribe is unaffected");

    env.put_faults(json!({"getSchemaUnavailableNextCalls": 2}))
        .await;
    assert!(env.get_schema(&id).await.is_err());
    assert!(env.get_schema(&id).await.is_err());
    env.get_schema(&id).await.expect("back after two calls");
}

#[tokio::test]
async fn corrupted_events_are_cut_short_and_stay_so_on_redelivery() {
    let mut env = start().await;
    env.create_account("Intact before").await;
    let intact = env.read_all(1).await;

    env.put_faults(json!({"corruptNextEvents": 1})).await;
    env.create_account("Broken").await;
    env.create_account("Intact after").await;
    // The first subscription to deliver the broken event takes the fault.
    let first = env.read_all(3).await;
    let again = env.read_all(3).await;
    assert_eq!(first, again, "redelivered exactly as first delivered");
    assert_eq!(first[0], intact[0], "delivered before the fault: intact");

    let stored = |id: &str| {
        let bus = &env.full.bus;
        bus.read(TOPIC, bus.earliest(TOPIC).unwrap(), 10)
            .unwrap()
            .into_iter()
            .find(|e| e.event_id == id)
            .unwrap()
            .payload
            .to_vec()
    };
    let (broken_id, broken) = &first[1];
    let whole = stored(broken_id);
    assert_eq!(broken[..], whole[..whole.len() / 2], "cut to half");
    let (after_id, after) = &first[2];
    assert_eq!(
        after,
        &stored(after_id),
        "only the next event was corrupted"
    );
}
