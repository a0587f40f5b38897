//! Several worker processes at once, limits that hold across them, a hanging endpoint, kill -9
//! and SIGTERM in the middle of deliveries. Real processes, real receivers on 127.0.0.1.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use herald_testkit::{eventually, Behaviour, Receiver, TestDb};
use serde_json::json;
use support::{fast_with, Api, Herald};

const WAIT: Duration = Duration::from_secs(300);

/// A producer and a poller, and the tenant's API.
async fn front(db: &TestDb, env: &[(&str, &str)]) -> (Herald, Herald, Api) {
    let token = db.tenant("acme").await;
    let producer = Herald::start(db, "producer", env).await;
    let poller = Herald::start(db, "poller", env).await;
    let api = Api::new(&producer.base, &token);
    (producer, poller, api)
}

async fn publish_many(api: &Api, n: usize, event_type: &str) -> Vec<(String, Instant)> {
    let mut out = Vec::new();
    for i in 0..n {
        let id =
            api.publish(json!({"id": format!("evt_{event_type}_{i:04}"), "type": event_type, "data": {"i": i}})).await;
        out.push((id, Instant::now()));
    }
    out
}

async fn delivery_states(db: &TestDb) -> HashMap<String, i64> {
    db.client()
        .await
        .query("SELECT CASE WHEN lease_until IS NOT NULL THEN 'delivering' ELSE state END, count(*) FROM herald.deliveries GROUP BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn rate_limit_and_max_in_flight_hold_across_two_workers() {
    let db = TestDb::new().await;
    let env = fast_with(&[("HERALD_ATTEMPT_TIMEOUT", "5s"), ("HERALD_LEASE", "10s")]);
    let (_p, _q, api) = front(&db, &env).await;
    let _w1 = Herald::start(&db, "worker", &env).await;
    let _w2 = Herald::start(&db, "worker", &env).await;
    let rx = Receiver::start().await;
    rx.set("/narrow", Behaviour::Slow(Duration::from_millis(200)));
    api.endpoint(json!({"url": rx.url("/limited"), "event_types": ["limited"], "rate_limit_per_s": 10})).await;
    api.endpoint(json!({"url": rx.url("/narrow"), "event_types": ["narrow"], "max_in_flight": 2})).await;

    let n = 50;
    publish_many(&api, n, "limited").await;
    publish_many(&api, 12, "narrow").await;
    let got = rx.wait_for("/limited", n, WAIT).await;
    rx.wait_for("/narrow", 12, WAIT).await;

    // 10/s with a burst of one second's worth: 50 take about 4 s whether one worker sends or
    // two do. Two workers each holding their own 10/s would take about 2 s.
    let span = got.last().unwrap().at - got[0].at;
    let rate = (n - 1) as f64 / span.as_secs_f64();
    eprintln!("rate-limited endpoint (10/s, 2 workers): {n} deliveries in {span:?} = {rate:.1}/s");
    assert!(span >= Duration::from_millis(3200), "the limit must hold across workers: {n} in {span:?} ({rate:.1}/s)");
    let concurrent = rx.max_concurrent("/narrow");
    eprintln!("max_in_flight 2 across 2 workers: at most {concurrent} requests at once");
    assert!(concurrent <= 2, "max_in_flight 2 must hold across workers, saw {concurrent} at once");
    eventually("every delivery to be recorded", WAIT, || async {
        (delivery_states(&db).await.get("delivered") == Some(&(n as i64 + 12))).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_hold_up_the_others() {
    let db = TestDb::new().await;
    let env = fast_with(&[
        ("HERALD_ATTEMPT_TIMEOUT", "20s"),
        ("HERALD_LEASE", "30s"),
        ("HERALD_WORKER_CONCURRENCY", "16"),
        ("HERALD_ENDPOINT_CONCURRENCY", "4"),
    ]);
    let (_p, _q, api) = front(&db, &env).await;
    let _w = Herald::start(&db, "worker", &env).await;
    let rx = Receiver::start().await;
    rx.set("/hang", Behaviour::Hang);
    let (hang, _) = api.endpoint(json!({"url": rx.url("/hang")})).await;
    api.endpoint(json!({"url": rx.url("/fast")})).await;

    let published = publish_many(&api, 40, "x").await;
    let got = rx.wait_for("/fast", 40, WAIT).await;
    // Every healthy delivery landed while the hanging endpoint's attempts were all still open:
    // none of them has finished (none is in the attempt log), and it never had more than its
    // per-worker share of slots.
    let hang_attempts: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM herald.attempts a JOIN herald.deliveries d USING (tenant_id, delivery_id) WHERE d.endpoint_id = $1", &[&hang])
        .await
        .unwrap()
        .get(0);
    assert_eq!(hang_attempts, 0, "the fast endpoint waited for the hanging one's attempts to end");
    assert!(rx.max_concurrent("/hang") <= 4, "a hanging endpoint took {} slots", rx.max_concurrent("/hang"));
    let sent: HashMap<&str, Instant> = published.iter().map(|(id, at)| (id.as_str(), *at)).collect();
    let slowest = got.iter().map(|r| r.at - sent[r.header("webhook-id").unwrap()]).max().unwrap();
    eprintln!("slowest healthy delivery (publish answered -> received) while another endpoint hung: {slowest:?}");
}

#[tokio::test]
async fn kill_9_in_the_middle_loses_nothing() {
    let db = TestDb::new().await;
    let env =
        fast_with(&[("HERALD_LEASE", "2s"), ("HERALD_ATTEMPT_TIMEOUT", "1s"), ("HERALD_WORKER_CONCURRENCY", "8")]);
    let (_p, _q, api) = front(&db, &env).await;
    let rx = Receiver::start().await;
    rx.set("/crash", Behaviour::Slow(Duration::from_millis(50)));
    let (_, secret) = api.endpoint(json!({"url": rx.url("/crash")})).await;
    // Published first, so that the workers start on a backlog and are killed in its middle.
    // `make chaos` runs this with more events (HERALD_CHAOS_EVENTS).
    let n: usize = std::env::var("HERALD_CHAOS_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let published = publish_many(&api, n, "crash").await;
    let mut env1 = env.clone();
    env1.push(("HERALD_WORKER_ID", "w1"));
    let mut w1 = Herald::start(&db, "worker", &env1).await;
    let _w2 = Herald::start(&db, "worker", &env).await;
    rx.wait_for("/crash", n / 5, WAIT).await;
    // Kill it with work in hand, so that the test shows something.
    eventually("the first worker to hold leases", WAIT, || async {
        let held: i64 = db
            .client()
            .await
            .query_one(
                "SELECT count(*) FROM herald.deliveries WHERE lease_owner = 'w1' AND lease_until IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (held >= 3).then_some(())
    })
    .await;
    w1.signal("KILL");
    w1.wait_exit(Duration::from_secs(10)).await;
    let killed_at = rx.count("/crash");
    // What the killed worker held: leased and not yet recorded (in flight, or answered with
    // the result not yet written). Read before those leases expire.
    let held: HashSet<String> = db
        .client()
        .await
        .query("SELECT event_id FROM herald.deliveries WHERE lease_owner = 'w1' AND lease_until IS NOT NULL", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();

    let want: HashSet<String> = published.into_iter().map(|(id, _)| id).collect();
    eventually("every event to reach the receiver", WAIT, || async {
        let seen: HashSet<String> =
            rx.requests("/crash").iter().filter_map(|r| r.header("webhook-id").map(str::to_string)).collect();
        (seen == want).then_some(())
    })
    .await;
    eventually("every delivery to be recorded delivered", WAIT, || async {
        (delivery_states(&db).await.get("delivered") == Some(&(n as i64))).then_some(())
    })
    .await;
    let all = rx.requests("/crash");
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    for r in &all {
        wh.verify(&r.body, &r.headers).expect("every webhook verifies");
    }
    let duplicates = all.len() - want.len();
    eprintln!(
        "kill -9: {n} events, {n} deliveries, {} requests received, {duplicates} duplicates, worker killed after {killed_at} requests holding {} leases",
        all.len(),
        held.len()
    );
    // A duplicate comes only from a lease that expired: the killed worker's.
    let mut seen = HashSet::new();
    for r in &all {
        let id = r.header("webhook-id").unwrap().to_string();
        if !seen.insert(id.clone()) {
            assert!(held.contains(&id), "{id} was delivered twice without a lease that expired");
        }
    }
    assert!(!held.is_empty(), "the worker was killed with nothing in hand; the test proves nothing");
}

#[tokio::test]
async fn sigterm_drains_in_flight_work_and_exits_0() {
    let db = TestDb::new().await;
    let env =
        fast_with(&[("HERALD_ATTEMPT_TIMEOUT", "5s"), ("HERALD_LEASE", "30s"), ("HERALD_WORKER_CONCURRENCY", "4")]);
    let (_p, _q, api) = front(&db, &env).await;
    let rx = Receiver::start().await;
    rx.set("/drain", Behaviour::Slow(Duration::from_millis(700)));
    api.endpoint(json!({"url": rx.url("/drain")})).await;
    let mut w = Herald::start(&db, "worker", &env).await;
    let n = 12;
    let published = publish_many(&api, n, "drain").await;
    rx.wait_for("/drain", 2, WAIT).await;
    w.signal("TERM");
    assert_eq!(w.wait_exit(Duration::from_secs(20)).await, Some(0), "SIGTERM exits 0");
    // Nothing is left leased: what was in flight finished and was recorded.
    let states = delivery_states(&db).await;
    assert_eq!(states.get("delivering"), None, "leases left behind: {states:?}");
    let delivered = *states.get("delivered").unwrap_or(&0) as usize;
    assert_eq!(delivered, rx.count("/drain"), "every request the receiver answered was recorded");
    assert!(delivered < n, "the drain must stop claiming new work");

    let _w2 = Herald::start(&db, "worker", &env).await;
    eventually("the rest to be delivered by the next worker", WAIT, || async {
        (delivery_states(&db).await.get("delivered") == Some(&(n as i64))).then_some(())
    })
    .await;
    let ids: Vec<String> = rx.requests("/drain").iter().map(|r| r.header("webhook-id").unwrap().to_string()).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), published.len());
    assert_eq!(ids.len(), unique.len(), "a drained worker causes no duplicates");
}

#[tokio::test]
async fn a_backlog_for_one_endpoint_keeps_flowing_between_polls() {
    let db = TestDb::new().await;
    // A long poll, and a worker that may send only 4 at a time to one endpoint: it must claim
    // again as its attempts finish, not once per poll.
    let env = fast_with(&[
        ("HERALD_POLL_INTERVAL", "30s"),
        ("HERALD_WORKER_CONCURRENCY", "16"),
        ("HERALD_ENDPOINT_CONCURRENCY", "4"),
    ]);
    let (_p, _q, api) = front(&db, &fast_with(&[])).await;
    let rx = Receiver::start().await;
    rx.set("/backlog", Behaviour::Slow(Duration::from_millis(20)));
    api.endpoint(json!({"url": rx.url("/backlog")})).await;
    let n = 80;
    publish_many(&api, n, "backlog").await;
    eventually("the deliveries to be made", WAIT, || async {
        let made: i64 =
            db.client().await.query_one("SELECT count(*) FROM herald.deliveries", &[]).await.unwrap().get(0);
        (made == n as i64).then_some(())
    })
    .await;
    let started = Instant::now();
    let _w = Herald::start(&db, "worker", &env).await;
    // 80 at 4 at a time, 20 ms each, is well under a second; one claim per 30 s poll would be
    // twenty polls. The deadline sits between the two.
    rx.wait_for("/backlog", n, Duration::from_secs(25)).await;
    eprintln!("backlog of {n} for one endpoint (4 at a time, 30 s poll) delivered in {:?}", started.elapsed());
    assert!(rx.max_concurrent("/backlog") <= 4);
}

/// One tenant whose results cannot be written (here a trigger refuses its rows with a
/// connection error, as a Citus node that is down does) holds up no other tenant's: theirs are
/// recorded at once, its own are held and written once it can be, each delivery sent once
/// while its lease held.
#[tokio::test]
async fn a_tenant_whose_results_cannot_be_written_holds_up_no_other() {
    let db = TestDb::new().await;
    // "aaa" sorts first: a recorder that went tenant by tenant and stopped at the first
    // failure would never reach "bbb".
    // A lease longer than the test: every send below is a first send, none a lost lease's.
    let env = fast_with(&[("HERALD_LEASE", "600s")]);
    let producer = Herald::start(&db, "producer", &env).await;
    let _worker = Herald::start(&db, "worker", &env).await;
    let rx = Receiver::start().await;
    let (mut apis, mut endpoints) = (Vec::new(), Vec::new());
    for t in ["aaa", "bbb"] {
        let api = Api::new(&producer.base, &db.tenant(t).await);
        endpoints.push(api.endpoint(json!({"url": rx.url(&format!("/{t}"))})).await.0);
        apis.push(api);
    }
    let admin = db.client().await;
    admin
        .batch_execute(
            "CREATE FUNCTION herald.refuse_aaa() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               RAISE EXCEPTION 'aaa''s node is down' USING ERRCODE = 'connection_failure'; END $$; \
             CREATE TRIGGER refuse_aaa BEFORE UPDATE ON herald.deliveries FOR EACH ROW \
               WHEN (NEW.tenant_id = 'aaa' AND NEW.lease_owner IS NULL) EXECUTE FUNCTION herald.refuse_aaa()",
        )
        .await
        .unwrap();
    let a = apis[0].publish(json!({"id": "a1", "type": "t", "data": 1})).await;
    rx.wait_for("/aaa", 1, WAIT).await;
    let b = apis[1].publish(json!({"id": "b1", "type": "t", "data": 1})).await;
    rx.wait_for("/bbb", 1, WAIT).await;
    // Well before any lease could expire.
    apis[1].wait_delivery(&b, Some(&endpoints[1]), "delivered", Duration::from_secs(60)).await;
    let (_, v) = apis[0].get(&format!("/v1/events/{a}")).await;
    assert_eq!(v["deliveries"][0]["state"], "delivering", "aaa's result cannot be written yet: {v}");

    admin.batch_execute("DROP TRIGGER refuse_aaa ON herald.deliveries").await.unwrap();
    apis[0].wait_delivery(&a, Some(&endpoints[0]), "delivered", Duration::from_secs(60)).await;
    assert_eq!((rx.count("/aaa"), rx.count("/bbb")), (1, 1), "each sent once: its result was held, not lost");
}
