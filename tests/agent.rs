//! The example agent (examples/agent) end to end with the real Herald binary: the agent asks for
//! an approval, answers its caller 202 and stops; a human answers through Herald's API; the
//! webhook resumes the agent. Approve, approve twice, a redelivered webhook, reject with a
//! comment, expiry, and Herald restarted while the agent waits.

mod support;

use std::time::Duration;

use herald_testkit::{eventually, TestDb};
use serde_json::{json, Value};
use support::{Api, Herald, FAST};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(30);

struct World {
    herald_db: TestDb,
    agent_db: TestDb,
    herald: Herald,
    api: Api,
    agent: String,
    http: reqwest::Client,
}

async fn world() -> World {
    let herald_db = TestDb::new().await;
    let agent_db = TestDb::new().await;
    let token = herald_db.tenant("agents").await;
    let herald = Herald::start(&herald_db, "all", FAST).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = format!("http://{}", listener.local_addr().unwrap());
    let app = herald_example_agent::app(herald_example_agent::Config {
        database_url: agent_db.url.clone(),
        herald_url: herald.base.clone(),
        herald_token: token.clone(),
        public_url: agent.clone(),
        webhook_secret: SECRET.into(),
    })
    .await
    .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let api = Api::new(&herald.base, &token);
    World { herald_db, agent_db, herald, api, agent, http: reqwest::Client::new() }
}

impl World {
    async fn start(&self, body: Value) -> (String, String) {
        let r = self.http.post(format!("{}/threads", self.agent)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 202, "the agent answers 202 and stops");
        let v: Value = r.json().await.unwrap();
        (v["thread_id"].as_str().unwrap().to_string(), v["call_id"].as_str().unwrap().to_string())
    }

    async fn thread(&self, id: &str) -> Value {
        self.http.get(format!("{}/threads/{id}", self.agent)).send().await.unwrap().json().await.unwrap()
    }

    async fn finished(&self, id: &str) -> Value {
        eventually(&format!("thread {id} to finish"), WAIT, || async {
            let t = self.thread(id).await;
            (t["status"] != "waiting_for_approval").then_some(t)
        })
        .await
    }

    async fn emails(&self) -> i64 {
        self.agent_db.client().await.query_one("SELECT count(*) FROM agent.sent_emails", &[]).await.unwrap().get(0)
    }
}

#[tokio::test]
async fn approved_and_the_agent_finishes_once_even_when_answered_twice_or_redelivered() {
    let w = world().await;
    let (thread, call_id) = w.start(json!({"message": "Quarterly numbers attached.", "to": "cfo@example.com"})).await;
    let t = w.thread(&thread).await;
    assert_eq!(t["status"], "waiting_for_approval");
    let (_, op) = w.api.get(&format!("/v1/approvals/{call_id}")).await;
    assert_eq!(op["spec"]["fn"], "send_email");
    assert_eq!(op["spec"]["kwargs"]["to"], "cfo@example.com");
    assert_eq!(op["state"], json!({"thread_id": thread}));

    let (s, _) =
        w.api.post(&format!("/v1/approvals/{call_id}/respond"), json!({"approved": true, "responder": "cfo"})).await;
    assert_eq!(s, 200);
    let t = w.finished(&thread).await;
    assert_eq!(t["status"], "done");
    let last = t["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["content"], "Done: the email to cfo@example.com was sent.");
    assert_eq!(w.emails().await, 1);

    // A second answer is refused; a redelivery of the webhook changes nothing.
    let (s, v) =
        w.api.post(&format!("/v1/approvals/{call_id}/respond"), json!({"approved": false, "comment": "wait"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("already_answered")));
    let event: String = w
        .herald_db
        .client()
        .await
        .query_one("SELECT event_id FROM herald.events WHERE event_type = 'approval_completed'", &[])
        .await
        .unwrap()
        .get(0);
    let (_, e) = w.api.get(&format!("/v1/events/{event}")).await;
    let callback = e["deliveries"].as_array().unwrap().iter().find(|d| d["endpoint_id"].is_null()).unwrap().clone();
    let (s, _) = w.api.post(&format!("/v1/deliveries/{}/retry", callback["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(s, 202);
    eventually("the redelivery to land", WAIT, || async {
        let (_, e) = w.api.get(&format!("/v1/events/{event}")).await;
        let d = e["deliveries"].as_array().unwrap().iter().find(|d| d["endpoint_id"].is_null()).unwrap().clone();
        (d["state"] == "delivered" && d["attempt_count"] == 2).then_some(())
    })
    .await;
    let seen: i64 =
        w.agent_db.client().await.query_one("SELECT count(*) FROM agent.processed_webhooks", &[]).await.unwrap().get(0);
    assert_eq!(seen, 1, "the same webhook-id twice is processed once");
    assert_eq!(w.thread(&thread).await["messages"], t["messages"]);
    assert_eq!(w.emails().await, 1);
}

#[tokio::test]
async fn a_rejection_comment_reaches_the_model_as_the_tools_result() {
    let w = world().await;
    let (thread, call_id) = w.start(json!({"message": "Fire everyone.", "to": "all@example.com"})).await;
    let (s, _) = w
        .api
        .post(
            &format!("/v1/approvals/{call_id}/respond"),
            json!({"approved": false, "comment": "Absolutely not.", "responder": "hr"}),
        )
        .await;
    assert_eq!(s, 200);
    let t = w.finished(&thread).await;
    assert_eq!(t["status"], "done");
    let messages = t["messages"].as_array().unwrap();
    let tool = &messages[messages.len() - 2];
    assert_eq!(
        (tool["role"].as_str(), tool["outcome"].as_str(), tool["comment"].as_str()),
        (Some("tool"), Some("rejected"), Some("Absolutely not."))
    );
    assert_eq!(messages.last().unwrap()["content"], "I did not send the email. The reviewer said: Absolutely not.");
    assert_eq!(w.emails().await, 0, "a rejected tool call never runs");
}

#[tokio::test]
async fn an_unanswered_approval_expires_and_the_agent_is_told() {
    let w = world().await;
    let (thread, call_id) = w.start(json!({"message": "Ship it.", "to": "ops@example.com", "expires_in_s": 1})).await;
    let t = w.finished(&thread).await;
    assert_eq!(t["status"], "expired");
    assert_eq!(
        t["messages"].as_array().unwrap().last().unwrap()["content"],
        "No one answered in time, so I did not send the email."
    );
    let (s, v) = w.api.post(&format!("/v1/approvals/{call_id}/respond"), json!({"approved": true})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("operation_expired")));
    assert_eq!(w.emails().await, 0);
}

#[tokio::test]
async fn herald_restarted_while_the_agent_waits() {
    let mut w = world().await;
    let (thread, call_id) = w.start(json!({"message": "Renew the certificate.", "to": "infra@example.com"})).await;
    // Herald goes away hard and comes back on the same database.
    w.herald.signal("KILL");
    w.herald.wait_exit(Duration::from_secs(10)).await;
    w.herald = Herald::start(&w.herald_db, "all", FAST).await;
    w.api = Api::new(&w.herald.base, &w.api.token);
    let (s, _) = w.api.post(&format!("/v1/approvals/{call_id}/respond"), json!({"approved": true})).await;
    assert_eq!(s, 200);
    let t = w.finished(&thread).await;
    assert_eq!(t["status"], "done");
    assert_eq!(w.emails().await, 1);
}
