//! Faults at the receivers and in the database while events flow, each followed by a ledger
//! check once the fault stops: every event reaches every endpoint that selects it, signed,
//! nothing else arrives, and the run prints what it cost (attempts, duplicates and why).
//! Real processes, real receivers on 127.0.0.1, a real PostgreSQL.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_testkit::{eventually, Behaviour, Receiver, TestDb};
use serde_json::json;
use support::{fast_with, Api};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(120);
/// Long enough to outlast each fault (about 7 s of retries), short enough for a test.
const SCHEDULE: (&str, &str) = ("HERALD_RETRY_SCHEDULE", "200ms,400ms,800ms,1s,1s,1s,1s,1s,1s");

/// A receiver on raw TCP. While `faulty` is set it breaks each exchange as `fault` says;
/// afterwards it answers 200 properly. Records the `webhook-id` of each proper answer.
struct RawReceiver {
    url: String,
    faulty: Arc<AtomicBool>,
    ok: Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Clone, Copy)]
enum Fault {
    /// Reads the request, sends half a status line, closes.
    CutMidResponse,
    /// Closes with a reset as soon as the client speaks (a TLS ClientHello, here).
    Reset,
}

async fn raw_receiver(fault: Fault, scheme: &str) -> RawReceiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("{scheme}://127.0.0.1:{}/raw", listener.local_addr().unwrap().port());
    let faulty = Arc::new(AtomicBool::new(true));
    let ok: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let (f, o) = (faulty.clone(), ok.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (f, o) = (f.clone(), o.clone());
            tokio::spawn(async move {
                if f.load(Ordering::SeqCst) && matches!(fault, Fault::Reset) {
                    let _ = s.read(&mut [0u8; 8192]).await;
                    let _ = s.set_zero_linger();
                    return;
                }
                let got = support::read_request(&mut s).await;
                if f.load(Ordering::SeqCst) {
                    let _ = s.write_all(b"HTTP/1.1 20").await;
                    return;
                }
                let text = String::from_utf8_lossy(&got).to_string();
                let id = text.lines().find_map(|l| l.strip_prefix("webhook-id: ")).unwrap_or("").trim().to_string();
                o.lock().unwrap().push(id);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            });
        }
    });
    RawReceiver { url, faulty, ok }
}

async fn publish(api: &Api, n: usize, prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(api.publish(json!({"id": format!("{prefix}_{i:04}"), "type": "t", "data": {"i": i}})).await);
    }
    ids
}

