//! Telemetry for every sfjira service: `tracing` logs, OpenTelemetry spans, W3C trace context in
//! Kafka headers, and typed internal events that log and count in one call.
//!
//! This module owns start-up ([`init`]) and shut-down ([`TelemetryGuard`]); the rest lives in
//! one file per job:
//!
//! - [`propagation`]: `traceparent`/`tracestate` in and out of Kafka record headers.
//! - [`messaging`]: the `send <topic>` / `process <topic>` spans of the messaging conventions.
//! - [`events`]: one struct per thing worth logging and counting, so metric names and labels
//!   stay the same across services.
//!
//! Spans are always built by an OpenTelemetry layer, even when nothing exports them: a service
//! that does not export must still pass the trace context it receives on to the records it
//! produces, or one Salesforce change would stop being one trace at that service. (The
//! transformer, which makes two spans per record, skips them when nothing exports and forwards
//! each record's context instead: see [`spans_exported`].) Export over
//! OTLP is switched on by the standard `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables; every other `OTEL_EXPORTER_OTLP_*` variable
//! (protocol, headers, timeout, compression) is read by `opentelemetry-otlp` itself.

pub mod events;
pub mod messaging;
pub mod propagation;

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Key, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

pub use events::{
    RecordDeadLettered, RecordsReceived, RecordsSent, RetryScheduled, StageErrorOccurred,
    TransactionAborted,
};
pub use messaging::{process_span, process_span_for_message, send_span};
pub use propagation::{
    HeaderExtractor, HeaderInjector, extract_context, forwarded_trace_headers,
    inject_current_context,
};

/// The shape of log lines. Defined with the configuration (`telemetry.log_format`), which is
/// where users choose it; re-exported here because this is where it takes effect.
pub use crate::config::LogFormat;

/// Keeps the tracer provider alive; dropping it flushes the spans still buffered and shuts the
/// exporter down. Hold it in `main` until the service has stopped, or the last spans (often the
/// ones explaining why it stopped) are lost.
#[must_use = "dropping the guard immediately shuts tracing export down"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP (an endpoint variable was set).
    pub fn exporting(&self) -> bool {
        self.exporting
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Without an exporter there is nothing to flush.
        if self.exporting
            && let Err(e) = self.provider.shutdown()
        {
            // The subscriber may already be gone at this point; stderr is still there.
            eprintln!("telemetry: flushing spans at shutdown failed: {e}");
        }
    }
}

/// Installs the global `tracing` subscriber and the W3C trace-context propagator.
///
/// - Logs: `log_format`, filtered by `log_level` (an `EnvFilter` directive such as `info` or
///   `info,sfjira_core=debug`); `RUST_LOG`, when set, replaces `log_level`.
/// - Spans: OpenTelemetry, exported over OTLP (http/protobuf unless `OTEL_EXPORTER_OTLP_PROTOCOL`
///   says otherwise) when an endpoint variable is set. `service.name` is `OTEL_SERVICE_NAME`
///   (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) when set, `service_name` otherwise.
///
/// # Errors
///
/// If `log_level` is not a valid filter, the OTLP exporter cannot be built from the `OTEL_*`
/// variables, or a global subscriber is already installed.
pub fn init(
    service_name: &str,
    log_format: LogFormat,
    log_level: &str,
) -> anyhow::Result<TelemetryGuard> {
    let log_filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .with_context(|| format!("RUST_LOG={directives:?} is not a valid log filter"))?,
        _ => EnvFilter::try_new(log_level).with_context(|| {
            format!("log level {log_level:?} is not a valid filter (e.g. `info`, `warn,sfjira_core=debug`)")
        })?,
    };

    let exporting = otlp_endpoint_configured();
    let mut builder = SdkTracerProvider::builder().with_resource(resource(service_name));
    if exporting {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .build()
            .context(
                "cannot build the OTLP span exporter from the OTEL_EXPORTER_OTLP_* variables",
            )?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer("sfjira");

    // The log filter applies to the log layer only. Spans get their own, fixed filter so that
    // `log_level: warn` does not switch off the info-level messaging spans, which would break
    // the trace at this service. The OTLP client's own spans and events are never traced:
    // exporting them would feed the exporter with its own work.
    let span_filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_targets([
            ("opentelemetry", LevelFilter::OFF),
            ("opentelemetry_sdk", LevelFilter::OFF),
            ("opentelemetry_otlp", LevelFilter::OFF),
            ("opentelemetry_http", LevelFilter::OFF),
            ("hyper", LevelFilter::OFF),
            ("hyper_util", LevelFilter::OFF),
            ("reqwest", LevelFilter::OFF),
            ("h2", LevelFilter::OFF),
        ]);
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(span_filter);

    // `Pretty` is fmt's multi-line, coloured format (as `telemetry.log_format` documents it):
    // for people at a terminal; collectors get JSON, one object per line.
    let log_layer = match log_format {
        LogFormat::Pretty => fmt::layer().pretty().boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
    .with_filter(log_filter);

    tracing_subscriber::registry()
        .with(log_layer)
        .with(otel_layer)
        .try_init()
        .context(
            "a global tracing subscriber is already installed (telemetry::init called twice?)",
        )?;

    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());

    SPANS_EXPORTED.store(exporting, Ordering::Relaxed);
    tracing::debug!(exporting, "telemetry initialised");
    Ok(TelemetryGuard {
        provider,
        exporting,
    })
}

/// Whether [`init`] set up span export in this process. A stage that records spans per record
/// only for the trace's sake asks this: with nothing exporting them, passing each consumed
/// record's context on ([`propagation::forwarded_trace_headers`]) keeps the trace whole for
/// the stages that do export, at a fraction of the cost.
pub fn spans_exported() -> bool {
    SPANS_EXPORTED.load(Ordering::Relaxed)
}

static SPANS_EXPORTED: AtomicBool = AtomicBool::new(false);

/// True when one of the standard endpoint variables is set (and not blank).
fn otlp_endpoint_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()))
}

/// The resource every span carries. The SDK's detectors read `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES`; only when neither names the service (the SDK then falls back to
/// `unknown_service:<exe>`) does our own name apply, so operators can always rename a service.
fn resource(service_name: &str) -> Resource {
    let detected = Resource::builder().build();
    let named_by_env = detected
        .get(&Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if named_by_env {
        builder.build()
    } else {
        builder.with_service_name(service_name.to_owned()).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_the_service() {
        // Only meaningful when the test environment does not name the service itself.
        if std::env::var_os("OTEL_SERVICE_NAME").is_none()
            && std::env::var_os("OTEL_RESOURCE_ATTRIBUTES").is_none()
        {
            let r = resource("transformer");
            let name = r.get(&Key::from_static_str("service.name")).unwrap();
            assert_eq!(name.as_str(), "transformer");
        }
    }

    /// The only test in this binary that installs the global subscriber (others use a
    /// thread-local one), so it cannot disturb them.
    #[test]
    fn init_propagates_without_exporting_and_refuses_a_second_install() {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;

        let guard = init("sfjira-core-test", LogFormat::Json, "error").expect("first init");
        assert_eq!(guard.exporting(), otlp_endpoint_configured());
        assert_eq!(spans_exported(), guard.exporting());
        // Spans get real ids even with no exporter, so the context still passes through.
        let span = messaging::send_span("t", None);
        assert!(span.context().span().span_context().is_valid());
        assert!(init("again", LogFormat::Pretty, "info").is_err());
    }
}
