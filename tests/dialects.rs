//! The receivers' dialects, set per endpoint through the API and checked against receivers
//! that already exist: a HumanConnection/GitHub-style hex signature keyed with the secret as
//! written, verified by Python's `hmac` (an implementation no one in this project wrote); the
//! endpoint's own headers and timeout; HumanLayer-shaped bodies read by an agent handler in
//! that style, for both kinds of operation.

mod support;

use std::process::Command;
use std::time::Duration;

use herald_testkit::{eventually, Behaviour, Receiver};
use serde_json::{json, Value};
use support::{fast_with, Api, Herald};

const WAIT: Duration = Duration::from_secs(30);

/// What a HumanConnection receiver does, in Python: `sha256=` + hex HMAC-SHA256 of the raw body
/// keyed with the secret's bytes, compared whole in constant time.
fn python_verifies(secret: &str, header: &str, body: &[u8]) -> bool {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join(format!("dialect-body-{}-{}", std::process::id(), rand::random::<u32>()));
    std::fs::write(&file, body).unwrap();
    let script = "import hmac, hashlib, sys\n\
                  secret, header, path = sys.argv[1], sys.argv[2], sys.argv[3]\n\
                  body = open(path, 'rb').read()\n\
                  want = 'sha256=' + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()\n\
                  sys.exit(0 if hmac.compare_digest(header, want) else 1)\n";
    let ok = Command::new("python3").args(["-c", script, secret, header]).arg(&file).status().unwrap().success();
    let _ = std::fs::remove_file(&file);
    ok
}

async fn start(log: &std::path::Path) -> (herald_testkit::TestDb, Herald, Api) {
    let db = herald_testkit::TestDb::new().await;
    let token = db.tenant("acme").await;
    let env = fast_with(&[("HERALD_ATTEMPT_TIMEOUT", "10s"), ("HERALD_LEASE", "30s")]);
    let herald = Herald::start_logged(&db, "all", &env, log).await;
    let api = Api::new(&herald.base, &token);
    (db, herald, api)
}

