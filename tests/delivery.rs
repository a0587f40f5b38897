//! Durable delivery end to end: the real binary, real receivers on 127.0.0.1, signatures checked
//! by the `standardwebhooks` crate (an implementation no one in this project wrote).

mod support;

use std::time::Duration;

use herald_testkit::{eventually, Behaviour, Receiver, TestDb};
use serde_json::json;
use support::{Api, Herald, FAST};

const WAIT: Duration = Duration::from_secs(30);

fn verify_standard(secret: &str, r: &herald_testkit::Received) {
    let wh = standardwebhooks::Webhook::new(secret).expect("secret");
    wh.verify(&r.body, &r.headers).unwrap_or_else(|e| panic!("standardwebhooks refused the signature: {e:?}"));
}

#[tokio::test]
async fn delivers_signed_to_each_subscriber_and_the_callback() {
    let (_db, _herald, api) = support::herald_all(FAST).await;
    let rx = Receiver::start().await;
    let (meetings, meetings_secret) =
        api.endpoint(json!({"url": rx.url("/meetings"), "event_types": ["meeting.*"]})).await;
    let (runs, _) = api.endpoint(json!({"url": rx.url("/runs"), "event_types": ["run.finished"]})).await;
    let (hex, hex_secret) = api.endpoint(json!({"url": rx.url("/hex"), "signature_scheme": "hmac-sha256-hex"})).await;
    let callback_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    let (s, v) = api
        .http
        .post(format!("{}/v1/events", api.base))
        .bearer_auth(&api.token)
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .header("tracestate", "vendor=abc")
        .json(&json!({"id": "evt_meet_1", "type": "meeting.completed", "data": {"meeting_id": "m1", "minutes": 42},
                      "callback_url": rx.url("/callback"), "callback_secret": callback_secret}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(s, 202, "{:?}", v.text().await);

    let got = rx.wait_for("/meetings", 1, WAIT).await;
    let r = &got[0];
    verify_standard(&meetings_secret, r);
    assert_eq!(r.header("webhook-id"), Some("evt_meet_1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("Herald/"));
    // Without OpenTelemetry, the trace context is passed on as it came (tests/otel.rs: with).
    assert_eq!(r.header("traceparent"), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_eq!(r.header("tracestate"), Some("vendor=abc"));
    let body = r.json();
    assert_eq!(body["id"], "evt_meet_1");
    assert_eq!(body["type"], "meeting.completed");
    assert_eq!(body["data"], json!({"meeting_id": "m1", "minutes": 42}));
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));

    let cb = rx.wait_for("/callback", 1, WAIT).await;
    verify_standard(callback_secret, &cb[0]);

    // The hex scheme: GitHub style, and still webhook-id and webhook-timestamp.
    let h = &rx.wait_for("/hex", 1, WAIT).await[0];
    assert!(h.header("webhook-signature").is_none());
    assert!(h.header("webhook-timestamp").is_some());
    // Keyed with the secret as written (GitHub's way), whsec_ prefix and all.
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(hex_secret.as_bytes()).unwrap();
    mac.update(&h.body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(h.header("x-webhook-signature"), Some(format!("sha256={expected}").as_str()));

    // The event's page shows every delivery delivered; the runs endpoint got nothing.
    api.wait_delivery("evt_meet_1", Some(&meetings), "delivered", WAIT).await;
    api.wait_delivery("evt_meet_1", Some(&hex), "delivered", WAIT).await;
    api.wait_delivery("evt_meet_1", None, "delivered", WAIT).await;
    let (_, event) = api.get("/v1/events/evt_meet_1").await;
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 3, "{event}");
    assert!(event["deliveries"].as_array().unwrap().iter().all(|d| d["endpoint_id"] != runs.as_str()));
    assert_eq!(rx.count("/runs"), 0);
    let (_, attempts) = api.get("/v1/events/evt_meet_1/attempts").await;
    let attempts = attempts["data"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a["status_code"] == 200 && a["attempt"] == 1 && a["error"].is_null()));
    assert_eq!(attempts[0]["response_excerpt"], "ok");

    // What dashboards scrape.
    // (Counted just after each commit: poll until the last one is in.)
    let metrics = eventually("the metrics to count every delivery", WAIT, || async {
        let m = api.http.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
        m.lines().any(|l| l == "herald_deliveries_finished_total{state=\"delivered\"} 3").then_some(m)
    })
    .await;
    for line in [
        "herald_attempts_total{result=\"delivered\"} 3",
        "herald_deliveries_finished_total{state=\"delivered\"} 3",
        "herald_events_published_total{door=\"http\"} 1",
        "herald_deliveries_created_total 3",
    ] {
        assert!(metrics.lines().any(|l| l == line), "/metrics lacks `{line}`:\n{metrics}");
    }
    assert!(metrics.contains("herald_delivery_lag_seconds_bucket"));
}

#[tokio::test]
async fn failing_endpoint_retries_fails_then_recovers() {
    let (_db, _herald, api) = support::herald_all(FAST).await;
    let rx = Receiver::start().await;
    rx.set("/flaky", Behaviour::Status(500, None));
    let (flaky, _) = api
        .endpoint(json!({"url": rx.url("/flaky"), "event_types": ["order.*"], "retry_schedule": ["100ms", "200ms"]}))
        .await;
    let (_ops, ops_secret) = api.endpoint(json!({"url": rx.url("/ops"), "event_types": ["endpoint.*"]})).await;

    let id = api.publish(json!({"id": "evt_order_1", "type": "order.paid", "data": {"n": 1}})).await;
    // A schedule of 2 steps allows 3 attempts; then the delivery fails.
    let failed = api.wait_delivery(&id, Some(&flaky), "failed", WAIT).await;
    assert_eq!(failed["attempt_count"], 3);
    assert_eq!(failed["last_status_code"], 500);
    assert_eq!(rx.count("/flaky"), 3);
    let attempts = rx.requests("/flaky");
    assert!(
        attempts.iter().all(|a| a.header("webhook-id") == Some("evt_order_1")),
        "the same webhook-id on every attempt"
    );
    // Retries are spaced by the schedule (each step measured from the end of the failed attempt, ±10 %).
    assert!(attempts[1].at - attempts[0].at >= Duration::from_millis(90));
    assert!(attempts[2].at - attempts[1].at >= Duration::from_millis(180));

    let (_, ep) = api.get(&format!("/v1/endpoints/{flaky}")).await;
    assert_eq!(ep["status"], "failing");
    let note = &rx.wait_for("/ops", 1, WAIT).await[0];
    verify_standard(&ops_secret, note);
    let note = note.json();
    assert_eq!(note["type"], "endpoint.failing");
    assert_eq!(note["data"]["endpoint_id"], flaky.as_str());
    assert_eq!(note["data"]["event_id"], "evt_order_1");
    assert_eq!(note["data"]["url"], rx.url("/flaky"));
    assert!(note["data"]["delivery_id"].as_str().unwrap().starts_with("dlv_"));
    assert!(note["data"]["last_error"].as_str().unwrap().contains("500"));

    let (_, attempts) = api.get(&format!("/v1/events/{id}/attempts")).await;
    let attempts = attempts["data"].as_array().unwrap();
    assert_eq!(attempts.iter().map(|a| a["attempt"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(attempts.iter().all(|a| a["error"] == "http_status" && a["status_code"] == 500));

    // The receiver recovers; a manual retry delivers with the same webhook-id and heals the endpoint.
    rx.set("/flaky", Behaviour::Ok);
    let (s, v) = api.post(&format!("/v1/deliveries/{}/retry", failed["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(s, 202, "{v}");
    api.wait_delivery(&id, Some(&flaky), "delivered", WAIT).await;
    assert_eq!(rx.requests("/flaky").last().unwrap().header("webhook-id"), Some("evt_order_1"));
    let recovered = rx.wait_for("/ops", 2, WAIT).await;
    assert_eq!(recovered[1].json()["type"], "endpoint.recovered");
    assert_eq!(recovered[1].json()["data"], json!({"endpoint_id": flaky, "url": rx.url("/flaky")}));
    let (_, ep) = api.get(&format!("/v1/endpoints/{flaky}")).await;
    assert_eq!(ep["status"], "healthy");

    // Replay (a job, which `herald all` runs) sends the same event again, with the same id.
    let (s, v) = api.post(&format!("/v1/endpoints/{flaky}/replay"), json!({"since": "2000-01-01T00:00:00Z"})).await;
    assert_eq!((s, v["state"].as_str()), (202, Some("running")), "{v}");
    let replay = v["id"].as_str().unwrap().to_string();
    let done = eventually("the replay to be done", WAIT, || async {
        let (_, r) = api.get(&format!("/v1/replays/{replay}")).await;
        (r["state"] != "running").then_some(r)
    })
    .await;
    assert_eq!((done["state"].as_str(), done["deliveries_created"].as_i64()), (Some("done"), Some(1)), "{done}");
    rx.wait_for("/flaky", 5, WAIT).await;
    assert_eq!(rx.requests("/flaky")[4].header("webhook-id"), Some("evt_order_1"));
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_enable_brings_it_back() {
    let (db, _herald, api) = support::herald_all(FAST).await;
    let rx = Receiver::start().await;
    rx.set("/gone", Behaviour::Status(410, None));
    let (gone, _) = api.endpoint(json!({"url": rx.url("/gone"), "event_types": ["a"]})).await;
    api.endpoint(json!({"url": rx.url("/ops"), "event_types": ["endpoint.disabled"]})).await;
    let id = api.publish(json!({"type": "a", "data": 1})).await;
    let d = api.wait_delivery(&id, Some(&gone), "failed", WAIT).await;
    assert_eq!(
        (d["attempt_count"].as_i64(), d["last_status_code"].as_i64()),
        (Some(1), Some(410)),
        "no retry after 410"
    );
    let note = rx.wait_for("/ops", 1, WAIT).await[0].json();
    assert_eq!(note["type"], "endpoint.disabled");
    assert_eq!(note["data"]["endpoint_id"], gone.as_str());
    assert!(note["data"]["reason"].as_str().unwrap().contains("410"));
    let (_, ep) = api.get(&format!("/v1/endpoints/{gone}")).await;
    assert_eq!(ep["status"], "disabled");

    // While disabled it gets no new deliveries; enabled again, it does.
    let second = api.publish(json!({"type": "a", "data": 2})).await;
    eventually("the second event to be fanned out", WAIT, || async {
        let pending: i64 = db
            .client()
            .await
            .query_one("SELECT count(*) FROM herald.pending_events WHERE event_id = $1", &[&second])
            .await
            .unwrap()
            .get(0);
        (pending == 0).then_some(())
    })
    .await;
    let (_, e) = api.get(&format!("/v1/events/{second}")).await;
    assert_eq!(e["deliveries"], json!([]), "a disabled endpoint gets no new deliveries");
    rx.set("/gone", Behaviour::Ok);
    let (s, ep) = api.post(&format!("/v1/endpoints/{gone}/enable"), json!({})).await;
    assert_eq!((s, ep["status"].as_str()), (200, Some("healthy")));
    let third = api.publish(json!({"type": "a", "data": 3})).await;
    api.wait_delivery(&third, Some(&gone), "delivered", WAIT).await;
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_longest_step() {
    let (_db, _herald, api) = support::herald_all(FAST).await;
    let rx = Receiver::start().await;
    rx.set("/busy", Behaviour::Status(429, Some("1".into())));
    let (busy, _) = api.endpoint(json!({"url": rx.url("/busy"), "retry_schedule": ["100ms", "3s"]})).await;
    let id = api.publish(json!({"type": "t", "data": null})).await;
    let two = rx.wait_for("/busy", 2, WAIT).await;
    rx.set("/busy", Behaviour::Ok);
    let gap = two[1].at - two[0].at;
    assert!(gap >= Duration::from_millis(950), "Retry-After: 1 was not honoured: {gap:?}");
    // Not the longest step (3s) either: Retry-After replaces the step, capped, not raised to the cap.
    assert!(gap < Duration::from_millis(2500), "Retry-After: 1 should give about 1s: {gap:?}");
    api.wait_delivery(&id, Some(&busy), "delivered", WAIT).await;
}

#[tokio::test]
async fn loopback_targets_are_refused_at_connection_unless_allowed() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    // The API allows loopback (so the endpoints can be made); the worker does not.
    let api_proc = Herald::start(&db, "producer", FAST).await;
    let poller = Herald::start(&db, "poller", FAST).await;
    let worker = Herald::start_with(&db, "worker", FAST, false).await;
    let api = Api::new(&api_proc.base, &token);
    let rx = Receiver::start().await;
    let port = rx.base.rsplit(':').next().unwrap().to_string();
    let (by_name, _) = api.endpoint(json!({"url": format!("http://localhost:{port}/named")})).await;
    let (by_ip, _) = api.endpoint(json!({"url": rx.url("/literal")})).await;
    let id = api.publish(json!({"type": "t", "data": 1})).await;
    eventually("both deliveries to be attempted", WAIT, || async {
        let (_, v) = api.get(&format!("/v1/events/{id}/attempts")).await;
        let a = v["data"].as_array().cloned().unwrap_or_default();
        (a.len() >= 2).then_some(a)
    })
    .await;
    let (_, v) = api.get(&format!("/v1/events/{id}/attempts")).await;
    for a in v["data"].as_array().unwrap() {
        assert_eq!(a["error"], "blocked_target", "{a}");
        assert!(a["status_code"].is_null());
    }
    let (_, e) = api.get(&format!("/v1/events/{id}")).await;
    for d in e["deliveries"].as_array().unwrap() {
        assert!(d["last_error"].as_str().unwrap().contains("HERALD_ALLOW_PRIVATE_TARGETS"), "{d}");
    }
    assert_eq!(rx.count("/named") + rx.count("/literal"), 0, "nothing reached the receiver");
    let _ = (by_name, by_ip, poller, worker);
}

#[tokio::test]
async fn an_events_retry_schedule_is_its_callbacks_alone_and_odd_answers_are_stored() {
    let (_db, _herald, api) = support::herald_all(FAST).await;
    let rx = Receiver::start().await;
    rx.set("/ep", Behaviour::Status(500, None));
    rx.set("/cb", Behaviour::Status(503, None));
    rx.set("/nul", Behaviour::Raw(200, b"ok\0but a NUL"));
    let (ep, _) = api.endpoint(json!({"url": rx.url("/ep"), "event_types": ["t"]})).await;
    let (nul, _) = api.endpoint(json!({"url": rx.url("/nul"), "event_types": ["t"]})).await;
    let id =
        api.publish(json!({"type": "t", "data": 1, "callback_url": rx.url("/cb"), "retry_schedule": ["100ms"]})).await;
    // The callback follows the event's one-step schedule (2 attempts); the endpoint the global
    // schedule of this test run (200ms, 400ms: 3 attempts).
    let cb = api.wait_delivery(&id, None, "failed", WAIT).await;
    assert_eq!(cb["attempt_count"], 2);
    let e = api.wait_delivery(&id, Some(&ep), "failed", WAIT).await;
    assert_eq!(e["attempt_count"], 3);
    // A NUL byte in a receiver's answer is stored (replaced), never a reason to stop recording.
    api.wait_delivery(&id, Some(&nul), "delivered", WAIT).await;
    let (_, attempts) = api.get(&format!("/v1/events/{id}/attempts")).await;
    let excerpt = attempts["data"].as_array().unwrap().iter().find(|a| a["status_code"] == 200).unwrap()
        ["response_excerpt"]
        .clone();
    assert_eq!(excerpt, "ok\u{FFFD}but a NUL");
}

#[tokio::test]
async fn after_rotate_secret_both_secrets_sign_during_the_overlap() {
    let (_db, _herald, api) = support::herald_all(FAST).await;
    let rx = Receiver::start().await;
    let (ep, old) = api.endpoint(json!({"url": rx.url("/rot")})).await;
    let (s, rotated) = api.post(&format!("/v1/endpoints/{ep}/rotate-secret"), json!({})).await;
    assert_eq!(s, 200);
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    api.publish(json!({"id": "evt_rot", "type": "t", "data": {}})).await;
    let r = &rx.wait_for("/rot", 1, WAIT).await[0];
    let sig = r.header("webhook-signature").unwrap();
    assert_eq!(sig.split(' ').count(), 2, "two signatures while the old secret is in its overlap: {sig}");
    // A receiver that has either secret verifies it: the one not yet updated, and the one updated.
    verify_standard(&old, r);
    verify_standard(&new, r);
}

static BIG: [u8; 10_000] = [b'x'; 10_000];

#[tokio::test]
async fn redirects_are_not_followed_answers_are_cut_at_4_kib_and_silence_times_out() {
    let (_db, _herald, api) = support::herald_all(FAST).await;
    let rx = Receiver::start().await;
    rx.set("/moved", Behaviour::Redirect(rx.url("/elsewhere")));
    rx.set("/big", Behaviour::Raw(200, &BIG));
    rx.set("/silent", Behaviour::Hang);
    let (moved, _) =
        api.endpoint(json!({"url": rx.url("/moved"), "event_types": ["t"], "retry_schedule": ["1s"]})).await;
    let (big, _) = api.endpoint(json!({"url": rx.url("/big"), "event_types": ["t"]})).await;
    let (silent, _) =
        api.endpoint(json!({"url": rx.url("/silent"), "event_types": ["t"], "retry_schedule": ["5s"]})).await;
    let id = api.publish(json!({"type": "t", "data": 1})).await;

    api.wait_delivery(&id, Some(&big), "delivered", WAIT).await;
    let (_, event) = api.get(&format!("/v1/events/{id}")).await;
    // Each of the three deliveries has its first attempt logged (the redirected one may have
    // a second by then: take the first of each).
    let attempts = eventually("a first attempt of each delivery", WAIT, || async {
        let (_, v) = api.get(&format!("/v1/events/{id}/attempts")).await;
        let a = v["data"].as_array().cloned().unwrap_or_default();
        let all = event["deliveries"].as_array().unwrap().iter().all(|d| a.iter().any(|x| x["delivery_id"] == d["id"]));
        all.then_some(a)
    })
    .await;
    let delivery_of = |endpoint: &str| {
        event["deliveries"].as_array().unwrap().iter().find(|d| d["endpoint_id"] == endpoint).unwrap()["id"].clone()
    };
    let attempt_of =
        |endpoint: &str| attempts.iter().find(|a| a["delivery_id"] == delivery_of(endpoint)).unwrap().clone();

    let a = attempt_of(&moved);
    assert_eq!(
        (a["status_code"].as_i64(), a["error"].as_str()),
        (Some(302), Some("http_status")),
        "a 3xx is a failed attempt"
    );
    assert_eq!(rx.count("/elsewhere"), 0, "the redirect was not followed");
    let a = attempt_of(&big);
    assert_eq!(a["response_excerpt"].as_str().unwrap().len(), 4096, "at most 4 KiB of an answer is kept");
    let a = attempt_of(&silent);
    assert_eq!((a["status_code"].as_i64(), a["error"].as_str()), (None, Some("timeout")), "{a}");
    let ms = a["duration_ms"].as_i64().unwrap();
    assert!((900..3000).contains(&ms), "the attempt ends at HERALD_ATTEMPT_TIMEOUT (1s here), took {ms} ms");
}

#[tokio::test]
async fn a_manual_retry_says_why_it_is_refused() {
    let env = support::fast_with(&[("HERALD_ATTEMPT_TIMEOUT", "30s"), ("HERALD_LEASE", "60s")]);
    let (_db, _herald, api) = support::herald_all(&env).await;
    let rx = Receiver::start().await;
    rx.set("/hang", Behaviour::Hang);
    let (ep, _) = api.endpoint(json!({"url": rx.url("/hang")})).await;
    let id = api.publish(json!({"type": "t", "data": 1})).await;
    let d = api.wait_delivery(&id, Some(&ep), "delivering", WAIT).await;
    let retry = format!("/v1/deliveries/{}/retry", d["id"].as_str().unwrap());

    let (s, v) = api.post(&retry, json!({})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("delivery_in_flight")), "{v}");

    // Deleting the endpoint cancels its deliveries, the one being attempted too.
    let r = api.http.delete(format!("{}/v1/endpoints/{ep}", api.base)).bearer_auth(&api.token).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    api.wait_delivery(&id, Some(&ep), "cancelled", WAIT).await;
    let (s, v) = api.post(&retry, json!({})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("delivery_not_retryable")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("cancelled"), "{v}");

    // An id Herald never issued, well-formed or not, is unknown.
    for unknown in ["dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV", "dlv_nope", "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV"] {
        let (s, v) = api.post(&format!("/v1/deliveries/{unknown}/retry"), json!({})).await;
        assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")), "{unknown}: {v}");
    }
}

/// A receiver that answers `200` with a `content-length` of 1,000 and closes after 5 bytes.
async fn cut_off_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cut", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            // The whole request first, so that the answer is read.
            support::read_request(&mut s).await;
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{\"ok\"").await;
            let _ = s.shutdown().await;
        }
    });
    (url, served)
}

#[tokio::test]
async fn a_2xx_whose_body_breaks_off_is_delivered_once() {
    let (_db, _herald, api) = support::herald_all(FAST).await;
    let (url, served) = cut_off_receiver().await;
    let (ep, _) = api.endpoint(json!({"url": url})).await;
    let id = api.publish(json!({"type": "t", "data": 1})).await;
    let d = api.wait_delivery(&id, Some(&ep), "delivered", WAIT).await;
    assert_eq!((d["attempt_count"].as_i64(), d["last_status_code"].as_i64()), (Some(1), Some(200)), "{d}");
    let (_, attempts) = api.get(&format!("/v1/events/{id}/attempts")).await;
    let a = &attempts["data"][0];
    assert_eq!((a["error"].is_null(), a["response_excerpt"].as_str()), (true, Some("{\"ok\"")), "{a}");
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1, "not sent again");
}

#[tokio::test]
async fn a_manual_retry_of_a_waiting_delivery_sends_it_now() {
    let env = support::fast_with(&[("HERALD_RETRY_SCHEDULE", "1h")]);
    let (_db, _herald, api) = support::herald_all(&env).await;
    let rx = Receiver::start().await;
    rx.set("/later", Behaviour::Status(500, None));
    let (ep, _) = api.endpoint(json!({"url": rx.url("/later")})).await;
    let id = api.publish(json!({"type": "t", "data": 1})).await;
    rx.wait_for("/later", 1, WAIT).await;
    // Failed once, waiting an hour for its next attempt.
    let d = api.wait_delivery(&id, Some(&ep), "pending", WAIT).await;
    assert_eq!(d["attempt_count"], 1, "{d}");
    rx.set("/later", Behaviour::Ok);
    let (s, v) = api.post(&format!("/v1/deliveries/{}/retry", d["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(s, 202, "{v}");
    api.wait_delivery(&id, Some(&ep), "delivered", WAIT).await;
}

#[tokio::test]
async fn replay_leaves_events_still_in_the_outbox_to_the_poller() {
    // A producer alone: what is published by SQL waits in the outbox.
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let producer = Herald::start(&db, "producer", FAST).await;
    let api = Api::new(&producer.base, &token);
    let rx = Receiver::start().await;
    let (ep, _) = api.endpoint(json!({"url": rx.url("/r")})).await;
    db.client().await.execute("SELECT herald.publish('acme', 't', '{}'::jsonb, id => 'waiting')", &[]).await.unwrap();
    let (s, v) = api.post(&format!("/v1/endpoints/{ep}/replay"), json!({"since": "2000-01-01T00:00:00Z"})).await;
    assert_eq!((s, v["state"].as_str()), (202, Some("running")), "a producer only stores the job: {v}");
    // The poller runs both the fan-out and the replay, in either order: a replay that comes
    // first leaves the event still in the outbox alone, one that comes after delivers it again.
    // Either way the fan-out is not refused by a delivery the replay made.
    let _poller = Herald::start(&db, "poller", FAST).await;
    let _worker = Herald::start(&db, "worker", FAST).await;
    let replay = v["id"].as_str().unwrap().to_string();
    eventually("the replay to be done", WAIT, || async {
        let (_, r) = api.get(&format!("/v1/replays/{replay}")).await;
        (r["state"] == "done").then_some(())
    })
    .await;
    api.wait_delivery("waiting", Some(&ep), "delivered", WAIT).await;
    let (_, e) = api.get("/v1/events/waiting").await;
    assert!(e["fan_out_error"].is_null(), "fanned out, not set aside: {e}");
    assert_eq!(e["deliveries"].as_array().map(Vec::len), Some(1), "{e}");
    assert!(!rx.requests("/r").is_empty());
}

/// `POST /v1/endpoints/{id}/test` sends a signed `herald.test` event to that endpoint alone, and
/// `GET /v1/deliveries/{id}` follows its delivery; another tenant sees neither.
#[tokio::test]
async fn an_endpoint_test_goes_to_that_endpoint_alone_and_its_delivery_can_be_read() {
    let (db, _herald, api) = support::herald_all(FAST).await;
    let rx = Receiver::start().await;
    let (tested, secret) = api.endpoint(json!({"url": rx.url("/tested"), "event_types": ["only.this"]})).await;
    api.endpoint(json!({"url": rx.url("/other")})).await;
    let (s, v) = api.post(&format!("/v1/endpoints/{tested}/test"), json!({})).await;
    assert_eq!(s, 202, "{v}");
    let (event, delivery) =
        (v["event_id"].as_str().unwrap().to_string(), v["delivery_id"].as_str().unwrap().to_string());
    let r = &rx.wait_for("/tested", 1, WAIT).await[0];
    verify_standard(&secret, r);
    assert_eq!(r.json()["type"], "herald.test");
    assert_eq!(r.json()["data"]["endpoint_id"], tested.as_str());
    let d = herald_testkit::eventually("the test delivery delivered", WAIT, || async {
        let (s, d) = api.get(&format!("/v1/deliveries/{delivery}")).await;
        (s == 200 && d["state"] == "delivered").then_some(d)
    })
    .await;
    assert_eq!(
        (d["event_id"].as_str(), d["endpoint_id"].as_str()),
        (Some(event.as_str()), Some(tested.as_str())),
        "{d}"
    );
    assert_eq!(d["attempt_count"], 1);
    let (_, e) = api.get(&format!("/v1/events/{event}")).await;
    assert_eq!(e["deliveries"].as_array().unwrap().len(), 1, "to that endpoint alone: {e}");
    assert_eq!(rx.count("/other"), 0);
    // Another tenant: not found, both.
    let other = support::Api::new(&api.base, &db.tenant("globex").await);
    assert_eq!(other.get(&format!("/v1/deliveries/{delivery}")).await.0, 404);
    assert_eq!(other.post(&format!("/v1/endpoints/{tested}/test"), json!({})).await.0, 404);
    // A disabled endpoint is not tested.
    api.post(&format!("/v1/endpoints/{tested}/disable"), json!({})).await;
    let (s, v) = api.post(&format!("/v1/endpoints/{tested}/test"), json!({})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("endpoint_disabled")), "{v}");
}
