//! The approval inbox in a real browser (headless Chromium), used as people use it: approvers
//! open inbox links, answer, see each other's answers appear, are told when someone else
//! answered first; an expired or revoked link is refused; a `respond` token still signs in; and
//! each answer reaches the agent's callback as a signed webhook naming who answered.

mod support;

use std::process::Command;
use std::time::Duration;

use herald_testkit::{eventually, Receiver, TestDb};
use serde_json::{json, Value};
use support::{Api, Herald, FAST};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn people_answer_in_the_inbox_through_links_and_the_agent_gets_the_webhooks() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let chromium = support::chromium();

    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let herald = Herald::start(&db, "all", FAST).await;
    let api = Api::new(&herald.base, &token);
    let agent = Receiver::start().await;
    let approval = |call_id: &str, run_id: Option<&str>, fun: &str, kwargs: Value| json!({"call_id": call_id, "run_id": run_id, "fn": fun, "kwargs": kwargs, "state": {"thread": call_id}});
    for (path, body) in [
        (
            "/v1/approvals",
            approval("deploy_1", Some("run_1"), "deploy", json!({"service": "billing", "version": "2.4.1"})),
        ),
        (
            "/v1/approvals",
            approval("email_1", None, "send_email", json!({"to": "<script>alert(1)</script>@example.com"})),
        ),
        ("/v1/approvals", approval("restart_1", None, "restart", json!({"service": "search"}))),
        ("/v1/approvals", approval("cache_1", None, "flush_cache", json!({"region": "eu"}))),
        (
            "/v1/human_contacts",
            json!({"call_id": "question_1", "msg": "Which region should the replica go to?", "subject": "Replica region"}),
        ),
    ] {
        let mut body = body;
        body["callback_url"] = json!(agent.url("/agent/webhooks"));
        body["callback_secret"] = json!(SECRET);
        let (s, v) = api.post(path, body).await;
        assert_eq!(s, 201, "{v}");
    }

    let (_, jane) = api.link(json!({"kind": "inbox", "responder": "Jane Doe"})).await;
    let (sam_id, sam) = api.link(json!({"kind": "inbox", "responder": "Sam Roe"})).await;
    let (_, run1) = api.link(json!({"kind": "inbox", "responder": "Rita Run", "run_id": "run_1"})).await;
    let (revoked_id, revoked) = api.link(json!({"kind": "inbox", "responder": "Rex Voked"})).await;
    let r = api.http.delete(format!("{}/v1/links/{revoked_id}", api.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (_, expired) = api.link(json!({"kind": "inbox", "responder": "Old Link", "expires_in": "1s"})).await;
    eventually("the short link to expire", Duration::from_secs(30), || async {
        (api.exchange(&expired).await == 401).then_some(())
    })
    .await;
    let (s, v) = api.post("/v1/tokens", json!({"name": "inbox", "scope": "respond"})).await;
    assert_eq!(s, 201, "{v}");
    let respond_token = v["token"].as_str().unwrap().to_string();

    let shots = format!("{root}/target");
    let config = json!({
        "base": herald.base,
        "shots": shots,
        "full_token": token,
        "respond_token": respond_token,
        "links": {"jane": jane, "sam": sam, "sam_id": sam_id, "run1": run1, "revoked": revoked, "expired": expired},
    });
    let out = Command::new("node")
        .arg(format!("{root}/tests/browser/inbox.mjs"))
        .arg(config.to_string())
        .env("HERALD_CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "the browser run failed (see target/inbox-failure.png): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));

    // Each answer reached the agent's callback as a signed webhook carrying the whole operation,
    // with the link's responder (or the token user's name) as who answered.
    let got = agent.wait_for("/agent/webhooks", 5, Duration::from_secs(30)).await;
    let wh = standardwebhooks::Webhook::new(SECRET).unwrap();
    let mut seen = std::collections::HashMap::new();
    for r in &got {
        wh.verify(&r.body, &r.headers).expect("signature verifies");
        let e = r.json();
        seen.insert(e["data"]["call_id"].as_str().unwrap().to_string(), e);
    }
    let deploy = &seen["deploy_1"];
    assert_eq!(deploy["type"], "approval_completed");
    assert_eq!(deploy["data"]["status"]["state"], "rejected");
    assert_eq!(deploy["data"]["status"]["comment"], "Not on a Friday.");
    assert_eq!(deploy["data"]["status"]["responder"], "Jane Doe");
    assert_eq!(deploy["data"]["state"], json!({"thread": "deploy_1"}));
    assert_eq!(seen["email_1"]["data"]["status"]["state"], "approved");
    assert_eq!(seen["email_1"]["data"]["status"]["responder"], "Jane Doe");
    let q = &seen["question_1"];
    assert_eq!(q["type"], "human_contact_completed");
    assert_eq!(q["data"]["status"]["response"], "eu-west-1, please");
    assert_eq!(q["data"]["status"]["responder"], "Jane Doe");
    // Sam's late answer was not taken: Jane's approval stands.
    let restart = &seen["restart_1"]["data"]["status"];
    assert_eq!((restart["state"].as_str(), restart["responder"].as_str()), (Some("approved"), Some("Jane Doe")));
    let cache = &seen["cache_1"]["data"]["status"];
    assert_eq!((cache["state"].as_str(), cache["responder"].as_str()), (Some("approved"), Some("Tom Token")));
}
