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
            json!({"call_id": "call-a", "fn": "deploy", "kwargs": {"env": "prod"}, "state": {"thread_id": "th-1"}}),
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
    for r in &got {
        let body = r.json();
        assert_eq!(body["is_test"], false);
        assert!(body["type"] == "approval_completed" || body["type"] == "human_contact_completed");
        assert!(body["event"].get("state").is_none(), "the state moved into the spec: {body}");
        // Still signed the Standard Webhooks way, as the endpoint says.
        assert!(r.header("webhook-signature").is_some());
    }
}
