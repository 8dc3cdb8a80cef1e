//! W3C trace context (`traceparent`, `tracestate`) in Kafka record headers, so that one change
//! is one trace from the source, through the transformer, to the write in the target.
//!
//! The format is fixed by the design (every sfjira record carries W3C headers, and other
//! tools read them), so this module uses [`TraceContextPropagator`] directly rather than the
//! global propagator: propagation then works the same in tests and in tools that never call
//! [`super::init`].
//!
//! librdkafka headers are append-only (`OwnedHeaders::insert` consumes and returns the set, and
//! nothing removes a header), yet a record re-produced by a DLQ replay already carries the
//! trace headers of its first life. So injection collects the new values first and then builds
//! a new header set without the stale ones: a record never carries two `traceparent`s, which
//! consumers would resolve differently.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Collects what a propagator writes, to be merged into a header set by [`Self::apply`].
///
/// A key set to an empty value (an empty `tracestate`) still replaces that key: a new trace
/// must not inherit the old trace's vendor state.
#[derive(Debug, Default)]
pub struct HeaderInjector {
    values: Vec<(String, String)>,
}

impl HeaderInjector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the propagator wrote anything (it writes nothing for an invalid span context).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The collected headers that carry a value (an empty `tracestate` is left out, as in
    /// [`Self::apply`]).
    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `headers` with every collected key replaced: headers with those keys are dropped, the
    /// others copied in order (null values stay null), the collected non-empty ones appended
    /// (an empty `tracestate` says nothing, and the W3C spec lets it be left out).
    pub fn apply<H: Headers + ?Sized>(&self, headers: &H) -> OwnedHeaders {
        let mut out = OwnedHeaders::new_with_capacity(headers.count() + self.values.len());
        for i in 0..headers.count() {
            let Some(h) = headers.try_get(i) else { break };
            if self
                .values
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(h.key))
            {
                continue;
            }
            out = out.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
        for (key, value) in self.values() {
            out = out.insert(Header {
                key,
                value: Some(value),
            });
        }
        out
    }
}

impl Injector for HeaderInjector {
    fn set(&mut self, key: &str, value: String) {
        match self.values.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.values.push((key.to_owned(), value)),
        }
    }
}

/// Reads header values as the propagator asks for them. Values that are null or not UTF-8 are
/// treated as absent; if a key occurs more than once the last one wins (as Java's
/// `Headers.lastHeader`, which Kafka's own tooling uses).
pub struct HeaderExtractor<'a, H: ?Sized>(pub &'a H);

impl<H: Headers + ?Sized> Extractor for HeaderExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        (0..self.0.count())
            .rev()
            .filter_map(|i| self.0.try_get(i))
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        (0..self.0.count())
            .filter_map(|i| self.0.try_get(i))
            .map(|h| h.key)
            .collect()
    }
}

/// `headers` carrying the trace context of the current `tracing` span (call it inside the
/// `send <topic>` span). Existing `traceparent`/`tracestate` headers are replaced. Without a
/// valid current span the headers are returned unchanged, so a replayed record keeps the trace
/// it came with.
pub fn inject_current_context(headers: OwnedHeaders) -> OwnedHeaders {
    let cx = tracing::Span::current().context();
    let mut injector = HeaderInjector::new();
    TraceContextPropagator::new().inject_context(&cx, &mut injector);
    if injector.is_empty() {
        headers
    } else {
        injector.apply(&headers)
    }
}

/// A copy of `headers` (owned or borrowed from a consumed record) carrying `cx`, with existing
/// trace headers replaced. For re-producing a consumed record under a new span.
pub fn inject_context<H: Headers + ?Sized>(cx: &Context, headers: &H) -> OwnedHeaders {
    let mut injector = HeaderInjector::new();
    TraceContextPropagator::new().inject_context(cx, &mut injector);
    injector.apply(headers)
}

/// The trace headers a stage that records no spans of its own (nothing exports them) passes
/// from a consumed record to what it produces: the record's own context, so the next stage's
/// spans join the trace under the span that produced the record — not under spans of this stage
/// that no backend ever receives. A record without a valid context gets a new sampled root, as a
/// span of this stage would have started one, so its outputs still make one trace.
pub fn forwarded_trace_headers<H: Headers + ?Sized>(headers: Option<&H>) -> HeaderInjector {
    let consumed = headers.map(extract_context).unwrap_or_default();
    let cx = if consumed.span().span_context().is_valid() {
        consumed
    } else {
        let ids = RandomIdGenerator::default();
        Context::new().with_remote_span_context(SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ))
    };
    let mut injector = HeaderInjector::new();
    TraceContextPropagator::new().inject_context(&cx, &mut injector);
    injector
}

