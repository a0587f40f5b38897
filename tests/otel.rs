//! OpenTelemetry: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, Herald's spans reach a real OTLP/HTTP
//! receiver on 127.0.0.1 in the publisher's trace (publish, fan-out, each attempt; the claim
//! linked to it), and each webhook's `traceparent` names Herald's attempt span, with the
//! publisher's `tracestate` passed on. Off (every other test), the context passes on as it came.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use herald_testkit::otlp::{self, Span};
use herald_testkit::{eventually, Behaviour, Receiver};
use serde_json::json;
use support::{fast_with, herald_all};

const WAIT: Duration = Duration::from_secs(30);

const HTTP_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HTTP_PARENT: &str = "00f067aa0ba902b7";
const SQL_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const SQL_PARENT: &str = "b7ad6b7169203331";

fn one<'a>(spans: &'a [Span], what: &str, pick: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| pick(s)).collect();
    assert_eq!(found.len(), 1, "one {what}, got {found:#?}");
    found[0]
}

#[tokio::test]
async fn spans_follow_an_event_from_the_publisher_to_the_receiver() {
    let collector = otlp::start().await;
    let (db, _herald, api) = herald_all(&fast_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base.as_str()),
        ("OTEL_SERVICE_NAME", "herald-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]))
    .await;
    let rx = Receiver::start().await;
    rx.set("/hook", Behaviour::Status(500, None));
    let (endpoint, _) = api.endpoint(json!({"url": rx.url("/hook")})).await;

    // Over HTTP, with the publisher's context; the first attempt fails, the retry succeeds.
    let r = api
        .http
        .post(format!("{}/v1/events", api.base))
        .bearer_auth(&api.token)
        .header("traceparent", format!("00-{HTTP_TRACE}-{HTTP_PARENT}-01"))
        .header("tracestate", "vendor=abc,other=1")
        .json(&json!({"id": "evt_http", "type": "run.finished", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    rx.wait_for("/hook", 1, WAIT).await;
    rx.set("/hook", Behaviour::Ok);
    api.wait_delivery("evt_http", Some(&endpoint), "delivered", WAIT).await;
    // In SQL, in the caller's transaction: fanned out by the outbox-poller.
    db.pool
        .get()
        .await
        .unwrap()
        .execute(
            &format!(
                "SELECT herald.publish('acme', 'run.finished', '{{\"n\": 2}}'::jsonb, id => 'evt_sql', \
                 traceparent => '00-{SQL_TRACE}-{SQL_PARENT}-01')"
            ),
            &[],
        )
        .await
        .unwrap();
    let got = rx.wait_for("/hook", 3, WAIT).await;

    let spans = eventually("Herald's spans at the OTLP receiver", WAIT, || async {
        let spans = otlp::spans(&collector);
        let attempts = spans.iter().filter(|s| s.name == "herald.attempt").count();
        let fan_outs = spans.iter().filter(|s| s.name == "herald.fan_out").count();
        (attempts >= 3 && fan_outs >= 2).then_some(spans)
    })
    .await;
    assert!(spans.iter().all(|s| s.service == "herald-test"), "{spans:#?}");

    // HTTP: publish continues the publisher's span; fan-out and attempts continue publish.
    let publish = one(&spans, "publish span", |s| s.name == "herald.publish");
    assert_eq!((publish.trace_id.as_str(), publish.parent_span_id.as_str()), (HTTP_TRACE, HTTP_PARENT));
    assert_eq!(publish.kind, 2, "a server span");
    assert_eq!(publish.attr("herald.event_id"), Some("evt_http"));
    let fan_out = one(&spans, "HTTP fan-out", |s| s.name == "herald.fan_out" && s.trace_id == HTTP_TRACE);
    assert_eq!(fan_out.parent_span_id, publish.span_id);
    assert_eq!(fan_out.attr("herald.deliveries"), Some("1"));
    let mut http_attempts: Vec<&Span> =
        spans.iter().filter(|s| s.name == "herald.attempt" && s.trace_id == HTTP_TRACE).collect();
    http_attempts.sort_by_key(|s| s.attr("herald.attempt").map(str::to_string));
    assert_eq!(http_attempts.len(), 2, "{http_attempts:#?}");
    for (a, status) in http_attempts.iter().zip(["500", "200"]) {
        assert_eq!(a.parent_span_id, publish.span_id);
        assert_eq!(a.kind, 3, "a client span");
        assert_eq!(a.attr("http.response.status_code"), Some(status));
        assert_eq!(a.attr("server.address"), Some("127.0.0.1"));
    }

    // SQL: the poller's fan-out and the attempt continue the caller's context.
    let sql_fan_out = one(&spans, "SQL fan-out", |s| s.name == "herald.fan_out" && s.trace_id == SQL_TRACE);
    assert_eq!(sql_fan_out.parent_span_id, SQL_PARENT);
    let sql_attempt = one(&spans, "SQL attempt", |s| s.name == "herald.attempt" && s.trace_id == SQL_TRACE);
    assert_eq!(sql_attempt.parent_span_id, SQL_PARENT);

    // Each claim is a span of its own, linked to the trace of each delivery it leased.
    let linked: HashSet<(String, String)> =
        spans.iter().filter(|s| s.name == "herald.claim").flat_map(|s| s.links.iter().cloned()).collect();
    assert!(linked.contains(&(HTTP_TRACE.to_string(), publish.span_id.clone())), "{linked:?}");
    assert!(linked.contains(&(SQL_TRACE.to_string(), SQL_PARENT.to_string())), "{linked:?}");

    // The receiver's traceparent: the publisher's trace, Herald's attempt span as parent.
    let attempt_ids: HashSet<&str> =
        spans.iter().filter(|s| s.name == "herald.attempt").map(|s| s.span_id.as_str()).collect();
    for r in &got {
        let tp = r.header("traceparent").expect("a traceparent");
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert!(attempt_ids.contains(parts[2]), "{tp} names an attempt span of {attempt_ids:?}");
        if parts[1] == HTTP_TRACE {
            assert_eq!(r.header("tracestate"), Some("vendor=abc,other=1"));
        } else {
            assert_eq!(parts[1], SQL_TRACE);
            assert_eq!(r.header("tracestate"), None);
        }
    }
    let http_parents: HashSet<&str> =
        got.iter().filter_map(|r| r.header("traceparent")).filter(|t| t.contains(HTTP_TRACE)).collect();
    assert_eq!(http_parents.len(), 2, "each attempt is its own parent: {http_parents:?}");
}
