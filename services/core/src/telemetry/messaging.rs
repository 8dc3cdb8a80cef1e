//! Spans for producing and processing Kafka records, named and attributed after the
//! OpenTelemetry messaging semantic conventions for Kafka, so that any tracing backend shows
//! them as messaging spans (`send <topic>`, `process <topic>`) and can join them into one trace.
//!
//! Names carry the topic, which `tracing` span names (static strings) cannot: the dynamic name
//! goes in `otel.name`, and the kind in `otel.kind`, both of which `tracing-opentelemetry`
//! turns into the OpenTelemetry span name and kind.
//!
//! The spans are at INFO level, which `super::init` always passes to the OpenTelemetry layer:
//! a disabled span would break the trace at this stage.

use opentelemetry::Context;
use rdkafka::message::Message;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::{OpenTelemetrySpanExt as _, SetParentError};

use super::propagation::extract_context;

/// The span around producing one record to `topic` (kind PRODUCER). Inject its context into the
/// record's headers from inside it (`propagation::inject_current_context`).
pub fn send_span(topic: &str, key: Option<&str>) -> Span {
    tracing::info_span!(
        "send",
        otel.name = format!("send {topic}"),
        otel.kind = "producer",
        "messaging.system" = "kafka",
        "messaging.operation.name" = "send",
        "messaging.operation.type" = "send",
        "messaging.destination.name" = topic,
        "messaging.kafka.message.key" = key,
    )
}

/// The span around processing one consumed record (kind CONSUMER), a child of `parent`: the
/// context extracted from the record's headers (`propagation::extract_context`), so the trace
/// continues from the span that produced the record.
pub fn process_span(
    topic: &str,
    partition: i32,
    offset: i64,
    key: Option<&str>,
    consumer_group: &str,
    parent: Context,
) -> Span {
    let span = tracing::info_span!(
        "process",
        otel.name = format!("process {topic}"),
        otel.kind = "consumer",
        "messaging.system" = "kafka",
        "messaging.operation.name" = "process",
        "messaging.operation.type" = "process",
        "messaging.destination.name" = topic,
        "messaging.destination.partition.id" = partition.to_string(),
        "messaging.kafka.offset" = offset,
        "messaging.consumer.group.name" = consumer_group,
        "messaging.kafka.message.key" = key,
        "messaging.kafka.message.tombstone" = Empty,
        "messaging.message.body.size" = Empty,
    );
    adopt_parent(&span, parent);
    span
}

/// [`process_span`] for a consumed record: topic, partition, offset, key (when UTF-8), body
/// size, tombstone flag and parent context all taken from the record itself.
pub fn process_span_for_message<M: Message>(message: &M, consumer_group: &str) -> Span {
    let parent = message.headers().map(extract_context).unwrap_or_default();
    let key = message.key().and_then(|k| std::str::from_utf8(k).ok());
    let span = process_span(
        message.topic(),
        message.partition(),
        message.offset(),
        key,
        consumer_group,
        parent,
    );
    match message.payload() {
        Some(body) => span.record("messaging.message.body.size", body.len() as u64),
        None => span.record("messaging.kafka.message.tombstone", true),
    };
    span
}

/// Makes `parent` the span's parent. This can only fail in ways that mean "nobody is tracing"
/// (no OpenTelemetry layer, or the span filtered out), which must not stop processing.
fn adopt_parent(span: &Span, parent: Context) {
    match span.set_parent(parent) {
        Ok(()) | Err(SetParentError::LayerNotFound | SetParentError::SpanDisabled) => {}
        // Cannot happen for a span created just above; if it ever does, the span is still
        // useful, only detached from its producer.
        Err(e @ SetParentError::AlreadyStarted) => {
            tracing::debug!(error = %e, "process span started before its parent was set");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanKind, TracerProvider as _};
    use opentelemetry::{KeyValue, Value};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt as _;

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        attrs
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    #[test]
    fn spans_follow_the_messaging_conventions() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let send = send_span("jira.issues", Some("10001"));
            let cx = send.context();
            drop(send);
            drop(process_span("jira.issues", 3, 42, None, "transformer", cx));
        });

        let spans = exporter.get_finished_spans().unwrap();
        let send = spans.iter().find(|s| s.name == "send jira.issues").unwrap();
        let process = spans
            .iter()
            .find(|s| s.name == "process jira.issues")
            .unwrap();
        assert_eq!(send.span_kind, SpanKind::Producer);
        assert_eq!(process.span_kind, SpanKind::Consumer);
        assert_eq!(process.parent_span_id, send.span_context.span_id());
        assert_eq!(
            attr(&send.attributes, "messaging.kafka.message.key"),
            Some(&"10001".into())
        );
        assert_eq!(
            attr(&process.attributes, "messaging.system"),
            Some(&"kafka".into())
        );
        assert_eq!(
            attr(&process.attributes, "messaging.operation.type"),
            Some(&"process".into())
        );
        assert_eq!(
            attr(&process.attributes, "messaging.destination.partition.id"),
            Some(&"3".into())
        );
        assert_eq!(
            attr(&process.attributes, "messaging.kafka.offset"),
            Some(&Value::I64(42))
        );
        assert_eq!(
            attr(&process.attributes, "messaging.consumer.group.name"),
            Some(&"transformer".into())
        );
        assert_eq!(
            attr(&process.attributes, "messaging.kafka.message.key"),
            None
        );
    }
}
