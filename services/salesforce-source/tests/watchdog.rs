//! A silent dead stream (the server accepts Subscribe and then sends nothing, not even
//! keepalives) is detected by the watchdog, which reconnects.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use sfjira_sandbox::salesforce::pubsub::proto::pub_sub_server::{PubSub, PubSubServer};
use sfjira_sandbox::salesforce::pubsub::proto::{
    FetchRequest, FetchResponse, ManagedFetchRequest, ManagedFetchResponse, PublishRequest,
    PublishResponse, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Accepts every Subscribe, counts it, and never answers.
struct Silent {
    subscribes: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl PubSub for Silent {
    type SubscribeStream = BoxStream<FetchResponse>;
    type PublishStreamStream = BoxStream<PublishResponse>;
    type ManagedSubscribeStream = BoxStream<ManagedFetchResponse>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        self.subscribes.fetch_add(1, Ordering::SeqCst);
        let mut requests = request.into_inner();
        let stream = async_stream_silent(async move {
            // Read requests (so the client's sends succeed), answer nothing.
            while let Ok(Some(_)) = requests.message().await {}
        });
        Ok(Response::new(stream))
    }
    async fn get_schema(&self, _: Request<SchemaRequest>) -> Result<Response<SchemaInfo>, Status> {
        Err(Status::unimplemented("silent"))
    }
    async fn get_topic(&self, _: Request<TopicRequest>) -> Result<Response<TopicInfo>, Status> {
        Err(Status::unimplemented("silent"))
    }
    async fn publish(
        &self,
        _: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        Err(Status::unimplemented("silent"))
    }
    async fn publish_stream(
        &self,
        _: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        Err(Status::unimplemented("silent"))
    }
    async fn managed_subscribe(
        &self,
        _: Request<Streaming<ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        Err(Status::unimplemented("silent"))
    }
}

/// A response stream that stays open (yielding nothing) while `drain` runs.
fn async_stream_silent(
    drain: impl std::future::Future<Output = ()> + Send + 'static,
) -> BoxStream<FetchResponse> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<FetchResponse, Status>>(1);
    tokio::spawn(async move {
        drain.await;
        drop(tx);
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_is_detected_by_the_watchdog_and_reconnected() {
    let org = Org::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let subscribes = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PubSubServer::new(Silent {
                subscribes: subscribes.clone(),
            }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let dep = Deployment::new("sfsrc-watchdog", &org, "  watchdog_secs: 5\n").await;
    let mut cfg = dep.config();
    cfg.salesforce_source.as_mut().unwrap().pubsub_url = format!("http://{addr}");
    let started = tokio::time::Instant::now();
    let source = spawn_source(cfg);
    let mut second_at = None;

    // Watchdog 5 s, reconnect backoff ≤ 1 s: a second and third Subscribe within 14 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while subscribes.load(Ordering::SeqCst) < 3 {
        if second_at.is_none() && subscribes.load(Ordering::SeqCst) >= 2 {
            second_at = Some(started.elapsed());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} Subscribe calls in 30 s: the silent stream was not detected",
            subscribes.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Not a busy loop either: the first reconnect waited for the watchdog.
    let second_at = second_at.unwrap_or_else(|| started.elapsed());
    assert!(
        second_at >= Duration::from_secs(4),
        "reconnected after {second_at:?}, before the 5 s watchdog"
    );
    stop_source(source).await;
    server.abort();
}
