//! The approval inbox in a real browser (headless Chromium): a person opens /inbox, answers,
//! and the agent's callback gets the signed webhook that resumes it.

mod support;

use std::process::Command;
use std::time::Duration;

use herald_testkit::{Receiver, TestDb};
use serde_json::json;
use support::{Api, Herald, FAST};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn a_person_answers_in_the_inbox_and_the_agent_gets_the_webhook() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let deps = Command::new("bash").arg(format!("{root}/scripts/browser-deps.sh")).output().expect("bash");
    assert!(deps.status.success(), "browser dependencies: {}", String::from_utf8_lossy(&deps.stderr));
    let chromium = String::from_utf8_lossy(&deps.stdout).lines().last().unwrap_or_default().trim().to_string();

    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let herald = Herald::start(&db, "all", FAST).await;
    let api = Api::new(&herald.base, &token);
    let agent = Receiver::start().await;
    for (path, body) in [
        (
            "/v1/approvals",
            json!({"call_id": "deploy_1", "run_id": "run_1", "fn": "deploy", "kwargs": {"service": "billing", "version": "2.4.1"}, "state": {"thread": "t1"}}),
        ),
        (
            "/v1/approvals",
            json!({"call_id": "email_1", "fn": "send_email", "kwargs": {"to": "<script>alert(1)</script>@example.com"}}),
        ),
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

    let shots = format!("{root}/target");
    let out = Command::new("node")
        .arg(format!("{root}/tests/browser/inbox.mjs"))
        .args([&herald.base, &token, &shots])
        .env("HERALD_CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "the browser run failed (see target/inbox-failure.png): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Each answer reached the agent's callback as a signed webhook carrying the whole operation.
    let got = agent.wait_for("/agent/webhooks", 3, Duration::from_secs(30)).await;
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
    assert_eq!(deploy["data"]["state"], json!({"thread": "t1"}));
    assert_eq!(seen["email_1"]["data"]["status"]["state"], "approved");
    let q = &seen["question_1"];
    assert_eq!(q["type"], "human_contact_completed");
    assert_eq!(q["data"]["status"]["response"], "eu-west-1, please");
}