#[tokio::test]
async fn a_humanconnection_receiver_verifies_and_gets_its_header_in_its_time() {
    let log =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dialects-{}.log", std::process::id()));
    let (_db, _herald, api) = start(&log).await;
    let rx = Receiver::start().await;
    let secret = "whsec_your_signing_secret";
    let api_key = "hc-key-0123456789-abcdef";
    let (s, ep) = api
        .post(
            "/v1/endpoints",
            json!({"url": rx.url("/hc"), "signature_scheme": "hmac-sha256-hex", "secret": secret,
                   "signature_header": "X-HumanConnection-Signature", "headers": {"X-Api-Key": api_key},
                   "timeout": "2s"}),
        )
        .await;
    assert_eq!(s, 201, "{ep}");
    assert_eq!(ep["secret"], secret);
    assert_eq!(ep["signature_header"], "x-humanconnection-signature");
    assert_eq!(ep["headers"], json!({"x-api-key": "****cdef"}), "header values are never answered");
    assert_eq!(ep["timeout"], "2s");
    let id = ep["id"].as_str().unwrap().to_string();

    api.publish(json!({"id": "evt_hc_1", "type": "approval_completed", "data": {"n": 1}})).await;
    let got = rx.wait_for("/hc", 1, WAIT).await;
    let r = &got[0];
    let sig = r.header("x-humanconnection-signature").expect("the signature in the endpoint's header");
    assert!(python_verifies(secret, sig, &r.body), "{sig}");
    assert!(!python_verifies("whsec_another_secret_value", sig, &r.body), "the check can fail");
    assert!(r.header("x-webhook-signature").is_none() && r.header("webhook-signature").is_none());
    assert_eq!(r.header("x-api-key"), Some(api_key));

    // A rotation with a secret of the caller's: one signature in the header, the new secret's.
    let new_secret = "a brand new secret, with spaces";
    let (s, rotated) = api.post(&format!("/v1/endpoints/{id}/rotate-secret"), json!({"secret": new_secret})).await;
    assert_eq!((s, rotated["secret"].as_str()), (200, Some(new_secret)), "{rotated}");
    api.publish(json!({"id": "evt_hc_2", "type": "approval_completed", "data": {"n": 2}})).await;
    let r = rx.wait_for("/hc", 2, WAIT).await.into_iter().find(|r| r.json()["id"] == "evt_hc_2").unwrap();
    let sig = r.header("x-humanconnection-signature").unwrap();
    assert!(python_verifies(new_secret, sig, &r.body) && !sig.contains(' '), "{sig}");

    // The endpoint's timeout, not the global 10 s: a receiver that takes 4 s times out in 2 s.
    rx.set("/hc", Behaviour::Slow(Duration::from_secs(4)));
    api.publish(json!({"id": "evt_hc_3", "type": "approval_completed", "data": {"n": 3}})).await;
    let attempt = eventually("a timed-out attempt", WAIT, || async {
        let (_, v) = api.get("/v1/events/evt_hc_3/attempts").await;
        v["data"].as_array().and_then(|a| a.first().cloned()).filter(|a| a["error"] == "timeout")
    })
    .await;
    let ms = attempt["duration_ms"].as_i64().unwrap();
    assert!((1_900..3_900).contains(&ms), "the attempt lasted {ms} ms: {attempt}");

    // PATCH: a scheme whose secret the endpoint does not have is refused, and nothing changes.
    let (s, v) = api.patch(&format!("/v1/endpoints/{id}"), json!({"signature_scheme": "standard-webhooks"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("invalid_secret")), "{v}");
    let (_, now) = api.get(&format!("/v1/endpoints/{id}")).await;
    assert_eq!(now["signature_scheme"], "hmac-sha256-hex");
    // Herald's own headers and the signature's are not an endpoint's to set.
    for headers in [json!({"Webhook-Id": "x"}), json!({"X-HumanConnection-Signature": "x"}), json!({"Connection": "x"})]
    {
        let (s, v) = api.patch(&format!("/v1/endpoints/{id}"), json!({ "headers": headers })).await;
        assert_eq!((s, v["error"]["code"].as_str()), (422, Some("invalid_header")), "{headers}: {v}");
    }

    // Back to Standard Webhooks with a secret for it: the raw secret rotated out earlier does
    // not stand in the way (a scheme change ends the overlap), and the new one signs.
    rx.set("/hc", Behaviour::Ok);
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (s, v) = api
        .patch(&format!("/v1/endpoints/{id}"), json!({"signature_scheme": "standard-webhooks", "secret": whsec}))
        .await;
    assert_eq!((s, v["signature_header"].clone()), (200, Value::Null), "{v}");
    api.publish(json!({"id": "evt_hc_4", "type": "approval_completed", "data": {"n": 4}})).await;
    let r = eventually("evt_hc_4 at the receiver", WAIT, || async {
        rx.requests("/hc").into_iter().find(|r| r.header("webhook-id") == Some("evt_hc_4"))
    })
    .await;
    let sig = r.header("webhook-signature").expect("signed the Standard Webhooks way");
    assert!(!sig.contains(' '), "one signature: no overlap across a scheme change: {sig}");
    standardwebhooks::Webhook::new(whsec).unwrap().verify(&r.body, &r.headers).unwrap();

    // Secrets never reach the logs: the header's value, the secrets.
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    for s in [api_key, secret, new_secret] {
        assert!(!logged.contains(s), "{s:?} was logged");
    }
}

/// An agent server in the 12-factor-agents style: it reads its own state at
/// `event.spec.state` and the human's answer at `event.status`, and resumes that thread.
#[tokio::test]
async fn a_humanlayer_style_agent_resumes_its_threads_from_both_kinds_of_operation() {
    let log =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dialects-hl-{}.log", std::process::id()));
    let (_db, _herald, api) = start(&log).await;
    let _ = std::fs::remove_file(&log);
    let rx = Receiver::start().await;
    let (s, ep) = api
        .post(
            "/v1/endpoints",
            json!({"url": rx.url("/agent"), "payload_format": "humanlayer",
                   "event_types": ["approval_completed", "human_contact_completed"]}),
        )
        .await;
    assert_eq!((s, ep["payload_format"].as_str()), (201, Some("humanlayer")), "{ep}");
    let (s, v) = api
        .post(
            "/v1/approvals",
            json!({"call_id": "call-a", "fn": "deploy", "kwargs": {"env": "prod"}, "state": {"thread_id": "th-1"},
                   "callback_url": rx.url("/run-callback"), "callback_payload_format": "humanlayer"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = api
        .post(
            "/v1/human_contacts",
            json!({"call_id": "call-h", "msg": "which region?", "state": {"thread_id": "th-2"}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    api.post("/v1/approvals/call-a/respond", json!({"approved": true, "comment": "go"})).await;
    api.post("/v1/human_contacts/call-h/respond", json!({"response": "eu-west"})).await;

    // The handler: what it resumes, with what.
    let handle = |body: &Value| -> (String, String) {
        let event = &body["event"];
        let thread = event["spec"]["state"]["thread_id"].as_str().unwrap_or("?").to_string();
        let status = &event["status"];
        let answer = match status.get("response").and_then(Value::as_str) {
            Some(text) => format!("response: {text}"),
            None => format!("approved: {} ({})", status["approved"], status["comment"].as_str().unwrap_or("")),
        };
        (thread, answer)
    };
    let got = rx.wait_for("/agent", 2, WAIT).await;
    let mut resumed: Vec<(String, String)> = got.iter().map(|r| handle(&r.json())).collect();
    resumed.sort();
    assert_eq!(
        resumed,
        vec![("th-1".into(), "approved: true (go)".into()), ("th-2".into(), "response: eu-west".into())],
        "{:?}",
        got.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    // The run's own callback, in the format the approval asked for.
    let cb = rx.wait_for("/run-callback", 1, WAIT).await;
    assert_eq!(handle(&cb[0].json()), ("th-1".to_string(), "approved: true (go)".to_string()), "{:?}", cb[0].json());
    // An event's callback too; without a callback_url the format is refused, nothing written.
    let (s, v) = api
        .post(
            "/v1/events",
            json!({"id": "evt_cb_hl", "type": "run.finished", "data": {"ok": true},
                   "callback_url": rx.url("/event-callback"), "callback_payload_format": "humanlayer"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let r = &rx.wait_for("/event-callback", 1, WAIT).await[0];
    assert_eq!(r.json(), json!({"type": "run.finished", "is_test": false, "event": {"ok": true}}));
    let (s, v) =
        api.post("/v1/events", json!({"type": "t", "data": {}, "callback_payload_format": "humanlayer"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("callback_url_required")), "{v}");
    for r in &got {
        let body = r.json();
        assert_eq!(body["is_test"], false);
        assert!(body["type"] == "approval_completed" || body["type"] == "human_contact_completed");
        assert!(body["event"].get("state").is_none(), "the state moved into the spec: {body}");
        // Still signed the Standard Webhooks way, as the endpoint says.
        assert!(r.header("webhook-signature").is_some());
    }
}

/// Delayed publish, over HTTP and in SQL: nothing is sent before `deliver_at`, and the event
/// shows it; more than 30 days ahead is refused where it enters.
#[tokio::test]
async fn nothing_is_sent_before_deliver_at() {
    let (db, _herald, api) = support::herald_all(&fast_with(&[])).await;
    let rx = Receiver::start().await;
    api.endpoint(json!({"url": rx.url("/later")})).await;
    let start = std::time::Instant::now();
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let (s, v) = api
        .post("/v1/events", json!({"id": "evt_later", "type": "t", "data": {}, "deliver_at": at.to_rfc3339()}))
        .await;
    assert_eq!(s, 202, "{v}");
    db.client()
        .await
        .execute("SELECT herald.publish('acme', 't', '{}'::jsonb, id => 'evt_later_sql', deliver_at => $1)", &[&at])
        .await
        .unwrap();
    let (_, shown) = api.get("/v1/events/evt_later").await;
    let shown_at = chrono::DateTime::parse_from_rfc3339(shown["deliver_at"].as_str().unwrap()).unwrap();
    assert!((shown_at.to_utc() - at).num_milliseconds().abs() < 2, "{shown}");
    assert_eq!(shown["deliveries"][0]["next_attempt_at"], shown["deliver_at"], "{shown}");
    let got = rx.wait_for("/later", 2, WAIT).await;
    for r in &got {
        let after = r.at.duration_since(start);
        assert!(after >= Duration::from_millis(1400), "delivered {after:?} after publishing, before deliver_at");
    }
    // Too far ahead: refused with how to fix it, nothing written.
    let far = (chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339();
    let (s, v) = api.post("/v1/events", json!({"id": "evt_far", "type": "t", "data": {}, "deliver_at": far})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("invalid_deliver_at")), "{v}");
    for bad in ["tomorrow 9am", "0000-01-01T00:00:00+23:59"] {
        let (s, v) = api.post("/v1/events", json!({"type": "t", "data": {}, "deliver_at": bad})).await;
        assert_eq!((s, v["error"]["code"].as_str()), (422, Some("invalid_deliver_at")), "{bad}: {v}");
    }
    assert_eq!(api.get("/v1/events/evt_far").await.0, 404);
    let err = db
        .client()
        .await
        .execute("SELECT herald.publish('acme', 't', '{}'::jsonb, deliver_at => now() + interval '31 days')", &[])
        .await
        .unwrap_err();
    assert!(herald_core::db::describe(&err).contains("30 days"), "{err}");
}

/// Run callbacks as agent platforms send them: the URL (with its token) and the secret in
/// headers; unsigned only where the tenant's operator allows it.
#[tokio::test]
async fn run_callbacks_come_in_headers_and_go_unsigned_only_when_allowed() {
    let log =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dialects-cb-{}.log", std::process::id()));
    let (db, _herald, api) = start(&log).await;
    let rx = Receiver::start().await;
    rx.set("/cb", Behaviour::Status(500, None));
    let token = "tok%2Fsecret-0123456789";
    let publish = |id: &'static str, secret: Option<&'static str>| {
        let api = api.clone();
        let url = rx.url(&format!("/cb?token={token}&run={id}"));
        async move {
            let mut req = api
                .http
                .post(format!("{}/v1/events", api.base))
                .bearer_auth(&api.token)
                .header("x-callback-url", url)
                .json(&json!({"id": id, "type": "run.finished", "data": {}}));
            if let Some(s) = secret {
                req = req.header("x-callback-secret", s);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Signed by default, with a secret Herald makes and answers once.
    let (s, v) = publish("run-1", None).await;
    assert_eq!(s, 202, "{v}");
    let made = v["callback_secret"].as_str().expect("a secret made for the callback").to_string();
    let first = rx.wait_for("/cb", 1, WAIT).await;
    assert_eq!(first[0].query, format!("token={token}&run=run-1"), "the token arrives intact");
    assert!(first[0].header("webhook-signature").is_some());
    rx.set("/cb", Behaviour::Ok);
    api.wait_delivery("run-1", None, "delivered", WAIT).await;
    // The secret from the header signs it.
    let (s, _) = publish("run-2", Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).await;
    assert_eq!(s, 202);
    let r = rx.wait_for("/cb", 3, WAIT).await.into_iter().find(|r| r.query.ends_with("run=run-2")).unwrap();
    standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .unwrap()
        .verify(&r.body, &r.headers)
        .unwrap();

    // The operator allows unsigned callbacks: none is made, none is sent.
    let (ok, out, err) = support::herald_output(&db, &["tenant", "set", "acme", "--unsigned-callbacks", "true"]);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["unsigned_callbacks"], true, "{out}");
    let (s, v) = publish("run-3", None).await;
    assert_eq!(s, 202, "{v}");
    assert!(v.get("callback_secret").is_none(), "{v}");
    let r = rx.wait_for("/cb", 4, WAIT).await.into_iter().find(|r| r.query.ends_with("run=run-3")).unwrap();
    assert!(r.header("webhook-signature").is_none(), "unsigned");

    // A refused callback URL's error names it without its query, over HTTP and in SQL.
    let (s, v) = api
        .post(
            "/v1/events",
            json!({"type": "t", "data": {}, "callback_url": "ftp://cb.example/x?token=secret-0123456789"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(!v.to_string().contains("secret-0123456789"), "{v}");
    let err = db
        .client()
        .await
        .execute(
            "SELECT herald.publish('acme', 't', '{}'::jsonb, callback_url => 'ftp://cb/x?token=secret-0123456789')",
            &[],
        )
        .await
        .unwrap_err();
    let said = herald_core::db::describe(&err);
    assert!(said.contains("invalid callback_url") && !said.contains("secret-0123456789"), "{said}");

    // The token is in no log line and no error text.
    let (_, event) = api.get("/v1/events/run-1/attempts").await;
    assert!(!event.to_string().contains("secret-0123456789"), "{event}");
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(!logged.contains("secret-0123456789") && !logged.contains(&made), "a token or secret was logged");
}

/// The operator's URL policy for a tenant: refused where URLs are set, and at send time for
/// URLs set before it (a clear attempt error), until it is loosened again.
#[tokio::test]
async fn a_tenants_url_policy_holds_where_urls_are_set_and_when_they_are_sent() {
    let (db, _herald, api) = support::herald_all(&fast_with(&[])).await;
    let rx = Receiver::start().await;
    let (ep, _) = api.endpoint(json!({"url": rx.url("/p"), "retry_schedule": ["30s"]})).await;
    let set = |args: &[&str]| {
        let mut all = vec!["tenant", "set", "acme"];
        all.extend_from_slice(args);
        let (ok, out, err) = support::herald_output(&db, &all);
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let shown = set(&["--allowed-domains", "hooks.example.com,*.Example.org"]);
    assert_eq!(shown["allowed_domains"], json!(["hooks.example.com", "*.example.org"]));
    let (_, tenant) = api.get("/v1/tenant").await;
    assert_eq!(tenant["allowed_domains"], shown["allowed_domains"], "{tenant}");
    assert_eq!(tenant["require_https"], false);

    // Where URLs are set: refused, with why.
    let local = rx.url("/q");
    for (what, s, v) in [
        ("create", api.post("/v1/endpoints", json!({"url": local})).await),
        ("patch", api.patch(&format!("/v1/endpoints/{ep}"), json!({"url": local})).await),
        ("event callback", api.post("/v1/events", json!({"type": "t", "data": {}, "callback_url": local})).await),
        ("approval callback", api.post("/v1/approvals", json!({"fn": "f", "kwargs": {}, "callback_url": local})).await),
    ]
    .map(|(w, (s, v))| (w, s, v))
    {
        assert_eq!((s, v["error"]["code"].as_str()), (422, Some("url_not_allowed")), "{what}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("allowed domains"), "{what}: {v}");
    }
    // At send time: the endpoint set before the policy gets nothing, and says why.
    api.publish(json!({"id": "evt_policy", "type": "t", "data": {}})).await;
    let attempt = eventually("a refused attempt", WAIT, || async {
        let (_, v) = api.get("/v1/events/evt_policy/attempts").await;
        v["data"].as_array().and_then(|a| a.first().cloned()).filter(|a| a["error"] == "url_policy")
    })
    .await;
    assert_eq!(attempt["status_code"], Value::Null, "nothing was sent: {attempt}");
    let (_, event) = api.get("/v1/events/evt_policy").await;
    let why = event["deliveries"][0]["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("not among this tenant's allowed domains"), "{event}");
    assert_eq!(rx.count("/p"), 0);
    // Loosened: a retry by hand goes through (once the workers read the settings again).
    set(&["--allowed-domains", ""]);
    let delivery = event["deliveries"][0]["id"].as_str().unwrap().to_string();
    eventually("the delivery to go through once the policy allows it", WAIT, || async {
        if rx.count("/p") > 0 {
            return Some(());
        }
        api.post(&format!("/v1/deliveries/{delivery}/retry"), json!({})).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        None
    })
    .await;
    // https only.
    set(&["--require-https", "true"]);
    let (s, v) = api.post("/v1/endpoints", json!({"url": local})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("url_not_allowed")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("https"), "{v}");
}
