//! The outbox-poller against a real PostgreSQL.

use std::sync::Arc;

use herald_core::clock;
use herald_outbox_poller::{Poller, PollerConfig};
use herald_testkit::TestDb;

async fn endpoint(db: &TestDb, tenant: &str, id: &str, types: &[&str], status: &str) {
    let types: Vec<String> = types.iter().map(|s| s.to_string()).collect();
    db.client()
        .await
        .execute(
            "INSERT INTO herald.endpoints (tenant_id, endpoint_id, url, event_types, status, secret, created_at, updated_at) \
             VALUES ($1, $2, 'https://example.com/' || $2, $3, $4, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now(), now())",
            &[&tenant, &id, &types, &status],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn three_pollers_fan_each_event_out_exactly_once() {
    let db = TestDb::new().await;
    for t in ["acme", "globex"] {
        db.tenant(t).await;
        endpoint(&db, t, &format!("ep_{t}_all"), &[], "healthy").await;
        endpoint(&db, t, &format!("ep_{t}_meet"), &["meeting.*"], "failing").await;
        endpoint(&db, t, &format!("ep_{t}_off"), &[], "disabled").await;
    }
    let n = 600;
    db.client()
        .await
        .batch_execute(&format!(
            "SELECT herald.publish(CASE WHEN g % 2 = 0 THEN 'acme' ELSE 'globex' END,
                                   CASE WHEN g % 3 = 0 THEN 'meeting.completed' ELSE 'run.finished' END,
                                   to_jsonb(g), id => 'e' || g,
                                   callback_url => CASE WHEN g % 5 = 0 THEN 'https://agent.example.com/cb/' || g END)
               FROM generate_series(1, {n}) g"
        ))
        .await
        .unwrap();

    let pollers: Vec<Arc<Poller>> = (0..3)
        .map(|_| {
            Arc::new(Poller::new(
                db.pool.clone(),
                clock::system(),
                PollerConfig { batch: 25, ..Default::default() },
                herald_core::metrics::Metrics::new(),
            ))
        })
        .collect();
    let mut handles = Vec::new();
    for p in &pollers {
        let p = p.clone();
        let tenant_batches = async move {
            let mut mine = 0;
            loop {
                let a = p.fan_out_batch(&"acme".parse().unwrap()).await.unwrap();
                let b = p.fan_out_batch(&"globex".parse().unwrap()).await.unwrap();
                mine += a + b;
                if a + b == 0 {
                    return mine;
                }
            }
        };
        handles.push(tokio::spawn(tenant_batches));
    }
    let mut per_poller = Vec::new();
    for h in handles {
        per_poller.push(h.await.unwrap());
    }
    assert_eq!(per_poller.iter().sum::<usize>(), n, "each event taken by exactly one poller: {per_poller:?}");
    assert!(per_poller.iter().filter(|&&k| k > 0).count() >= 2, "the pollers shared the work: {per_poller:?}");

    let c = db.client().await;
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    // Every event to the catch-all endpoint, meeting.* ones also to the failing one, none to the
    // disabled one, and one per callback.
    let meetings = (1..=n).filter(|g| g % 3 == 0).count() as i64;
    let callbacks = (1..=n).filter(|g| g % 5 == 0).count() as i64;
    assert_eq!(count("SELECT count(*) FROM herald.deliveries").await, n as i64 + meetings + callbacks);
    assert_eq!(count("SELECT count(*) FROM herald.deliveries WHERE endpoint_id LIKE '%_off'").await, 0);
    assert_eq!(count("SELECT count(*) FROM herald.deliveries WHERE target = 'callback'").await, callbacks);
    assert_eq!(count("SELECT count(*) FROM herald.pending_events").await, 0);
    assert_eq!(
        count("SELECT count(*) FROM (SELECT tenant_id, event_id, target FROM herald.deliveries GROUP BY 1, 2, 3 HAVING count(*) > 1) d").await,
        0
    );
    // No tenant's event reached another tenant's endpoint.
    assert_eq!(
        count("SELECT count(*) FROM herald.deliveries d JOIN herald.endpoints e USING (endpoint_id) WHERE e.tenant_id <> d.tenant_id").await,
        0
    );
}

#[tokio::test]
async fn a_rolled_back_fan_out_leaves_the_event_pending() {
    let db = TestDb::new().await;
    db.tenant("acme").await;
    endpoint(&db, "acme", "ep_1", &[], "healthy").await;
    db.client().await.batch_execute("SELECT herald.publish('acme', 't', '1'::jsonb, id => 'e1')").await.unwrap();
    // A poller that dies mid-transaction: hold the row in an open transaction, then abort.
    let mut c = herald_core::db::connect(&db.url).await.unwrap();
    let tx = c.transaction().await.unwrap();
    tx.batch_execute("DELETE FROM herald.pending_events WHERE tenant_id = 'acme'").await.unwrap();
    let poller =
        Poller::new(db.pool.clone(), clock::system(), PollerConfig::default(), herald_core::metrics::Metrics::new());
    assert_eq!(
        poller.fan_out_batch(&"acme".parse().unwrap()).await.unwrap(),
        0,
        "a locked pending event is skipped, not waited for"
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        poller.fan_out_batch(&"acme".parse().unwrap()).await.unwrap(),
        1,
        "after the rollback it is there again"
    );
    assert_eq!(poller.tick().await.unwrap(), 0);
}

/// The poll asks each tenant on its own: one whose probe fails (on Citus, its worker node is
/// down) is left out and the others are still found; only when every probe fails is it an error.
#[tokio::test]
async fn a_tenant_whose_probe_fails_is_left_out_and_the_others_are_found() {
    let db = TestDb::new().await;
    for t in ["acme", "globex", "initech"] {
        db.tenant(t).await;
    }
    let client = db.client().await;
    // A probe that fails for the tenants named in $2, as a query to a stopped node does.
    let probe = "SELECT CASE WHEN $1 = ANY($2::text[]) THEN 1 / 0 = 1 ELSE $1 <> 'initech' END";
    let found = |fail: &'static [&'static str]| {
        let client = &client;
        async move {
            let fail: Vec<&str> = fail.to_vec();
            herald_core::db::tenants_where(client, probe, &[&fail]).await
        }
    };
    let names = |v: Vec<herald_core::id::TenantId>| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    assert_eq!(names(found(&[]).await.unwrap()), ["acme", "globex"]);
    assert_eq!(names(found(&["acme"]).await.unwrap()), ["globex"], "acme's failure leaves globex found");
    let err = found(&["acme", "globex", "initech"]).await.expect_err("every probe failed");
    assert!(err.to_string().contains("division by zero"), "{err}");
}
