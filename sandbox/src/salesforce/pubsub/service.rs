//! The `eventbus.v1.PubSub` service: authentication on every call, topic and schema look-ups,
//! `Subscribe` (handed to [`Subscription`]), and the methods the sandbox does not serve.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use super::PubSubSettings;
use super::auth::{AccessTokens, Session, authenticate};
use super::faults::{CorruptedEvents, StreamFaults};
use super::proto::pub_sub_server::PubSub;
use super::proto::{
    FetchRequest, FetchResponse, ManagedFetchRequest, ManagedFetchResponse, PublishRequest,
    PublishResponse, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest,
};
use super::status::{self, new_rpc_id};
use super::subscribe::Subscription;
use crate::clock::SandboxClock;
use crate::salesforce::cdc::EventBus;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

pub struct PubSubService {
    pub(crate) bus: Arc<EventBus>,
    pub(crate) tokens: Arc<dyn AccessTokens>,
    pub(crate) faults: Arc<dyn StreamFaults>,
    pub(crate) settings: PubSubSettings,
    pub(crate) clock: SandboxClock,
    /// Events the `corrupt_next_events` fault corrupted (shared by every subscription).
    pub(crate) corrupted: Arc<CorruptedEvents>,
}

impl PubSubService {
    /// Admits a call: fails it while the `service.unavailable` fault says the service is down
    /// (before authentication: a service that is down checks nothing), then checks its
    /// credentials.
    fn auth<T>(&self, req: &Request<T>, rpc_id: &str, rpc: &str) -> Result<Session, Status> {
        if self.faults.take_call_unavailable() {
            return Err(status::service_unavailable(rpc_id, rpc));
        }
        // The retention fault applies to every call that resolves replay ids.
        let retention = self
            .faults
            .replay_retention()
            .unwrap_or(self.settings.retention);
        if self.bus.retention() != retention {
            self.bus.set_retention(retention);
        }
        authenticate(self.tokens.as_ref(), req.metadata()).map_err(|failure| {
            tracing::debug!(?failure, rpc, "Pub/Sub call refused");
            status::unauthenticated(rpc_id, rpc)
        })
    }
}

#[tonic::async_trait]
impl PubSub for PubSubService {
    type SubscribeStream = BoxStream<FetchResponse>;
    type PublishStreamStream = BoxStream<PublishResponse>;
    type ManagedSubscribeStream = BoxStream<ManagedFetchResponse>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let rpc_id = new_rpc_id();
        self.auth(&request, &rpc_id, "Subscribe")?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let subscription = Subscription {
            bus: self.bus.clone(),
            faults: self.faults.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
            corrupted: self.corrupted.clone(),
            rpc_id,
            tx,
        };
        tokio::spawn(subscription.run(request.into_inner()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        let rpc_id = new_rpc_id();
        self.auth(&request, &rpc_id, "GetSchema")?;
        // Fault: the schema service is out while streams keep flowing (the live service's
        // `service.unavailable` status, reference §1.5).
        if self.faults.take_get_schema_unavailable() {
            return Err(status::service_unavailable(&rpc_id, "GetSchema"));
        }
        let id = &request.get_ref().schema_id;
        match self.bus.schema_by_id(id) {
            Some(s) => Ok(Response::new(SchemaInfo {
                schema_json: s.json.clone(),
                schema_id: s.id.clone(),
                rpc_id,
            })),
            // Status and code for an unknown schema id are unverified (reference §1.5).
            None => Err(status::error(
                Code::InvalidArgument,
                status::SCHEMA_INVALID,
                &format!("The schema ID {id} isn't valid."),
                &rpc_id,
                "GetSchema",
            )),
        }
    }

    async fn get_topic(
        &self,
        request: Request<TopicRequest>,
    ) -> Result<Response<TopicInfo>, Status> {
        let rpc_id = new_rpc_id();
        let session = self.auth(&request, &rpc_id, "GetTopic")?;
        let topic = request.into_inner().topic_name;
        match self.bus.topic_schema_id(&topic) {
            Some(schema_id) => Ok(Response::new(TopicInfo {
                topic_name: topic,
                tenant_guid: session.org_id,
                // Change event channels are read-only.
                can_publish: false,
                can_subscribe: true,
                schema_id,
                rpc_id,
            })),
            None => Err(status::topic_not_found(&topic, &rpc_id, "GetTopic")),
        }
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let rpc_id = new_rpc_id();
        self.auth(&request, &rpc_id, "Publish")?;
        let topic = request.into_inner().topic_name;
        if self.bus.topic_schema_id(&topic).is_none() {
            return Err(status::topic_not_found(&topic, &rpc_id, "Publish"));
        }
        // The sandbox has change event channels only, which nobody may publish to
        // (`can_publish` false); the real status and code for this are unverified.
        Err(status::error(
            Code::PermissionDenied,
            status::TOPIC_PERMISSION,
            &format!("You don't have permission to publish to {topic}."),
            &rpc_id,
            "Publish",
        ))
    }

    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let rpc_id = new_rpc_id();
        self.auth(&request, &rpc_id, "PublishStream")?;
        Err(status::plain(
            Code::Unimplemented,
            "PublishStream is not implemented by sfjira-sandbox.",
            &rpc_id,
            "PublishStream",
        ))
    }

    async fn managed_subscribe(
        &self,
        request: Request<Streaming<ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        let rpc_id = new_rpc_id();
        self.auth(&request, &rpc_id, "ManagedSubscribe")?;
        Err(status::plain(
            Code::Unimplemented,
            "ManagedSubscribe is not implemented by sfjira-sandbox.",
            &rpc_id,
            "ManagedSubscribe",
        ))
    }
}
