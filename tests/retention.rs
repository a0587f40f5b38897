//! Retention (HERALD_RETENTION): what is past it goes, in small batches, while deliveries keep
//! flowing; a delivery still waiting for its next attempt, and its event, stay however old.

mod support;

use std::time::{Duration, Instant};

use herald_testkit::{eventually, Receiver, TestDb};
use serde_json::json;
use support::{fast_with, herald_all};

const WAIT: Duration = Duration::from_secs(60);

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn retention_removes_what_is_past_it_while_deliveries_flow() {
    // A failed attempt waits an hour for the next: past the retention.
    let env = fast_with(&[
        ("HERALD_RETENTION", "2s"),
        ("HERALD_RETENTION_INTERVAL", "200ms"),
        ("HERALD_RETRY_SCHEDULE", "1h"),
    ]);
    let (db, herald, api) = herald_all(&env).await;
    let rx = Receiver::start().await;
    api.endpoint(json!({"url": rx.url("/ok"), "event_types": ["old", "new"]})).await;
    rx.set("/held", herald_testkit::Behaviour::Status(500, None));
    api.endpoint(json!({"url": rx.url("/held"), "event_types": ["held"]})).await;
    for i in 0..200 {
        api.publish(json!({"id": format!("old_{i}"), "type": "old", "data": i})).await;
    }
    for i in 0..5 {
        api.publish(json!({"id": format!("held_{i}"), "type": "held", "data": i})).await;
    }
    rx.wait_for("/ok", 200, WAIT).await;
    rx.wait_for("/held", 5, WAIT).await;

    // New events keep being published and delivered while retention removes the old ones.
    let started = Instant::now();
    let mut published = 0;
    loop {
        api.publish(json!({"id": format!("new_{published}"), "type": "new", "data": published})).await;
        published += 1;
        let old = count(&db, "SELECT count(*) FROM herald.events WHERE event_id LIKE 'old_%'").await;
        if old == 0 || published >= 2_000 || started.elapsed() > WAIT {
            break;
        }
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM herald.events WHERE event_id LIKE 'old_%'").await,
        0,
        "old events removed"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM herald.deliveries WHERE event_id LIKE 'old_%'").await,
        0,
        "their deliveries too"
    );
    // The cutoff is the retention's: what was just published is there.
    let newest = format!("SELECT count(*) FROM herald.events WHERE event_id = 'new_{}'", published - 1);
    assert_eq!(count(&db, &newest).await, 1, "an event younger than the retention is kept");
    rx.wait_for("/ok", 200 + published, WAIT).await;
    assert!(published > 1, "deliveries went on while retention ran ({published} published and delivered)");
    // Waiting for the next attempt an hour on: kept, with their events, however old.
    let waiting =
        count(&db, "SELECT count(*) FROM herald.deliveries WHERE event_id LIKE 'held_%' AND state = 'pending'").await;
    let events = count(&db, "SELECT count(*) FROM herald.events WHERE event_id LIKE 'held_%'").await;
    assert_eq!((waiting, events), (5, 5), "a delivery waiting for its next attempt, and its event, are never removed");
    let metrics = eventually("retention counted in /metrics", WAIT, || async {
        let m = api.http.get(format!("{}/metrics", herald.base)).send().await.ok()?.text().await.ok()?;
        let n: f64 = m
            .lines()
            .find_map(|l| l.strip_prefix("herald_retention_removed_total{what=\"deliveries\"} "))?
            .parse()
            .ok()?;
        (n >= 200.0).then_some(m)
    })
    .await;
    assert!(metrics.contains("herald_retention_removed_total{what=\"events\"}"));
}

#[tokio::test]
async fn the_attempt_log_goes_by_whole_months() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let months =
        || async { count(&db, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'herald.attempts'::regclass").await };
    assert_eq!(months().await, 4, "this month, the next two and the default partition");
    client
        .batch_execute(
            "INSERT INTO herald.attempts (tenant_id, attempt_id, delivery_id, event_id, attempt, started_at, duration_ms) \
             VALUES ('t', 'a1', 'd1', 'e1', 1, now(), 5)",
        )
        .await
        .unwrap();
    // Nothing ends before now: nothing goes.
    let dropped: i32 = client.query_one("SELECT herald.drop_old_attempts(now())", &[]).await.unwrap().get(0);
    assert_eq!((dropped, months().await), (0, 4));
    // Four months on, the three months have ended: dropped whole, their rows with them.
    let dropped: i32 =
        client.query_one("SELECT herald.drop_old_attempts(now() + interval '4 months')", &[]).await.unwrap().get(0);
    assert_eq!((dropped, months().await), (3, 1));
    assert_eq!(count(&db, "SELECT count(*) FROM herald.attempts").await, 0);
    client.batch_execute("SELECT herald.ensure_partitions(now())").await.unwrap();
    assert_eq!(months().await, 4, "made again");
}
