//! One trace across Kafka: a record produced inside a `send <topic>` span, with its context in
//! the `traceparent` header, consumed from the real broker, opens a `process <topic>` span that
//! is a child of the send span (same trace id, parent = the send span).

use std::time::Duration;

use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sfjira_core::telemetry::{extract_context, inject_current_context, process_span, send_span};
use sfjira_tests::{bootstrap, fresh_topic, unique};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[tokio::test]
async fn trace_context_crosses_kafka() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("trace_propagation")));
    // Thread-local default: #[tokio::test] runs everything on this one thread.
    let _default = tracing::subscriber::set_default(subscriber);

    let topic = fresh_topic("trace-propagation", 1).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");

    // Produce inside the send span, its context injected into the headers.
    let send = send_span(&topic, Some("001xx000003DGb2AAG"));
    let sent_trace_id = send.context().span().span_context().trace_id();
    async {
        let headers = inject_current_context(OwnedHeaders::new().insert(Header {
            key: "sfjira.source",
            value: Some("salesforce"),
        }));
        producer
            .send(
                FutureRecord::to(&topic)
                    .key("001xx000003DGb2AAG")
                    .payload("change")
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
    .instrument(send.clone())
    .await;
    drop(send);

    // Consume with a plain consumer in its own group.
    let group = unique("trace-propagation");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("no record within 30 s")
        .expect("consume");

    let headers = message.headers().expect("record has headers");
    let parent = extract_context(headers);
    assert_eq!(parent.span().span_context().trace_id(), sent_trace_id);
    let key = message.key().map(|k| std::str::from_utf8(k).unwrap());
    let process = process_span(
        message.topic(),
        message.partition(),
        message.offset(),
        key,
        &group,
        parent,
    );
    process.in_scope(|| tracing::info!("processing"));
    let offset = message.offset();
    drop(process);

    let spans = exporter.get_finished_spans().expect("finished spans");
    let send = spans
        .iter()
        .find(|s| s.name == format!("send {topic}"))
        .expect("send span exported");
    let process = spans
        .iter()
        .find(|s| s.name == format!("process {topic}"))
        .expect("process span exported");

    assert_eq!(send.span_kind, SpanKind::Producer);
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(
        process.span_context.trace_id(),
        send.span_context.trace_id()
    );
    assert_eq!(process.parent_span_id, send.span_context.span_id());
    assert!(
        process.parent_span_is_remote,
        "the parent came from Kafka headers"
    );
    assert_eq!(
        attr(process, "messaging.system"),
        Some(&Value::from("kafka"))
    );
    assert_eq!(
        attr(process, "messaging.destination.name"),
        Some(&Value::from(topic.clone()))
    );
    assert_eq!(
        attr(process, "messaging.kafka.offset"),
        Some(&Value::I64(offset))
    );
    assert_eq!(
        attr(process, "messaging.consumer.group.name"),
        Some(&Value::from(group.clone()))
    );
    assert_eq!(
        attr(process, "messaging.operation.name"),
        Some(&Value::from("process"))
    );
    assert_eq!(
        attr(send, "messaging.destination.name"),
        Some(&Value::from(topic.clone()))
    );
    assert_eq!(
        attr(send, "messaging.operation.name"),
        Some(&Value::from("send"))
    );
}
