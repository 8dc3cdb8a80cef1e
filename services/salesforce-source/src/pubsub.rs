//! The Pub/Sub API client (reference §1): one gRPC channel (TLS for `https://` endpoints,
//! plain HTTP/2 for the sandbox's `http://`), the three metadata entries on every call
//! (`accesstoken`, `instanceurl`, `tenantid`), `GetSchema`, and [`Subscription`], one
//! `Subscribe` call with its request side, so the runtime can ask for more events only as it
//! hands events to Kafka.
//!
//! Errors keep Salesforce's `error-code` trailer (`sfdc.platform.eventbus.grpc.…`) so the
//! runtime can tell an expired replay id from an expired token from a broken stream.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status, Streaming};

use crate::auth::Session;
use crate::proto::pub_sub_client::PubSubClient;
use crate::proto::{FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, TopicRequest};

/// What went wrong on a call, sorted by what the runtime does about it.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// The token was refused: log in again, then reconnect.
    #[error("Pub/Sub refused the session: {0}")]
    Unauthenticated(String),
    /// The stored replay id is outside retention or unknown (org moved).
    #[error("Pub/Sub rejected the replay id: {0}")]
    InvalidReplay(String),
    /// Anything else: reconnect with backoff.
    #[error("Pub/Sub call failed: {0}")]
    Other(String),
}

impl From<Status> for PubSubError {
    fn from(s: Status) -> Self {
        let code = s
            .metadata()
            .get("error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = if code.is_empty() {
            format!("{:?}: {}", s.code(), s.message())
        } else {
            format!("{:?} {code}: {}", s.code(), s.message())
        };
        if s.code() == Code::Unauthenticated || code.contains("service.auth") {
            PubSubError::Unauthenticated(text)
        } else if code.contains("replayid.corrupted") || code.contains("replayid.validation") {
            PubSubError::InvalidReplay(text)
        } else {
            PubSubError::Other(text)
        }
    }
}

/// Opens the gRPC channel to `url`.
pub async fn connect(url: &str) -> Result<Channel, PubSubError> {
    connect_with_ca(url, None).await
}

/// Opens the gRPC channel to `url`; for `https://`, trusting `ca_pem` (PEM certificates) as
/// well as the system's store.
pub async fn connect_with_ca(url: &str, ca_pem: Option<&[u8]>) -> Result<Channel, PubSubError> {
    let other =
        |e: tonic::transport::Error| PubSubError::Other(format!("connecting to {url}: {e}"));
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(other)?
        .connect_timeout(std::time::Duration::from_secs(15))
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(pem) = ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls).map_err(other)?;
    }
    endpoint.connect().await.map_err(other)
}

fn with_auth<T>(message: T, session: &Session) -> Result<Request<T>, PubSubError> {
    let mut req = Request::new(message);
    let md = req.metadata_mut();
    for (key, value) in [
        ("accesstoken", &session.access_token),
        ("instanceurl", &session.instance_url),
        ("tenantid", &session.tenant_id),
    ] {
        let v = MetadataValue::try_from(value.as_str())
            .map_err(|_| PubSubError::Other(format!("{key} is not valid gRPC metadata")))?;
        md.insert(key, v);
    }
    Ok(req)
}

/// `GetSchema`: the schema JSON of `schema_id`.
pub async fn get_schema(
    channel: &Channel,
    session: &Session,
    schema_id: &str,
) -> Result<String, PubSubError> {
    let mut client = PubSubClient::new(channel.clone());
    let req = with_auth(
        SchemaRequest {
            schema_id: schema_id.to_string(),
        },
        session,
    )?;
    Ok(client.get_schema(req).await?.into_inner().schema_json)
}

/// `GetTopic`: the schema id of `topic` (a channel such as `/data/AccountChangeEvent`).
pub async fn topic_schema_id(
    channel: &Channel,
    session: &Session,
    topic: &str,
) -> Result<String, PubSubError> {
    let mut client = PubSubClient::new(channel.clone());
    let req = with_auth(
        TopicRequest {
            topic_name: topic.to_string(),
        },
        session,
    )?;
    Ok(client.get_topic(req).await?.into_inner().schema_id)
}

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    Latest,
    Earliest,
    /// After this replay id.
    After(Vec<u8>),
}

/// One open `Subscribe` call.
pub struct Subscription {
    requests: mpsc::Sender<FetchRequest>,
    responses: Streaming<FetchResponse>,
    topic: String,
}

impl Subscription {
    /// Subscribes to `topic` from `start`, asking for `initial` events.
    pub async fn open(
        channel: &Channel,
        session: &Session,
        topic: &str,
        start: &StartAt,
        initial: i32,
    ) -> Result<Subscription, PubSubError> {
        let (tx, rx) = mpsc::channel(16);
        let (preset, replay_id) = match start {
            StartAt::Latest => (ReplayPreset::Latest, Vec::new()),
            StartAt::Earliest => (ReplayPreset::Earliest, Vec::new()),
            StartAt::After(id) => (ReplayPreset::Custom, id.clone()),
        };
        tx.send(FetchRequest {
            topic_name: topic.to_string(),
            replay_preset: preset as i32,
            replay_id,
            num_requested: initial,
            auth_refresh: String::new(),
        })
        .await
        .map_err(|_| PubSubError::Other("request channel closed".into()))?;
        let mut client = PubSubClient::new(channel.clone());
        let req = with_auth(ReceiverStream::new(rx), session)?;
        let responses = client.subscribe(req).await?.into_inner();
        Ok(Subscription {
            requests: tx,
            responses,
            topic: topic.to_string(),
        })
    }

    /// The next response; `Ok(None)` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<FetchResponse>, PubSubError> {
        Ok(self.responses.message().await?)
    }

    /// Asks for `n` more events (added to what is pending; the server caps it at 100).
    pub async fn request(&self, n: i32) -> Result<(), PubSubError> {
        if n <= 0 {
            return Ok(());
        }
        self.requests
            .send(FetchRequest {
                topic_name: self.topic.clone(),
                num_requested: n,
                ..FetchRequest::default()
            })
            .await
            .map_err(|_| PubSubError::Other("the Subscribe stream is closed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_sorted_by_error_code() {
        let with_code = |code: Code, ec: &str| {
            let mut md = tonic::metadata::MetadataMap::new();
            md.insert("error-code", ec.parse().unwrap());
            Status::with_metadata(code, "x", md)
        };
        assert!(matches!(
            PubSubError::from(with_code(
                Code::InvalidArgument,
                "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
            )),
            PubSubError::InvalidReplay(_)
        ));
        assert!(matches!(
            PubSubError::from(with_code(
                Code::Unauthenticated,
                "sfdc.platform.eventbus.grpc.service.auth.error"
            )),
            PubSubError::Unauthenticated(_)
        ));
        assert!(matches!(
            PubSubError::from(Status::unavailable("RST_STREAM closed stream")),
            PubSubError::Other(_)
        ));
    }
}
