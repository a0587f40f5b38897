//! The worker's database side, driven step by step with a clock the test moves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use herald_core::clock::{Clock, ManualClock};
use herald_delivery_worker::{AttemptOutcome, Store, WorkerConfig};
use herald_testkit::TestDb;

struct Fixture {
    db: TestDb,
    clock: Arc<ManualClock>,
}

impl Fixture {
    async fn new() -> Self {
        let db = TestDb::new().await;
        db.tenant("acme").await;
        let c = db.client().await;
        c.batch_execute(
            "INSERT INTO herald.endpoints (tenant_id, endpoint_id, url, secret, retry_schedule_ms, created_at, updated_at)
             VALUES ('acme', 'ep_1', 'https://example.com/hook', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '{60000, 300000}', now(), now());
             SELECT herald.publish('acme', 'run.finished', '{\"run\": 1}'::jsonb, id => 'e1');",
        )
        .await
        .unwrap();
        // PostgreSQL keeps microseconds: start the clock on one.
        let clock = Arc::new(ManualClock::new(Utc::now().trunc_subsecs(6)));
        let f = Self { db, clock };
        f.db.client()
            .await
            .execute(
                "INSERT INTO herald.deliveries (tenant_id, delivery_id, event_id, target, endpoint_id, url, next_attempt_at, created_at, updated_at)
                 VALUES ('acme', 'dlv_1', 'e1', 'ep_1', 'ep_1', 'https://example.com/hook', $1, $1, $1)",
                &[&f.clock.now()],
            )
            .await
            .unwrap();
        f
    }