/// Attempts per endpoint, and how many of them failed, from the attempt log.
async fn attempts(db: &TestDb) -> HashMap<String, (i64, i64)> {
    db.client()
        .await
        .query(
            "SELECT d.endpoint_id, count(*), count(*) FILTER (WHERE a.error IS NOT NULL) FROM herald.attempts a \
               JOIN herald.deliveries d ON d.tenant_id = a.tenant_id AND d.delivery_id = a.delivery_id GROUP BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

async fn all_delivered(db: &TestDb, n: i64) {
    eventually("every delivery recorded delivered, no lease left", WAIT, || async {
        let row = db
            .client()
            .await
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'delivered'), count(*) FILTER (WHERE lease_until IS NOT NULL) \
                   FROM herald.deliveries",
                &[],
            )
            .await
            .unwrap();
        (row.get::<_, i64>(0) == n && row.get::<_, i64>(1) == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn receivers_that_fail_then_recover_lose_nothing() {
    let env = fast_with(&[SCHEDULE]);
    let (db, _herald, api) = support::herald_all(&env).await;
    let rx = Receiver::start().await;
    rx.set("/500", Behaviour::Status(500, None));
    rx.set("/slow", Behaviour::Slow(Duration::from_millis(300)));
    let cut = raw_receiver(Fault::CutMidResponse, "http").await;
    let tls = raw_receiver(Fault::Reset, "https").await;
    let (e500, s500) = api.endpoint(json!({"url": rx.url("/500")})).await;
    let (eslow, sslow) = api.endpoint(json!({"url": rx.url("/slow")})).await;
    let (ecut, _) = api.endpoint(json!({"url": cut.url})).await;
    let (etls, stls) = api.endpoint(json!({"url": tls.url})).await;
    let n = 100;
    let ids = publish(&api, n, "rf").await;
    // The faults last about two seconds, during which every endpoint sees attempts.
    eventually("each faulty endpoint to have failed attempts", WAIT, || async {
        let a = attempts(&db).await;
        [&e500, &ecut, &etls].iter().all(|e| a.get(*e).is_some_and(|(_, failed)| *failed > 0)).then_some(())
    })
    .await;
    rx.set("/500", Behaviour::Ok);
    cut.faulty.store(false, Ordering::SeqCst);
    // TLS that resets never heals by itself: the endpoint's owner moves it to a working URL.
    let moved = api
        .http
        .patch(format!("{}/v1/endpoints/{etls}", api.base))
        .bearer_auth(&api.token)
        .json(&json!({"url": rx.url("/tls-fixed")}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);

    all_delivered(&db, 4 * n as i64).await;
    let want: HashSet<String> = ids.into_iter().collect();
    for (path, secret) in [("/500", &s500), ("/slow", &sslow), ("/tls-fixed", &stls)] {
        let wh = standardwebhooks::Webhook::new(secret).unwrap();
        let got = rx.requests(path);
        for r in &got {
            wh.verify(&r.body, &r.headers).expect("every webhook verifies");
        }
        let seen: HashSet<String> = got.iter().filter_map(|r| r.header("webhook-id").map(str::to_string)).collect();
        assert_eq!(seen, want, "{path}: every event, and only those");
    }
    let seen: HashSet<String> = cut.ok.lock().unwrap().iter().cloned().collect();
    assert_eq!(seen, want, "cut: every event, and only those");
    let a = attempts(&db).await;
    eprintln!(
        "receiver faults: {n} events x 4 endpoints; attempts (failed): 500 then 200 {:?}, slow {:?}, cut mid-response {:?}, TLS reset then moved {:?}",
        a[&e500], a[&eslow], a[&ecut], a[&etls]
    );
    assert_eq!(a[&eslow].1, 0, "the healthy endpoint never failed");
}

#[tokio::test]
async fn a_failing_attempt_log_holds_results_back_and_loses_nothing() {
    let env = fast_with(&[SCHEDULE, ("HERALD_LEASE", "3s")]);
    let (db, _herald, api) = support::herald_all(&env).await;
    let rx = Receiver::start().await;
    let (_, secret) = api.endpoint(json!({"url": rx.url("/ok")})).await;
    // Disk full, as far as the attempt log can tell, until the flag is cleared.
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE public.fault (on_ boolean NOT NULL); INSERT INTO public.fault VALUES (true);
             CREATE FUNCTION public.disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF (SELECT on_ FROM public.fault) THEN
                     RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER disk_full BEFORE INSERT ON herald.attempts FOR EACH ROW EXECUTE FUNCTION public.disk_full();",
        )
        .await
        .unwrap();
    let n = 100;
    let ids = publish(&api, n, "df").await;
    rx.wait_for("/ok", n, WAIT).await;
    // Sent, but nothing recorded while the log cannot be written: the leases run out.
    let recorded: i64 = db.client().await.query_one("SELECT count(*) FROM herald.attempts", &[]).await.unwrap().get(0);
    assert_eq!(recorded, 0, "nothing is logged while the write fails");
    eventually("a lease to run out and its delivery to be sent again", WAIT, || async {
        (rx.requests("/ok").len() > n).then_some(())
    })
    .await;
    db.client().await.batch_execute("UPDATE public.fault SET on_ = false").await.unwrap();

    all_delivered(&db, n as i64).await;
    let got = rx.requests("/ok");
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    for r in &got {
        wh.verify(&r.body, &r.headers).expect("every webhook verifies");
    }
    let seen: HashSet<String> = got.iter().filter_map(|r| r.header("webhook-id").map(str::to_string)).collect();
    assert_eq!(seen, ids.into_iter().collect::<HashSet<_>>(), "every event, and only those");
    let logged: i64 = db.client().await.query_one("SELECT count(*) FROM herald.attempts", &[]).await.unwrap().get(0);
    eprintln!(
        "attempt log failing: {n} events, {} requests, {} duplicates (each a lease that ran out while its result could not be written), {logged} attempts logged",
        got.len(),
        got.len() - seen.len()
    );
}
