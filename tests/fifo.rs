//! Ordered delivery: a FIFO endpoint gets its events one at a time in Herald's publish order,
//! a failing head holding back the ones behind it until it goes through, with two publishers
//! and two delivery-workers; an unordered endpoint beside it gets everything as usual.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use herald_testkit::{eventually, Receiver, TestDb};
use serde_json::{json, Value};
use support::{fast_with, Api, Herald};

const EVENTS: usize = 1_000;
const WAIT: Duration = Duration::from_secs(180);

/// A receiver that fails the first attempt of every 37th event, and keeps the ids it answered
/// 200 in the order it answered them, and the most requests it had at once.
#[derive(Default)]
struct Ordered {
    delivered: Vec<String>,
    failed_once: HashSet<String>,
    now: usize,
    most: usize,
}

async fn receive(State(s): State<Arc<Mutex<Ordered>>>, body: Bytes) -> StatusCode {
    let id = serde_json::from_slice::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
    {
        let mut o = s.lock().unwrap();
        o.now += 1;
        o.most = o.most.max(o.now);
    }
    // Long enough that a second request, were one sent, would overlap this one.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut o = s.lock().unwrap();
    o.now -= 1;
    let n: usize = id.rsplit('-').next().unwrap().parse().unwrap();
    if n.is_multiple_of(37) && o.failed_once.insert(id.clone()) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    o.delivered.push(id);
    StatusCode::OK
}

#[tokio::test]
async fn a_fifo_endpoint_gets_every_event_once_in_publish_order() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let env = fast_with(&[("HERALD_FIFO_SETTLE", "200ms")]);
    let api_proc = Herald::start(&db, "producer", &env).await;
    let _poller = Herald::start(&db, "poller", &env).await;
    let _w1 = Herald::start(&db, "worker", &env).await;
    let _w2 = Herald::start(&db, "worker", &env).await;
    let api = Api::new(&api_proc.base, &token);

    let state = Arc::new(Mutex::new(Ordered::default()));
    let app = axum::Router::new().fallback(receive).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fifo_url = format!("http://{}/fifo", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let open = Receiver::start().await;

    let (s, ep) = api.post("/v1/endpoints", json!({"url": fifo_url, "ordering": "fifo"})).await;
    assert_eq!((s, ep["ordering"].as_str()), (201, Some("fifo")), "{ep}");
    api.endpoint(json!({"url": open.url("/open")})).await;

    // Two publishers at once, each in its own order.
    let publishers: Vec<_> = (0..2)
        .map(|p| {
            let api = api.clone();
            tokio::spawn(async move {
                for i in 0..EVENTS / 2 {
                    api.publish(json!({"id": format!("p{p}-{:04}", i * 2 + p), "type": "t", "data": {"i": i}})).await;
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    eventually("every event at the FIFO endpoint", WAIT, || async {
        (state.lock().unwrap().delivered.len() >= EVENTS).then_some(())
    })
    .await;
    open.wait_for("/open", EVENTS, WAIT).await;

    // Herald's order: its time-ordered key.
    let want: Vec<String> = db
        .client()
        .await
        .query("SELECT event_id FROM herald.events WHERE tenant_id = 'acme' ORDER BY seq, event_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let o = state.lock().unwrap();
    assert_eq!(o.delivered.len(), EVENTS, "each once");
    let position: HashMap<&str, usize> = want.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let first_out_of_order = o.delivered.windows(2).position(|w| position[w[0].as_str()] > position[w[1].as_str()]);
    assert_eq!(first_out_of_order, None, "in publish order: {:?}", first_out_of_order.map(|i| &o.delivered[i..i + 2]));
    assert_eq!(o.delivered, want, "in order, with no gaps");
    assert_eq!(o.most, 1, "one at a time");
    assert!(o.failed_once.len() >= EVENTS / 37, "failures were injected");
    let open_ids: HashSet<String> =
        open.requests("/open").iter().filter_map(|r| r.header("webhook-id").map(str::to_string)).collect();
    assert_eq!(open_ids.len(), EVENTS, "the unordered endpoint got everything too");
}
