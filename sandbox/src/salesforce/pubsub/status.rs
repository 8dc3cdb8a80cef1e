//! Pub/Sub API errors as the real service sends them (reference §1.5): a gRPC status whose
//! message ends `rpcId: <uuid>`, with metadata `error-code`
//! (`sfdc.platform.eventbus.grpc.<…>`), `rpc-id` and `type` (the RPC), as captured from the
//! live service (pozil/pub-sub-api-node-client#52) and documented at
//! https://developer.salesforce.com/docs/platform/pub-sub-api/guide/handling-errors.html.

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

pub const PREFIX: &str = "sfdc.platform.eventbus.grpc.";

pub const AUTH_ERROR: &str = "service.auth.error";
pub const SERVICE_UNAVAILABLE: &str = "service.unavailable";
pub const TOPIC_NOT_FOUND: &str = "topic.not.found";
pub const TOPIC_EMPTY: &str = "topic.validation.empty";
pub const TOPIC_PERMISSION: &str = "topic.meta.permission";
pub const SCHEMA_INVALID: &str = "schema.validation.failed";
pub const REPLAY_CORRUPTED: &str = "subscription.fetch.replayid.corrupted";
pub const REPLAY_VALIDATION: &str = "subscription.fetch.replayid.validation.failed";
pub const REQUESTED_INVALID: &str = "subscription.fetch.requested.events.invalid";
pub const TOPIC_MISMATCH: &str = "subscription.fetch.topic.mismatch";

/// A status with the real service's metadata. `code` is the short form (`topic.not.found`).
pub fn error(status: Code, code: &str, message: &str, rpc_id: &str, rpc: &str) -> Status {
    let mut md = MetadataMap::new();
    if let Ok(v) = MetadataValue::try_from(format!("{PREFIX}{code}")) {
        md.insert("error-code", v);
    }
    insert_common(&mut md, rpc_id, rpc);
    Status::with_metadata(status, format!("{message} rpcId: {rpc_id}"), md)
}

/// A status without an `error-code` (transport-level failures, unimplemented methods).
pub fn plain(status: Code, message: &str, rpc_id: &str, rpc: &str) -> Status {
    let mut md = MetadataMap::new();
    insert_common(&mut md, rpc_id, rpc);
    Status::with_metadata(status, format!("{message} rpcId: {rpc_id}"), md)
}

fn insert_common(md: &mut MetadataMap, rpc_id: &str, rpc: &str) {
    if let Ok(v) = MetadataValue::try_from(rpc_id) {
        md.insert("rpc-id", v);
    }
    if let Ok(v) = MetadataValue::try_from(rpc) {
        md.insert("type", v);
    }
}

/// The auth failure every RPC answers for missing, invalid or expired credentials.
pub fn unauthenticated(rpc_id: &str, rpc: &str) -> Status {
    error(
        Code::Unauthenticated,
        AUTH_ERROR,
        "An authentication exception occurred. Provide valid authentication via metadata headers.",
        rpc_id,
        rpc,
    )
}

/// The service is down. Status `INTERNAL` (13), message and metadata exactly as captured from
/// the live service on a Subscribe stream (pozil/pub-sub-api-node-client#52, reference §1.5):
/// `{"code":13,"details":"The service is unavailable. Try again later. rpcId: …",
/// "metadata":{"error-code":["sfdc.platform.eventbus.grpc.service.unavailable"],…}}`. The
/// official Java sample waits 5 s and resubscribes on it (`genericpubsub/Subscribe.java`).
pub fn service_unavailable(rpc_id: &str, rpc: &str) -> Status {
    error(
        Code::Internal,
        SERVICE_UNAVAILABLE,
        "The service is unavailable. Try again later.",
        rpc_id,
        rpc,
    )
}

pub fn topic_not_found(topic: &str, rpc_id: &str, rpc: &str) -> Status {
    error(
        Code::NotFound,
        TOPIC_NOT_FOUND,
        &format!("Topic {topic} not found. Check the topic name and that you have access to it."),
        rpc_id,
        rpc,
    )
}

pub fn new_rpc_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