/// The trace context a record's headers carry, to be the parent of its `process <topic>` span.
/// An empty context when the record has no (valid) `traceparent`.
pub fn extract_context<H: Headers + ?Sized>(headers: &H) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt as _;

    fn header_values(headers: &OwnedHeaders, key: &str) -> Vec<String> {
        headers
            .iter()
            .filter(|h| h.key == key)
            .map(|h| String::from_utf8(h.value.unwrap_or_default().to_vec()).unwrap())
            .collect()
    }

    /// Runs `f` under a subscriber that builds OpenTelemetry spans into memory. The provider is
    /// returned with the exporter: dropping it shuts the exporter down, which clears it.
    fn with_tracing<T>(f: impl FnOnce() -> T) -> (T, (InMemorySpanExporter, SdkTracerProvider)) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let out = tracing::subscriber::with_default(subscriber, f);
        (out, (exporter, provider))
    }

    #[test]
    fn inject_then_extract_keeps_the_trace() {
        let ((headers, trace_id, span_id), (exporter, _provider)) = with_tracing(|| {
            let span = tracing::info_span!("send");
            let _entered = span.enter();
            let sc = span.context().span().span_context().clone();
            let base = OwnedHeaders::new().insert(Header {
                key: "sfjira.source",
                value: Some("sf"),
            });
            (inject_current_context(base), sc.trace_id(), sc.span_id())
        });
        assert_eq!(header_values(&headers, "sfjira.source"), ["sf"]);
        let [traceparent] = header_values(&headers, "traceparent").try_into().unwrap();
        assert_eq!(traceparent, format!("00-{trace_id}-{span_id}-01"));

        let cx = extract_context(&headers);
        let remote = cx.span().span_context().clone();
        assert!(remote.is_remote());
        assert_eq!((remote.trace_id(), remote.span_id()), (trace_id, span_id));
        assert_eq!(exporter.get_finished_spans().unwrap().len(), 1);
    }

    #[test]
    fn existing_trace_headers_are_replaced_not_duplicated() {
        let stale = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let base = OwnedHeaders::new()
            .insert(Header {
                key: "traceparent",
                value: Some(stale),
            })
            .insert(Header {
                key: "tracestate",
                value: Some("old=1"),
            })
            .insert(Header {
                key: "__connect.errors.topic",
                value: Some("jira.issues"),
            })
            .insert(Header::<&str> {
                key: "nullable",
                value: None,
            });
        let (headers, _) = with_tracing(|| {
            let span = tracing::info_span!("replay");
            let _entered = span.enter();
            inject_current_context(base)
        });
        let parents = header_values(&headers, "traceparent");
        assert_eq!(parents.len(), 1);
        assert_ne!(parents[0], stale);
        // The stale tracestate belonged to the old trace; the new one has none.
        assert!(header_values(&headers, "tracestate").is_empty());
        assert_eq!(
            header_values(&headers, "__connect.errors.topic"),
            ["jira.issues"]
        );
        let nullable = headers.iter().find(|h| h.key == "nullable").unwrap();
        assert!(nullable.value.is_none());
    }

    #[test]
    fn no_current_span_leaves_headers_alone() {
        let stale = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let base = OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(stale),
        });
        let headers = inject_current_context(base);
        assert_eq!(header_values(&headers, "traceparent"), [stale]);
    }

    #[test]
    fn extractor_takes_the_last_utf8_value() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "k",
                value: Some("first"),
            })
            .insert(Header {
                key: "k",
                value: Some("second"),
            })
            .insert(Header {
                key: "bin",
                value: Some(&[0xffu8, 0xfe][..]),
            });
        let ex = HeaderExtractor(&headers);
        assert_eq!(ex.get("k"), Some("second"));
        assert_eq!(ex.get("bin"), None);
        assert_eq!(ex.get("missing"), None);
        assert_eq!(ex.keys(), ["k", "k", "bin"]);
        assert!(!extract_context(&headers).span().span_context().is_valid());
    }

    fn forwarded(headers: Option<&OwnedHeaders>) -> Vec<(String, String)> {
        forwarded_trace_headers(headers)
            .values()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn a_consumed_context_is_forwarded_as_it_came() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "traceparent",
                value: Some(parent),
            })
            .insert(Header {
                key: "tracestate",
                value: Some("vendor=abc"),
            });
        assert_eq!(
            forwarded(Some(&headers)),
            [
                ("traceparent".to_owned(), parent.to_owned()),
                ("tracestate".to_owned(), "vendor=abc".to_owned())
            ]
        );
    }

    #[test]
    fn a_record_without_a_valid_context_starts_a_new_sampled_trace() {
        let garbage = OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some("00-not-a-context-01"),
        });
        let mut trace_ids = Vec::new();
        for headers in [None, Some(&garbage), Some(&OwnedHeaders::new())] {
            let out = forwarded(headers);
            assert_eq!(out.len(), 1, "only a traceparent: {out:?}");
            let (key, value) = &out[0];
            assert_eq!(key, "traceparent");
            let injected = OwnedHeaders::new().insert(Header {
                key: "traceparent",
                value: Some(value),
            });
            let cx = extract_context(&injected);
            let span = cx.span();
            let sc = span.span_context();
            assert!(sc.is_valid() && sc.is_sampled(), "{value}");
            trace_ids.push(sc.trace_id());
        }
        trace_ids.dedup();
        assert_eq!(trace_ids.len(), 3, "each record its own trace");
    }
}
