//! What an OTLP/HTTP exporter sent to a [`Receiver`] at `/v1/traces` (protobuf), decoded: a
//! real OTLP receiver on 127.0.0.1, small enough to read.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

use crate::{Behaviour, Receiver};

/// One span as the receiver got it; ids in lower-case hex, as a traceparent writes them.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    /// 1 internal, 2 server, 3 client (OTLP's SpanKind).
    pub kind: i32,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
    pub attributes: HashMap<String, String>,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// A receiver that answers OTLP exports as a collector does (200, empty body).
pub async fn start() -> Receiver {
    let rx = Receiver::start().await;
    rx.set("/v1/traces", Behaviour::Raw(200, b""));
    rx
}

/// Every span sent to `rx` so far.
pub fn spans(rx: &Receiver) -> Vec<Span> {
    let mut out = Vec::new();
    for r in rx.requests("/v1/traces") {
        let request = ExportTraceServiceRequest::decode(r.body.as_ref()).expect("an OTLP protobuf trace export");
        for resource in request.resource_spans {
            let attrs = resource.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
            let service = attrs.get("service.name").cloned().unwrap_or_default();
            for scope in resource.scope_spans {
                for s in scope.spans {
                    out.push(Span {
                        service: service.clone(),
                        name: s.name,
                        kind: s.kind,
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        links: s.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect(),
                        attributes: attributes(&s.attributes),
                    });
                }
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}
