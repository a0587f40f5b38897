//! Secrets never reach the logs: a full run of the real binary at debug level, with every kind
//! of secret in play (API token, endpoint secrets before and after rotation, a callback secret,
//! a token in a callback URL's query, failing and succeeding attempts), then its whole log is
//! searched for each of them.

mod support;

use std::time::Duration;

use herald_testkit::{Behaviour, Receiver, TestDb};
use serde_json::json;
use support::{Api, Herald, FAST};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn no_secret_is_ever_logged() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let dir = std::env::temp_dir().join(format!("herald-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("herald.log");
    let mut env = FAST.to_vec();
    env.push(("HERALD_LOG", "debug"));
    let herald = Herald::start_logged(&db, "all", &env, &log).await;
    let api = Api::new(&herald.base, &token);
    let rx = Receiver::start().await;
    rx.set("/fail", Behaviour::Status(500, None));

    let endpoint_secret = "whsec_c2VjcmV0LWVuZHBvaW50LWtleS0wMTIzNDU2Nzg5";
    let (ok, _) = api.endpoint(json!({"url": rx.url("/ok"), "secret": endpoint_secret})).await;
    let (_, failing_secret) = api.endpoint(json!({"url": rx.url("/fail?key=sk_query_token_7f3a9")})).await;
    let (s, rotated) = api.post(&format!("/v1/endpoints/{ok}/rotate-secret"), json!({})).await;
    assert_eq!(s, 200, "{rotated}");
    let rotated_secret = rotated["secret"].as_str().unwrap().to_string();
    let callback_secret = "whsec_Y2FsbGJhY2stc2VjcmV0LWtleS05ODc2NTQzMjEw";
    let id = api
        .publish(json!({"type": "t", "data": {"x": 1}, "callback_url": rx.url("/cb?token=cb_query_token_19c2"),
                         "callback_secret": callback_secret}))
        .await;
    api.publish(json!({"type": "t", "data": 2})).await;
    api.wait_delivery(&id, None, "delivered", WAIT).await;
    rx.wait_for("/ok", 2, WAIT).await;
    rx.wait_for("/fail", 2, WAIT).await;
    // A token that is not the tenant's, and a request without one.
    let (s, _) = Api::new(&herald.base, &format!("{token}x")).get("/v1/endpoints").await;
    assert_eq!(s, 401);
    drop(herald);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("DEBUG") && text.len() > 1000, "the run logged at debug level:\n{text}");
    let b64 = |s: &str| s.trim_start_matches("whsec_").to_string();
    for (what, secret) in [
        ("API token", token.clone()),
        ("API token's secret part", token.rsplit_once('.').unwrap().1.to_string()),
        ("endpoint secret", endpoint_secret.to_string()),
        ("endpoint secret, base64 part", b64(endpoint_secret)),
        ("generated endpoint secret", failing_secret.clone()),
        ("rotated endpoint secret", rotated_secret.clone()),
        ("callback secret", callback_secret.to_string()),
        ("callback secret, base64 part", b64(callback_secret)),
        ("token in an endpoint URL's query", "sk_query_token_7f3a9".to_string()),
        ("token in a callback URL's query", "cb_query_token_19c2".to_string()),
    ] {
        assert!(!text.contains(&secret), "the log holds the {what}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
