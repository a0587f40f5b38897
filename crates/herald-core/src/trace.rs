//! W3C trace context, and how Herald's spans join the publisher's trace.
//!
//! With OpenTelemetry on (the binary turns it on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set),
//! Herald's spans (`herald.publish`, `herald.fan_out`, `herald.claim`, `herald.attempt`) continue
//! the trace context the event was published with, and a webhook's `traceparent` names the
//! attempt's span. Off, no span is made and the context an event came with is passed on as it
//! came.
//!
//! Must not: export anything (the binary's `otel` module does), or fail: a context that does not
//! parse is no context.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ON: AtomicBool = AtomicBool::new(false);

/// Herald's spans are made and exported from now on (called once, by the binary).
pub fn turn_on() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether Herald makes spans: when false, every span here is `Span::none()`.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// A trace context as it travels with an event: `traceparent` and the vendors' `tracestate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl TraceContext {
    pub fn new(traceparent: Option<String>, tracestate: Option<String>) -> Self {
        Self { traceparent, tracestate }
    }

    fn remote(&self) -> Option<opentelemetry::Context> {
        let traceparent = self.traceparent.as_deref()?;
        let mut carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
        if let Some(state) = &self.tracestate {
            carrier.insert("tracestate".to_string(), state.clone());
        }
        let cx = TraceContextPropagator::new().extract(&carrier);
        cx.span().span_context().is_valid().then_some(cx)
    }

    /// `span` continues this context (its parent is the span it names). Nothing when the
    /// context is absent or does not parse, or when `span` is disabled.
    pub fn parent_of(&self, span: &tracing::Span) {
        if let Some(cx) = self.remote() {
            let _ = span.set_parent(cx);
        }
    }

    /// `span` links to this context (a batch span, such as a claim, links to each of its items).
    pub fn link_from(&self, span: &tracing::Span) {
        if let Some(cx) = self.remote() {
            span.add_link(cx.span().span_context().clone());
        }
    }

    /// The context to pass on from within `span`: the span's own traceparent when Herald makes
    /// spans (its trace id is the publisher's, its parent id `span`'s), else this one as it
    /// came. The tracestate goes on as it came either way: Herald adds no member of its own.
    pub fn from_within(&self, span: &tracing::Span) -> TraceContext {
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return self.clone();
        }
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        TraceContext { traceparent: carrier.remove("traceparent"), tracestate: self.tracestate.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn without_spans_a_context_passes_on_as_it_came() {
        let cx = TraceContext::new(Some(TP.into()), Some("vendor=x".into()));
        assert_eq!(cx.from_within(&tracing::Span::none()), cx);
        assert_eq!(TraceContext::default().from_within(&tracing::Span::none()), TraceContext::default());
    }

    #[test]
    fn a_context_that_does_not_parse_is_none() {
        assert!(TraceContext::new(Some(TP.into()), None).remote().is_some());
        for bad in ["", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "garbage"] {
            assert!(TraceContext::new(Some(bad.into()), None).remote().is_none(), "{bad}");
        }
    }
}