    fn store(&self, worker: &str) -> Store {
        let mut config = WorkerConfig::new(worker.to_string());
        config.lease = Duration::from_secs(30);
        Store::new(self.db.pool.clone(), config, herald_core::metrics::Metrics::new())
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn delivery(&self) -> (String, i32, DateTime<Utc>, Option<String>) {
        let r = self
            .db
            .client()
            .await
            .query_one("SELECT CASE WHEN lease_until IS NOT NULL THEN 'delivering' ELSE state END, attempt_count, coalesce(lease_until, next_attempt_at), lease_owner FROM herald.deliveries WHERE delivery_id = 'dlv_1'", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    }
}

fn outcome(at: DateTime<Utc>, status: Option<u16>) -> AttemptOutcome {
    AttemptOutcome {
        started_at: at,
        duration: Duration::from_millis(20),
        status_code: status,
        error: if status.is_some_and(|s| (200..300).contains(&s)) { None } else { Some("http_status") },
        detail: status.filter(|s| !(200..300).contains(s)).map(|s| format!("http_status: the receiver answered {s}")),
        excerpt: Some("x".into()),
        retry_after: None,
    }
}

fn acme() -> herald_core::id::TenantId {
    "acme".parse().unwrap()
}

fn none() -> HashMap<String, usize> {
    HashMap::new()
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_late_result_changes_nothing() {
    let f = Fixture::new().await;
    let (a, b) = (f.store("worker-a"), f.store("worker-b"));
    let claimed = a.claim(&acme(), 10, f.now(), &none(), 0).await.unwrap().ready;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 1);
    assert_eq!(b.claim(&acme(), 10, f.now(), &none(), 0).await.unwrap().ready.len(), 0, "leased: not claimable");
    let (state, _, until, owner) = f.delivery().await;
    assert_eq!((state.as_str(), owner.as_deref()), ("delivering", Some("worker-a")));
    assert_eq!(until, f.now() + chrono::Duration::seconds(30), "the lease deadline comes from the clock");

    f.clock.advance(chrono::Duration::seconds(31));
    let again = b.claim(&acme(), 10, f.now(), &none(), 0).await.unwrap().ready;
    assert_eq!(again.len(), 1, "an expired lease makes the delivery claimable");
    assert_eq!(again[0].attempt, 2);

    // Worker A finally answers: its attempt is logged, but B's lease stands.
    let late = herald_delivery_worker::store_finished(claimed[0].clone(), outcome(f.now(), Some(200)));
    a.record(&[late], f.now()).await.unwrap();
    let (state, count, _, owner) = f.delivery().await;
    assert_eq!((state.as_str(), count, owner.as_deref()), ("delivering", 2, Some("worker-b")));
    let logged: i64 = f.db.client().await.query_one("SELECT count(*) FROM herald.attempts", &[]).await.unwrap().get(0);
    assert_eq!(logged, 1);

    let done = herald_delivery_worker::store_finished(again[0].clone(), outcome(f.now(), Some(204)));
    b.record(&[done], f.now()).await.unwrap();
    assert_eq!(f.delivery().await.0, "delivered");
}

#[tokio::test]
async fn failures_follow_the_schedule_then_fail_and_mark_the_endpoint() {
    let f = Fixture::new().await;
    let w = f.store("w");
    // The endpoint's schedule is 1m, 5m: three attempts.
    for (attempt, step) in [(1, Some(60)), (2, Some(300)), (3, None)] {
        let c = w.claim(&acme(), 10, f.now(), &none(), 0).await.unwrap().ready;
        assert_eq!(c.len(), 1, "attempt {attempt} is due");
        let fin = herald_delivery_worker::store_finished(c[0].clone(), outcome(f.now(), Some(500)));
        w.record(&[fin], f.now()).await.unwrap();
        let (state, count, next, _) = f.delivery().await;
        assert_eq!(count, attempt);
        match step {
            Some(secs) => {
                assert_eq!(state, "pending");
                let delay = (next - f.now()).num_milliseconds() as f64 / 1000.0;
                assert!(delay >= secs as f64 * 0.9 && delay <= secs as f64 * 1.1 + 0.1, "attempt {attempt}: {delay}s");
                f.clock.advance(chrono::Duration::seconds(secs / 2));
                assert!(
                    w.claim(&acme(), 10, f.now(), &none(), 0).await.unwrap().ready.is_empty(),
                    "not before its time"
                );
                f.clock.advance(chrono::Duration::seconds(secs));
            }
            None => assert_eq!(state, "failed"),
        }
    }
    let c = f.db.client().await;
    let status: String =
        c.query_one("SELECT status FROM herald.endpoints WHERE endpoint_id = 'ep_1'", &[]).await.unwrap().get(0);
    assert_eq!(status, "failing");
    let note: serde_json::Value =
        c.query_one("SELECT data FROM herald.events WHERE event_type = 'endpoint.failing'", &[]).await.unwrap().get(0);
    assert_eq!(note["endpoint_id"], "ep_1");
    assert_eq!(note["delivery_id"], "dlv_1");
    assert_eq!(note["event_id"], "e1");
    assert_eq!(note["url"], "https://example.com/hook");
}

#[tokio::test]
async fn a_disabled_endpoints_deliveries_wait() {
    let f = Fixture::new().await;
    let w = f.store("w");
    let c = f.db.client().await;
    c.batch_execute("UPDATE herald.endpoints SET status = 'disabled'").await.unwrap();
    assert!(w.claim(&acme(), 10, f.now(), &none(), 0).await.unwrap().ready.is_empty());
    assert_eq!(f.delivery().await.0, "pending", "still there, waiting");
    c.batch_execute("UPDATE herald.endpoints SET status = 'healthy'").await.unwrap();
    assert_eq!(w.claim(&acme(), 10, f.now(), &none(), 0).await.unwrap().ready.len(), 1);
}

#[tokio::test]
async fn a_worker_never_claims_more_than_it_has_room_for() {
    let f = Fixture::new().await;
    let c = f.db.client().await;
    c.batch_execute(
        "SELECT herald.publish('acme', 't', 'null'::jsonb, id => 'x' || g) FROM generate_series(1, 30) g;
         INSERT INTO herald.deliveries (tenant_id, delivery_id, event_id, target, endpoint_id, url, next_attempt_at, created_at, updated_at)
         SELECT 'acme', 'dlv_x' || g, 'x' || g, 'ep_1', 'ep_1', 'https://example.com/hook', now() - interval '1 minute', now(), now()
           FROM generate_series(1, 30) g;",
    )
    .await
    .unwrap();
    let mut w = f.store("w");
    w.config.endpoint_concurrency = 16;
    assert_eq!(w.claim(&acme(), 5, f.now(), &none(), 0).await.unwrap().ready.len(), 5, "limited by free slots");
    // endpoint_concurrency 16: with 14 already in flight here, 2 more at most.
    let local: HashMap<String, usize> = [("acme/ep_1".to_string(), 14)].into();
    assert_eq!(
        w.claim(&acme(), 50, f.now(), &local, 0).await.unwrap().ready.len(),
        2,
        "limited by the per-endpoint room"
    );
    w.give_back(&[], f.now()).await.unwrap();
}
