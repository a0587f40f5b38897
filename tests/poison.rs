//! No single input, row or answer stops a Herald process or holds its queue (issue 7): poison
//! values over HTTP and SQL, rows that cannot be read, events that cannot be fanned out, panics
//! in an attempt, in the claim loop and in a handler, and a process that dies on one delivery
//! again and again. Each test shows the process still serving and another tenant's deliveries
//! flowing.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use herald_testkit::{eventually, Receiver, TestDb};
use serde_json::{json, Value};
use support::{fast_with, Api, Herald, BIN, FAST};

const WAIT: Duration = Duration::from_secs(30);

async fn post_raw(api: &Api, body: &str) -> (u16, Value) {
    let r = api
        .http
        .post(format!("{}/v1/events", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn get_raw(api: &Api, path: &str) -> (u16, String) {
    let r = api.http.get(format!("{}{path}", api.base)).bearer_auth(&api.token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Another tenant publishes and is delivered to, while the poison sits in the queue.
struct Bystander {
    api: Api,
    rx: Receiver,
    sent: usize,
}

impl Bystander {
    async fn new(db: &TestDb, herald: &Herald) -> Self {
        let token = db.tenant("globex").await;
        let api = Api::new(&herald.base, &token);
        let rx = Receiver::start().await;
        api.endpoint(json!({"url": rx.url("/globex")})).await;
        Self { api, rx, sent: 0 }
    }

    /// Publishes one more event and waits until it is received.
    async fn still_served(&mut self) {
        self.sent += 1;
        self.api.publish(json!({"type": "ping", "data": {"n": self.sent}})).await;
        self.rx.wait_for("/globex", self.sent, WAIT).await;
    }
}

fn still_running(herald: &mut Herald) {
    assert!(herald.child.try_wait().unwrap().is_none(), "herald exited");
}

async fn metric(base: &str, line_prefix: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    text.lines().find(|l| l.starts_with(line_prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

/// The webhook body's `data`, as the bytes between `"data":` and the closing brace.
fn delivered_data(r: &herald_testkit::Received) -> String {
    let body = std::str::from_utf8(&r.body).unwrap();
    let start = body.find("\"data\":").expect("a data field") + 7;
    body[start..body.len() - 1].to_string()
}

#[tokio::test]
async fn edge_values_are_delivered_as_sent_or_refused_and_delivery_goes_on() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let mut herald = Herald::start(&db, "all", FAST).await;
    let api = Api::new(&herald.base, &token);
    let rx = Receiver::start().await;
    let (_, secret) = api.endpoint(json!({"url": rx.url("/acme")})).await;
    let mut globex = Bystander::new(&db, &herald).await;

    let long = "é😀".repeat(40_000); // 240,000 bytes of UTF-8, under the 256 KiB limit with the rest
    let nested = format!("{}1{}", "[".repeat(126), "]".repeat(126)); // the most a receiver's serde_json reads
    let accepted: Vec<String> = [
        r#"{"x":1.7976931348623157e308}"#,
        r#"{"x":-1.7976931348623157e308}"#,
        r#"{"x":5e-324,"y":-5e-324}"#,
        r#"{"x":1e-400}"#,
        r#"{"x":-0.0,"y":0E-7}"#,
        r#"{"i64":-9223372036854775809,"u64":18446744073709551616,"big":123456789012345678901234567890123}"#,
        r#"{"e":1E+0000000000000000000000000308,"f":2.5e-0000000000000000000000000007}"#,
        r#"{"b":1.0,"a":1,"a":2}"#,
        r#"["\u0000","\ud83d\ude00","😀","\uffff","\u00e9","𐀀","󠀁","􏿿","\n\t\"\\"]"#,
        &nested,
        &format!(r#""{long}""#),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (i, data) in accepted.iter().enumerate() {
        let (s, v) = post_raw(&api, &format!(r#"{{"id":"evt_edge_{i}","type":"edge","data":{data}}}"#)).await;
        assert_eq!(s, 202, "{:.80}: {v}", data);
    }
    let refused = [
        (r#"{"x":1e400}"#, "data.x holds a number beyond a double's range"),
        (r#"{"x":-1.8e308}"#, "beyond a double's range"),
        (r#"[1,{"x":1e99999999999999999999}]"#, "data[1].x holds a number"),
        (r#"{"s":"\ud800"}"#, "data.s holds a \\u escape that is a lone UTF-16 surrogate"),
        (r#"["\udc00"]"#, "lone UTF-16 surrogate"),
        (&format!("{}{}", "[".repeat(127), "]".repeat(127)), "deeper than 126 levels"),
    ];
    for (i, (data, says)) in refused.iter().enumerate() {
        let (s, v) = post_raw(&api, &format!(r#"{{"id":"evt_bad_{i}","type":"edge","data":{data}}}"#)).await;
        assert_eq!((s, v["error"]["code"].as_str()), (422, Some("invalid_data")), "{:.80}: {v}", data);
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert_eq!(api.get(&format!("/v1/events/evt_bad_{i}")).await.0, 404, "nothing written");
    }

    // Every accepted event is delivered with its data byte for byte, signed over those bytes,
    // and read back the same way.
    let got = rx.wait_for("/acme", accepted.len(), WAIT).await;
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    for r in &got {
        wh.verify(&r.body, &r.headers).expect("signature");
        let i: usize = r.header("webhook-id").unwrap().trim_start_matches("evt_edge_").parse().unwrap();
        assert_eq!(delivered_data(r), accepted[i], "delivered as sent");
        let (s, page) = get_raw(&api, &format!("/v1/events/evt_edge_{i}")).await;
        assert_eq!(s, 200);
        assert!(page.contains(&format!("\"data\":{}", accepted[i])), "read back as sent: {:.200}", page);
    }
    let doubled: Value = serde_json::from_slice(&got.iter().find(|r| delivered_data(r) == accepted[0]).unwrap().body)
        .expect("serde_json reads the delivered body");
    assert_eq!(doubled["data"]["x"].as_f64(), Some(f64::MAX));

    // By SQL, data is jsonb and comes out as PostgreSQL writes it: the same numbers, its digits.
    let client = db.client().await;
    client
        .batch_execute(
            "SELECT herald.publish('acme', 'edge', '{\"x\": 1.7976931348623157e308, \"y\": 5e-324}'::jsonb, id => 'evt_sql_edge')",
        )
        .await
        .unwrap();
    let stored: String = client
        .query_one("SELECT data::text FROM herald.events WHERE event_id = 'evt_sql_edge'", &[])
        .await
        .unwrap()
        .get(0);
    let got = rx.wait_for("/acme", accepted.len() + 1, WAIT).await;
    let r = got.iter().find(|r| r.header("webhook-id") == Some("evt_sql_edge")).unwrap();
    wh.verify(&r.body, &r.headers).expect("signature");
    assert_eq!(delivered_data(r), stored);
    let body: Value = serde_json::from_slice(&r.body).expect("serde_json (float_roundtrip) reads numeric's digits");
    assert_eq!(body["data"]["x"].as_f64(), Some(f64::MAX));
    assert_eq!(body["data"]["y"].as_f64(), Some(5e-324));

    still_running(&mut herald);
    globex.still_served().await;
}

#[tokio::test]
async fn deliveries_that_cannot_be_prepared_are_failed_once_and_the_rest_go_on() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let mut herald = Herald::start(&db, "all", FAST).await;
    let api = Api::new(&herald.base, &token);
    let rx = Receiver::start().await;
    let (good, _) = api.endpoint(json!({"url": rx.url("/good")})).await;
    let (bad_url, _) = api.endpoint(json!({"url": rx.url("/bad-url")})).await;
    let (bad_secret, _) = api.endpoint(json!({"url": rx.url("/bad-secret")})).await;
    let mut globex = Bystander::new(&db, &herald).await;

    // What a bad migration, a hand edit or a bug elsewhere could leave behind.
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "UPDATE herald.endpoints SET url = 'http://exa mple/' WHERE endpoint_id = '{bad_url}';
             UPDATE herald.endpoints SET secret = 'whsec_!!not base64!!' WHERE endpoint_id = '{bad_secret}';
             INSERT INTO herald.deliveries (tenant_id, delivery_id, event_id, target, endpoint_id, url,
                                            next_attempt_at, created_at, updated_at)
                  VALUES ('acme', 'dlv_ghost', 'evt_ghost', '{good}', '{good}', 'http://127.0.0.1:1/', now(), now(), now());
             BEGIN;
             SELECT herald.publish('acme', 'poison', '{{\"n\": 1}}'::jsonb, id => 'evt_unreadable');
             UPDATE herald.events SET created_at = 'infinity' WHERE tenant_id = 'acme' AND event_id = 'evt_unreadable';
             COMMIT;"
        ))
        .await
        .unwrap();
    api.publish(json!({"id": "evt_fine", "type": "fine", "data": {}})).await;

    // The good endpoint gets both events' deliveries... but one event cannot be read at all:
    // it fails everywhere, once, and so do the deliveries to the broken endpoints.
    rx.wait_for("/good", 1, WAIT).await;
    api.wait_delivery("evt_fine", Some(&good), "delivered", WAIT).await;
    let wait_failed = |event: &'static str, endpoint: String| {
        let client = &client;
        async move {
            eventually(&format!("{event} to {endpoint} failed"), WAIT, || async {
                let row = client
                    .query_one(
                        "SELECT state, attempt_count, last_error FROM herald.deliveries \
                         WHERE event_id = $1 AND endpoint_id = $2",
                        &[&event, &endpoint],
                    )
                    .await
                    .unwrap();
                (row.get::<_, String>(0) == "failed").then(|| (row.get::<_, i32>(1), row.get::<_, String>(2)))
            })
            .await
        }
    };
    for (event, endpoint, says) in [
        ("evt_unreadable", good.clone(), "its stored created_at cannot be read"),
        ("evt_fine", bad_url.clone(), "its URL no longer parses"),
        ("evt_fine", bad_secret.clone(), "its secret is unusable"),
        // A delivery whose event row is gone (deleted by hand): failed, not leased for ever.
        ("evt_ghost", good.clone(), "its stored event_type cannot be read"),
    ] {
        let (attempts, last_error) = wait_failed(event, endpoint.clone()).await;
        assert_eq!(attempts, 1, "{event} to {endpoint}: failed at once, not retried");
        assert!(last_error.starts_with("invalid_delivery: ") && last_error.contains(says), "{last_error}");
    }
    let classes: Vec<String> = client
        .query("SELECT error FROM herald.attempts WHERE event_id = 'evt_fine' AND error IS NOT NULL", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(classes, ["invalid_delivery", "invalid_delivery"]);
    assert_eq!(rx.count("/bad-secret"), 0, "nothing sent without a usable secret");
    // A refusal before sending says nothing about the receiver: the endpoints stay healthy.
    let (_, ep) = api.get(&format!("/v1/endpoints/{bad_secret}")).await;
    assert_eq!(ep["status"], "healthy");

    // The API answers a row it cannot read with a 500 in the contract's shape.
    let (s, v) = api.get("/v1/events/evt_unreadable").await;
    assert_eq!((s, v["error"]["code"].as_str()), (500, Some("internal")), "{v}");

    still_running(&mut herald);
    globex.still_served().await;
}

#[tokio::test]
async fn an_event_that_cannot_be_fanned_out_is_set_aside_and_the_rest_go_on() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let mut herald = Herald::start(&db, "all", FAST).await;
    let api = Api::new(&herald.base, &token);
    let rx = Receiver::start().await;
    api.endpoint(json!({"url": rx.url("/acme")})).await;
    let (unreadable, _) = api.endpoint(json!({"url": rx.url("/unreadable")})).await;
    let mut globex = Bystander::new(&db, &herald).await;
    let initech = Api::new(&herald.base, &db.tenant("initech").await);
    initech.endpoint(json!({"url": rx.url("/initech")})).await;

    // The database refuses this one event's deliveries (as a constraint added later might), and
    // all of initech's; one endpoint row cannot be read.
    let client = db.client().await;
    client
        .execute("UPDATE herald.endpoints SET event_types = ARRAY[NULL]::text[] WHERE endpoint_id = $1", &[&unreadable])
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE FUNCTION pg_temp_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                IF NEW.event_id = 'evt_unfannable' OR NEW.tenant_id = 'initech' THEN
                    RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON herald.deliveries FOR EACH ROW EXECUTE FUNCTION pg_temp_refuse();
             BEGIN;
             SELECT herald.publish('acme', 'x', to_jsonb(g), id => 'evt_before_' || g) FROM generate_series(1, 3) g;
             SELECT herald.publish('acme', 'x', '{}'::jsonb, id => 'evt_unfannable');
             SELECT herald.publish('acme', 'x', to_jsonb(g), id => 'evt_after_' || g) FROM generate_series(1, 3) g;
             SELECT herald.publish('initech', 'x', to_jsonb(g), id => 'evt_initech_' || g) FROM generate_series(1, 3) g;
             COMMIT;",
        )
        .await
        .unwrap();

    let got = rx.wait_for("/acme", 6, WAIT).await;
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id").unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["evt_after_1", "evt_after_2", "evt_after_3", "evt_before_1", "evt_before_2", "evt_before_3"]);
    let (s, v) = api.get("/v1/events/evt_unfannable").await;
    assert_eq!(s, 200);
    assert_eq!(v["deliveries"], json!([]));
    let why = v["fan_out_error"].as_str().expect("the reason is shown");
    assert!(why.contains("refused by a test trigger") && why.contains("23514"), "{why}");
    let pending: i64 = client
        .query_one("SELECT count(*) FROM herald.pending_events WHERE tenant_id = 'acme'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0, "the outbox queue is not held");
    assert_eq!(metric(&herald.base, "herald_fanout_failures_total").await, 1.0);
    assert_eq!(rx.count("/unreadable"), 0);
    // When every event fails, the trouble is not theirs: they stay queued, none is set aside
    // (checked after another tenant's event went through, so the poller has been by).
    globex.still_served().await;
    let initech_pending: i64 = client
        .query_one("SELECT count(*) FROM herald.pending_events WHERE tenant_id = 'initech'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(initech_pending, 3);
    // Once the cause is gone, herald.refan queues the set-aside event again.
    client.batch_execute("DROP TRIGGER refuse ON herald.deliveries").await.unwrap();
    let n: i32 = client.query_one("SELECT herald.refan('acme')", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    // initech's events go now; any that the poller set aside in the moment the trigger went
    // (some of a pass failing, some passing) are queued again the same way.
    rx.wait_for("/acme", 7, WAIT).await;
    eventually("initech's events delivered", WAIT, || async {
        client.batch_execute("SELECT herald.refan('initech')").await.unwrap();
        (rx.count("/initech") >= 3).then_some(())
    })
    .await;

    still_running(&mut herald);
    globex.still_served().await;
}

#[tokio::test]
async fn panics_are_survived_counted_and_recorded() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let mut herald = Herald::start(&db, "all", &fast_with(&[("HERALD_DEBUG_FAULT", "panic-attempt:boom")])).await;
    let api = Api::new(&herald.base, &token);
    let rx = Receiver::start().await;
    let (ep, _) = api.endpoint(json!({"url": rx.url("/acme")})).await;
    let mut globex = Bystander::new(&db, &herald).await;

    // An attempt that panics is an attempt that failed (class `internal`), retried on the
    // schedule (200ms, 400ms here) and then failed; the worker serves everyone meanwhile.
    api.publish(json!({"id": "evt_boom", "type": "boom", "data": {}})).await;
    api.publish(json!({"id": "evt_calm", "type": "calm", "data": {}})).await;
    api.wait_delivery("evt_calm", Some(&ep), "delivered", WAIT).await;
    globex.still_served().await;
    let d = api.wait_delivery("evt_boom", Some(&ep), "failed", WAIT).await;
    assert_eq!(d["attempt_count"], 3);
    assert!(d["last_error"].as_str().unwrap().starts_with("internal: Herald failed during this attempt"), "{d}");
    assert_eq!(rx.count("/acme"), 1, "the panicking attempts sent nothing");
    assert_eq!(metric(&herald.base, "herald_panics_total{component=\"worker\"}").await, 3.0);

    // A handler that panics on a row answers 500 in the contract's shape; the next request is
    // served as usual.
    // (A token whose `created_at` chrono cannot hold: the token list reads it with `get`.)
    db.client()
        .await
        .batch_execute(
            "INSERT INTO herald.api_tokens (tenant_id, token_hash, created_at, token_id)
             VALUES ('acme', sha256('unreadable'), 'infinity', 'tok_00000000000000000000000000')",
        )
        .await
        .unwrap();
    let (s, v) = api.get("/v1/tokens").await;
    assert_eq!((s, v["error"]["code"].as_str()), (500, Some("internal")), "{v}");
    assert_eq!(metric(&herald.base, "herald_panics_total{component=\"api\"}").await, 1.0);
    assert_eq!(api.get("/v1/events/evt_calm").await.0, 200);

    still_running(&mut herald);
    globex.still_served().await;
}

#[tokio::test]
async fn a_worker_loop_that_panics_is_started_again_and_the_poison_is_abandoned() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let mut herald = Herald::start(&db, "all", &fast_with(&[("HERALD_DEBUG_FAULT", "panic-claim:boom")])).await;
    let api = Api::new(&herald.base, &token);
    let rx = Receiver::start().await;
    let (ep, _) = api.endpoint(json!({"url": rx.url("/acme")})).await;
    let mut globex = Bystander::new(&db, &herald).await;

    api.publish(json!({"id": "evt_boom", "type": "boom", "data": {}})).await;
    // Each claim of it panics the claim loop, which starts again; its lease (3 s here) then
    // expires and it is claimed again, until 3 leases in a row were lost: then it fails as
    // abandoned, before anything can panic.
    let d = api.wait_delivery("evt_boom", Some(&ep), "failed", Duration::from_secs(60)).await;
    assert!(
        d["last_error"].as_str().unwrap().starts_with("abandoned: its last 3 leases expired with no result"),
        "{d}"
    );
    assert_eq!(d["attempt_count"], 4, "three claims that never came back, and the one that failed it");
    assert!(metric(&herald.base, "herald_panics_total{component=\"worker\"}").await >= 3.0);
    assert_eq!(rx.count("/acme"), 0);

    api.publish(json!({"id": "evt_calm", "type": "calm", "data": {}})).await;
    api.wait_delivery("evt_calm", Some(&ep), "delivered", WAIT).await;
    still_running(&mut herald);
    globex.still_served().await;
}

#[tokio::test]
async fn a_process_that_dies_on_one_delivery_comes_back_and_the_crash_loop_ends() {
    let db = TestDb::new().await;
    let acme = db.tenant("acme").await;
    let globex = db.tenant("globex").await;
    let rx = Receiver::start().await;
    let env = fast_with(&[("HERALD_DEBUG_FAULT", "abort-claim:crash")]);
    let start = || {
        let mut cmd = Command::new(BIN);
        cmd.arg("all")
            .env("HERALD_DATABASE_URL", &db.url)
            .env("HERALD_LISTEN", format!("127.0.0.1:{}", support::free_port()))
            .env("HERALD_ALLOW_PRIVATE_TARGETS", "127.0.0.0/8")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("start herald")
    };
    // Endpoints and events straight into the database: the process may be down when they land.
    {
        let first = Herald::start(&db, "all", FAST).await;
        for (token, path) in [(&acme, "/acme"), (&globex, "/globex")] {
            Api::new(&first.base, token).endpoint(json!({"url": rx.url(path)})).await;
        }
    }
    let client = db.client().await;
    client.batch_execute("SELECT herald.publish('acme', 'crash', '{}'::jsonb, id => 'evt_crash')").await.unwrap();

    // A supervisor's part: start it again each time it dies, at most a few times.
    let mut deaths = 0;
    let mut sent = 0;
    let state = || async {
        client
            .query_one("SELECT state, last_error FROM herald.deliveries WHERE event_id = 'evt_crash'", &[])
            .await
            .ok()
            .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1)))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut child = start();
    loop {
        assert!(std::time::Instant::now() < deadline, "the crash loop did not end");
        if let Some((s, last_error)) = state().await {
            if s == "failed" {
                assert!(last_error.unwrap().starts_with("abandoned: "));
                break;
            }
        }
        if child.try_wait().unwrap().is_some() {
            deaths += 1;
            assert!(deaths <= 3, "it died more often than lost leases allow");
            // Between deaths it serves the others.
            sent += 1;
            client
                .execute("SELECT herald.publish('globex', 'ping', to_jsonb($1::int))", &[&(sent as i32)])
                .await
                .unwrap();
            child = start();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(deaths, 3, "one death per lease it may lose (3), then it is abandoned");
    sent += 1;
    client.execute("SELECT herald.publish('globex', 'ping', to_jsonb($1::int))", &[&(sent as i32)]).await.unwrap();
    rx.wait_for("/globex", sent, WAIT).await;
    assert!(child.try_wait().unwrap().is_none(), "still running once the poison is out of the way");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(rx.count("/acme"), 0);
}
