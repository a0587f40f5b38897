//! Events for one consumer: from every door (HTTP, SQL, the Rust crate) an event published for a
//! consumer reaches that consumer's endpoints and the tenant's own (of no consumer), never
//! another consumer's; an event of the tenant's own reaches its own endpoints only. Replay
//! keeps to the same rule.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use herald_core::clock;
use herald_outbox_poller::replay::{ReplayConfig, Replayer, Step};
use herald_producer::{publish, NewEvent};
use serde_json::json;

use crate::App;

async fn endpoint(app: &App, token: &str, host: &str, consumer: Option<&str>) -> String {
    let body = json!({"url": format!("https://{host}.example.com/"), "consumer": consumer});
    let (s, v) = app.call(Method::POST, "/v1/endpoints", Some(token), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// The endpoints an event has deliveries to, by their hosts' names.
async fn reached(app: &App, event: &str) -> Vec<String> {
    let rows = app
        .db
        .client()
        .await
        .query(
            "SELECT split_part(split_part(url, '//', 2), '.', 1) FROM herald.deliveries \
              WHERE tenant_id = 'acme' AND event_id = $1 ORDER BY 1",
            &[&event],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn an_event_for_a_consumer_reaches_its_endpoints_and_the_tenants_own_only() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let shop = endpoint(&app, &token, "shop", Some("shop")).await;
    endpoint(&app, &token, "globex", Some("globex")).await;
    endpoint(&app, &token, "own", None).await;

    // HTTP.
    for (id, consumer) in [("h-shop", Some("shop")), ("h-own", None), ("h-globex", Some("globex"))] {
        let body = json!({"id": id, "type": "order.paid", "data": 1, "consumer": consumer});
        let (s, v) = app.call(Method::POST, "/v1/events", t, Some(body)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    assert_eq!(reached(&app, "h-shop").await, ["own", "shop"]);
    assert_eq!(reached(&app, "h-own").await, ["own"], "a consumer's endpoint gets none of the tenant's own events");
    assert_eq!(reached(&app, "h-globex").await, ["globex", "own"]);
    let (_, v) = app.call(Method::GET, "/v1/events/h-shop", t, None).await;
    assert_eq!(v["consumer"], "shop", "{v}");
    let (_, v) = app.call(Method::GET, "/v1/events/h-own", t, None).await;
    assert!(v.get("consumer").is_none(), "{v}");
    let body = json!({"type": "order.paid", "data": 1, "consumer": "not one!"});
    let (s, v) = app.call(Method::POST, "/v1/events", t, Some(body)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_consumer")), "{v}");

    // SQL and the Rust crate go through the outbox: fanned out as the poller does.
    let mut c = app.db.client().await;
    c.batch_execute(
        "SELECT herald.publish('acme', 'order.paid', '1'::jsonb, id => 's-shop', consumer => 'shop');
         SELECT herald.publish_json('acme', 'order.paid', '1'::json, id => 's-own');
         SELECT herald.publish('acme', 'order.paid', '1'::jsonb, id => 's-shop', consumer => 'globex');",
    )
    .await
    .unwrap();
    let refused = c.batch_execute("SELECT herald.publish('acme', 't', '1'::jsonb, consumer => 'no way')").await;
    let refused = refused.unwrap_err();
    assert!(refused.as_db_error().unwrap().message().contains("invalid consumer"), "{refused}");
    let tx = c.transaction().await.unwrap();
    let acme = "acme".parse().unwrap();
    let event = |id: &str, consumer: Option<&str>| NewEvent {
        id: Some(id.parse().unwrap()),
        event_type: "order.paid".into(),
        data: json!(1).into(),
        consumer: consumer.map(str::to_string),
        ..Default::default()
    };
    publish(&tx, &acme, &event("r-shop", Some("shop")), chrono::Utc::now()).await.unwrap();
    publish(&tx, &acme, &event("r-own", None), chrono::Utc::now()).await.unwrap();
    let bad = publish(&tx, &acme, &event("r-bad", Some("no way")), chrono::Utc::now()).await;
    assert!(bad.is_err(), "a consumer of the wrong shape is refused before anything is written");
    tx.commit().await.unwrap();
    herald_outbox_poller::Poller::new(
        app.db.pool.clone(),
        clock::system(),
        Default::default(),
        herald_core::metrics::Metrics::new(),
    )
    .tick()
    .await
    .unwrap();
    assert_eq!(reached(&app, "s-shop").await, ["own", "shop"], "the duplicate's consumer changed nothing");
    assert_eq!(reached(&app, "s-own").await, ["own"]);
    assert_eq!(reached(&app, "r-shop").await, ["own", "shop"]);
    assert_eq!(reached(&app, "r-own").await, ["own"]);

    // Replay to shop's endpoint: only shop's events come again.
    c.execute("UPDATE herald.deliveries SET state = 'delivered', attempt_count = 1", &[]).await.unwrap();
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (s, job) =
        app.call(Method::POST, &format!("/v1/endpoints/{shop}/replay"), t, Some(json!({"since": since}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let config = ReplayConfig {
        batch: 100,
        turn: 1000,
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_millis(50),
    };
    let runner = Replayer::new(app.db.pool.clone(), clock::system(), config);
    let id = runner.claim(&acme).await.unwrap().expect("the job");
    assert_eq!(runner.step(&acme, &id).await.unwrap(), Step::Done);
    let (_, job) = app.call(Method::GET, &format!("/v1/replays/{id}"), t, None).await;
    assert_eq!(job["deliveries_created"], 3, "h-shop, s-shop, r-shop: {job}");
}
