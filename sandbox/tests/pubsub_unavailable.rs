//! The injectable Pub/Sub outage (`pubsubUnavailable`, `pubsubUnavailableNextCalls` in
//! `PUT /__admin/salesforce/faults`): calls and open Subscribe streams fail with status
//! `INTERNAL` and `error-code` `sfdc.platform.eventbus.grpc.service.unavailable`, message
//! "The service is unavailable. Try again later. rpcId: <id>", as captured from the live
//! service (pozil/pub-sub-api-node-client#52; reference §1.5). REST is unaffected.

#[path = "salesforce_support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::{Value as Json, json};
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::salesforce::pubsub::proto::pub_sub_client::PubSubClient;
use sfjira_sandbox::salesforce::pubsub::proto::{
    FetchRequest, FetchResponse, ReplayPreset, TopicRequest,
};
use sfjira_sandbox::salesforce::wiring::{FullOrg, spawn_full_for_tests};
use support::{CONSUMER_KEY, CONSUMER_SECRET, V, config, form};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

const TOPIC: &str = "/data/AccountChangeEvent";
const WAIT: Duration = Duration::from_secs(5);
const UNAVAILABLE: &str = "sfdc.platform.eventbus.grpc.service.unavailable";

struct Env {
    full: FullOrg,
    http: reqwest::Client,
    grpc: PubSubClient<Channel>,
    token: String,
    instance_url: String,
    org_id: String,
}

async fn start() -> Env {
    let full = spawn_full_for_tests(config(), SandboxClock::real_time())
        .await
        .unwrap();
    let http = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let base = full.http.base_url.clone();
    let body: Json = http
        .post(format!("{base}/services/oauth2/token"))
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
        org_id: full.http.org.org_id.clone(),
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
        md.insert("tenantid", self.org_id.parse().unwrap());
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

    async fn faults(&self) -> Json {
        self.http
            .get(format!(
                "{}/__admin/salesforce/faults",
                self.full.http.base_url
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn get_topic(&mut self) -> Result<(), Status> {
        let req = self.authed(TopicRequest {
            topic_name: TOPIC.into(),
        });
        self.grpc.get_topic(req).await.map(|_| ())
    }

    async fn create_account(&self, name: &str) -> u16 {
        self.http
            .post(format!("{}{V}/sobjects/Account", self.full.http.base_url))
            .bearer_auth(&self.token)
            .json(&json!({ "Name": name }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn subscribe(
        &mut self,
    ) -> Result<(mpsc::Sender<FetchRequest>, Streaming<FetchResponse>), Status> {
        let (tx, rx) = mpsc::channel(4);
        tx.send(FetchRequest {
            topic_name: TOPIC.into(),
            replay_preset: ReplayPreset::Earliest as i32,
            num_requested: 10,
            ..Default::default()
        })
        .await
        .unwrap();
        let req = self.authed(ReceiverStream::new(rx));
        let stream = self.grpc.subscribe(req).await?.into_inner();
        Ok((tx, stream))
    }
}

/// The real service's shape: INTERNAL, the `error-code`, `rpc-id` matching the message's
/// `rpcId:` suffix, and `type` naming the RPC.
fn assert_unavailable(s: &Status, rpc: &str) {
    assert_eq!(s.code(), Code::Internal, "{s:?}");
    let md = |k: &str| {
        s.metadata()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(md("error-code"), UNAVAILABLE);
    assert_eq!(md("type"), rpc);
    let rpc_id = md("rpc-id");
    assert_eq!(
        s.message(),
        format!("The service is unavailable. Try again later. rpcId: {rpc_id}")
    );
    assert!(uuid::Uuid::parse_str(&rpc_id).is_ok(), "rpc-id {rpc_id:?}");
}

#[tokio::test]
async fn next_calls_fail_service_unavailable_then_recover() {
    let mut env = start().await;
    env.get_topic().await.expect("healthy at first");
    env.put_faults(json!({"pubsubUnavailableNextCalls": 2}))
        .await;
    let e = env.get_topic().await.unwrap_err();
    assert_unavailable(&e, "GetTopic");
    let e = env.subscribe().await.map(|_| ()).unwrap_err();
    assert_unavailable(&e, "Subscribe");
    assert_eq!(env.faults().await["pubsubUnavailableNextCalls"], 0);
    env.get_topic().await.expect("back after two failed calls");
    // REST never noticed.
    assert_eq!(env.create_account("Unaffected").await, 201);
}

#[tokio::test]
async fn an_outage_ends_open_streams_and_refuses_calls_until_cleared() {
    let mut env = start().await;
    assert_eq!(env.create_account("Before").await, 201);
    let (_tx, mut stream) = env.subscribe().await.expect("subscribe");
    let first = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("no event within 5 s")
        .unwrap()
        .expect("stream ended");
    assert_eq!(first.events.len(), 1);

    env.put_faults(json!({"pubsubUnavailable": true})).await;
    // The idle stream ends promptly with the error, no new event needed.
    let end = tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .expect("the open stream was not ended within 2 s");
    assert_unavailable(&end.unwrap_err(), "Subscribe");
    let e = env.subscribe().await.map(|_| ()).unwrap_err();
    assert_unavailable(&e, "Subscribe");
    let e = env.get_topic().await.unwrap_err();
    assert_unavailable(&e, "GetTopic");
    assert_eq!(env.create_account("During").await, 201, "REST stays up");

    env.put_faults(json!({})).await;
    let (_tx, mut stream) = env.subscribe().await.expect("subscribe after the outage");
    let mut got = 0;
    while got < 2 {
        let r = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("events after the outage did not arrive within 5 s")
            .unwrap()
            .expect("stream ended");
        got += r.events.len();
    }
    assert_eq!(got, 2, "both commits, including the one during the outage");
}
