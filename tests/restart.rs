//! PostgreSQL stopped (an outage with connections refused, then a crash) under a running Herald:
//! every component reconnects by itself and carries on, and nothing accepted is lost. The
//! cluster is this test's own (the others share one).

mod support;

use std::collections::HashSet;
use std::time::Duration;

use herald_testkit::{eventually, Behaviour, PrivateCluster, Receiver};
use serde_json::json;
use support::{Api, Herald, BIN, FAST};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_postgres_restart_is_survived_without_help() {
    let pg = PrivateCluster::start();
    let herald = Herald::start_url(&pg.url, "all", FAST, true).await;
    let out = std::process::Command::new(BIN)
        .args(["tenant", "create", "acme"])
        .env("HERALD_DATABASE_URL", &pg.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let api = Api::new(&herald.base, String::from_utf8_lossy(&out.stdout).trim());
    let rx = Receiver::start().await;
    rx.set("/r", Behaviour::Slow(Duration::from_millis(300)));
    api.endpoint(json!({"url": rx.url("/r")})).await;

    let mut want = HashSet::new();
    for i in 0..20 {
        want.insert(api.publish(json!({"id": format!("before_{i}"), "type": "t", "data": i})).await);
    }
    rx.wait_for("/r", 3, WAIT).await;
    // Down while attempts are in flight: their results wait for the database to come back.
    pg.stop();
    let (status, _) = api.get("/readyz").await;
    assert_eq!(status, 503, "not ready without a database");
    // A publish meanwhile is answered, and says to retry: not a 500, not a hang.
    let (status, v) = api.post("/v1/events", json!({"id": "during", "type": "t", "data": 0})).await;
    assert_eq!((status, v["error"]["code"].as_str()), (503, Some("database_unavailable")), "{v}");
    // Connections refused for a while: 2 s here, 30 s under `make chaos` (HERALD_CHAOS_OUTAGE_SECS).
    let outage: u64 = std::env::var("HERALD_CHAOS_OUTAGE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    tokio::time::sleep(Duration::from_secs(outage)).await;
    pg.start_again();

    eventually("Herald to be ready again", WAIT, || async { (api.get("/readyz").await.0 == 200).then_some(()) }).await;
    for i in 0..20 {
        want.insert(api.publish_when_accepted(json!({"id": format!("after_{i}"), "type": "t", "data": i}), WAIT).await);
    }
    // Then a crash (`immediate`: no checkpoint) with deliveries in flight, and a start after it.
    rx.wait_for("/r", 25, WAIT).await;
    pg.crash();
    pg.start_again();
    for i in 0..10 {
        want.insert(api.publish_when_accepted(json!({"id": format!("crash_{i}"), "type": "t", "data": i}), WAIT).await);
    }
    eventually("every event, before and after the restart, to be delivered", WAIT, || async {
        let seen: HashSet<String> =
            rx.requests("/r").iter().filter_map(|r| r.header("webhook-id").map(str::to_string)).collect();
        want.is_subset(&seen).then_some(())
    })
    .await;
    for id in &want {
        eventually("every delivery to be recorded delivered", WAIT, || async {
            let (_, e) = api.get(&format!("/v1/events/{id}")).await;
            (e["deliveries"][0]["state"] == "delivered").then_some(())
        })
        .await;
    }
}
