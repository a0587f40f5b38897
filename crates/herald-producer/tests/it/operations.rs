//! Human-in-the-loop operations: create, read, list, answer, expire; each state change in the
//! same transaction as its event.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::App;

async fn events(app: &App, event_type: &str) -> Vec<(Value, Option<String>)> {
    app.db
        .client()
        .await
        .query("SELECT data, callback_url FROM herald.events WHERE event_type = $1 ORDER BY seq", &[&event_type])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn an_approval_from_request_to_decision() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let body = json!({
        "call_id": "tool_call_1", "run_id": "run_9", "fn": "send_email",
        "kwargs": {"to": "ceo@example.com", "body": "hi"}, "state": {"thread_id": "th_1", "step": 3},
        "callback_url": "https://agent.example.com/webhooks/herald",
        "callback_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    });
    let (s, op) = app.call(Method::POST, "/v1/approvals", t, Some(body.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{op}");
    assert_eq!(op["call_id"], "tool_call_1");
    assert_eq!(op["run_id"], "run_9");
    assert_eq!(op["kind"], "approval");
    assert_eq!(op["spec"], json!({"fn": "send_email", "kwargs": {"to": "ceo@example.com", "body": "hi"}}));
    assert_eq!(op["state"], json!({"thread_id": "th_1", "step": 3}), "the agent's state comes back untouched");
    assert_eq!(op["status"], json!({"state": "pending"}));
    assert!(op["requested_at"].as_str().unwrap().ends_with('Z'));
    assert!(op.get("callback_secret").is_none(), "a given secret is not echoed");

    let requested = events(&app, "approval_requested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].0, op, "the event carries the whole operation");
    assert_eq!(requested[0].1, None, "*_requested goes to endpoints only, not the callback");

    // The same create again is idempotent; another body under the same call_id is a conflict.
    let (s, again) = app.call(Method::POST, "/v1/approvals", t, Some(body.clone())).await;
    assert_eq!((s, &again), (StatusCode::OK, &op));
    let mut other = body.clone();
    other["kwargs"]["to"] = json!("someone-else@example.com");
    let (s, v) = app.call(Method::POST, "/v1/approvals", t, Some(other)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("call_id_conflict")));
    let (s, _) =
        app.call(Method::POST, "/v1/human_contacts", t, Some(json!({"call_id": "tool_call_1", "msg": "?"}))).await;
    assert_eq!(s, StatusCode::CONFLICT, "a call_id names one operation whatever its kind");
    assert_eq!(events(&app, "approval_requested").await.len(), 1);

    let (s, listed) = app.call(Method::GET, "/v1/approvals?status=pending", t, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(listed["data"], json!([op]));

    let (s, done) = app
        .call(
            Method::POST,
            "/v1/approvals/tool_call_1/respond",
            t,
            Some(json!({"approved": false, "comment": "not to the CEO", "responder": "ops@example.com"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"]["state"], "rejected");
    assert_eq!(done["status"]["approved"], false);
    assert_eq!(done["status"]["comment"], "not to the CEO");
    assert_eq!(done["status"]["responder"], "ops@example.com");
    assert!(done["status"]["responded_at"].as_str().unwrap().ends_with('Z'));
    let completed = events(&app, "approval_completed").await;
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].0, done);
    assert_eq!(completed[0].1.as_deref(), Some("https://agent.example.com/webhooks/herald"), "to the callback too");

    // A decision is final.
    let (s, v) = app.call(Method::POST, "/v1/approvals/tool_call_1/respond", t, Some(json!({"approved": true}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("already_answered")));
    assert_eq!(events(&app, "approval_completed").await.len(), 1);
    let (_, read) = app.call(Method::GET, "/v1/approvals/tool_call_1", t, None).await;
    assert_eq!(read, done);
    let (_, pending) = app.call(Method::GET, "/v1/approvals?status=pending", t, None).await;
    assert_eq!(pending["data"], json!([]));
}

#[tokio::test]
async fn a_human_contact_is_answered_and_call_ids_are_generated() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let (s, op) = app
        .call(
            Method::POST,
            "/v1/human_contacts",
            t,
            Some(json!({"msg": "Which region?", "subject": "deploy", "callback_url": "https://agent.example.com/cb"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{op}");
    let call_id = op["call_id"].as_str().unwrap().to_string();
    assert!(call_id.starts_with("call_"));
    assert_eq!(op["spec"], json!({"msg": "Which region?", "subject": "deploy"}));
    assert_eq!(op["state"], Value::Null);
    let secret = op["callback_secret"].as_str().expect("a generated callback secret is answered on creation");
    assert!(herald_core::signing::Secret::parse(secret).is_ok());
    // A retry of the same create (its answer lost) reads it back, with the same secret; a read does not show it.
    let (s, again) = app
        .call(Method::POST, "/v1/human_contacts", t, Some(json!({"call_id": call_id, "msg": "Which region?", "subject": "deploy", "callback_url": "https://agent.example.com/cb"})))
        .await;
    assert_eq!((s, again["callback_secret"].as_str()), (StatusCode::OK, Some(secret)));
    let (_, read) = app.call(Method::GET, &format!("/v1/human_contacts/{call_id}"), t, None).await;
    assert!(read.get("callback_secret").is_none());

    let (s, done) = app
        .call(Method::POST, &format!("/v1/human_contacts/{call_id}/respond"), t, Some(json!({"response": "eu-west-1"})))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(done["status"]["state"], "answered");
    assert_eq!(done["status"]["response"], "eu-west-1");
    assert!(done["callback_secret"].is_null());
    assert_eq!(events(&app, "human_contact_completed").await[0].0, done);
    // The approval routes do not see a human contact.
    let (s, _) = app.call(Method::GET, &format!("/v1/approvals/{call_id}"), t, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) =
        app.call(Method::POST, &format!("/v1/approvals/{call_id}/respond"), t, Some(json!({"approved": true}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_expired_operation_refuses_a_late_answer_and_publishes_its_expiry() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
    let (s, _) = app
        .call(Method::POST, "/v1/approvals", t, Some(json!({"call_id": "c_exp", "fn": "deploy", "kwargs": {}, "expires_at": soon, "callback_url": "https://agent.example.com/cb"})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    herald_testkit::eventually("the approval's time to pass", std::time::Duration::from_secs(10), || async {
        (chrono::Utc::now() > chrono::DateTime::parse_from_rfc3339(&soon).unwrap()).then_some(())
    })
    .await;
    let (s, v) = app.call(Method::POST, "/v1/approvals/c_exp/respond", t, Some(json!({"approved": true}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("operation_expired")), "{v}");
    let expired = events(&app, "approval_expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].0["status"]["state"], "expired");
    assert_eq!(expired[0].1.as_deref(), Some("https://agent.example.com/cb"));
    assert!(events(&app, "approval_completed").await.is_empty());
    let (s, _) = app.call(Method::POST, "/v1/approvals/c_exp/respond", t, Some(json!({"approved": true}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(events(&app, "approval_expired").await.len(), 1, "expired once");
    // The same create again after its expires_at (a retry whose first answer was lost) reads it back.
    let (s, v) = app
        .call(Method::POST, "/v1/approvals", t, Some(json!({"call_id": "c_exp", "fn": "deploy", "kwargs": {}, "expires_at": soon, "callback_url": "https://agent.example.com/cb"})))
        .await;
    assert_eq!((s, v["status"]["state"].as_str()), (StatusCode::OK, Some("expired")), "{v}");
}

#[tokio::test]
async fn operations_refuse_bad_input_and_other_tenants() {
    let app = App::new().await;
    let acme = app.db.tenant("acme").await;
    let globex = app.db.tenant("globex").await;
    let (s, _) = app
        .call(Method::POST, "/v1/approvals", Some(&acme), Some(json!({"call_id": "mine", "fn": "f", "kwargs": {}})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let before = app.db.row_counts().await;
    for (path, body, code) in [
        ("/v1/approvals", json!({"kwargs": {}}), "invalid_field"),
        ("/v1/approvals", json!({"fn": "f"}), "invalid_field"),
        ("/v1/approvals", json!({"fn": "", "kwargs": {}}), "invalid_fn"),
        ("/v1/approvals", json!({"fn": "f", "kwargs": {}, "call_id": "a b"}), "invalid_call_id"),
        ("/v1/approvals", json!({"fn": "f", "kwargs": {}, "expires_at": "2001-01-01T00:00:00Z"}), "invalid_expires_at"),
        ("/v1/approvals", json!({"fn": "f", "kwargs": {}, "expires_at": "tomorrow"}), "invalid_field"),
        (
            "/v1/approvals",
            json!({"fn": "f", "kwargs": {}, "expires_at": "9999-12-31T23:00:00-23:00"}),
            "invalid_expires_at",
        ),
        ("/v1/approvals", json!({"fn": "f", "kwargs": {}, "callback_url": "http://10.0.0.1/"}), "blocked_target"),
        (
            "/v1/approvals",
            json!({"fn": "f", "kwargs": {}, "callback_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
            "callback_url_required",
        ),
        ("/v1/human_contacts", json!({"msg": "  "}), "invalid_msg"),
        ("/v1/approvals/mine/respond", json!({"approved": "yes"}), "invalid_field"),
        ("/v1/approvals/mine/respond", json!({}), "invalid_field"),
        ("/v1/approvals", json!({"fn": "f", "kwargs": {"a": "x\u{0}y"}}), "invalid_data"),
    ] {
        let (s, v) = app.call(Method::POST, path, Some(&acme), Some(body.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path} {body}: {v}");
        assert_eq!(v["error"]["code"], code, "{path} {body}: {v}");
    }
    let (s, v) = app.call(Method::GET, "/v1/approvals?status=maybe", Some(&acme), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_status")));
    for (method, path, body) in [
        (Method::GET, "/v1/approvals/mine", None),
        (Method::POST, "/v1/approvals/mine/respond", Some(json!({"approved": true}))),
    ] {
        let (s, _) = app.call(method, path, Some(&globex), body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: another tenant's call_id");
    }
    assert_eq!(app.db.row_counts().await, before, "nothing written");
}

/// `order=settled`: answered and expired operations, last settled first, paged both ways; what
/// the inbox's history reads.
#[tokio::test]
async fn settled_operations_are_listed_last_settled_first() {
    let db = herald_testkit::TestDb::new().await;
    let start = chrono::Utc::now();
    let clock = std::sync::Arc::new(herald_core::clock::ManualClock::new(start));
    let state = herald_producer::api::AppState::new(
        db.pool.clone(),
        clock.clone(),
        herald_core::targets::AllowList::none(),
        4096,
        herald_core::metrics::Metrics::new(),
    );
    let app = App { router: herald_producer::api::router(state), db };
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let expires = (start + chrono::Duration::milliseconds(1500)).to_rfc3339();
    for id in ["a", "b", "c", "d", "e"] {
        let mut body = json!({"call_id": id, "fn": "deploy", "kwargs": {}});
        if id == "e" {
            body["expires_at"] = json!(expires);
        }
        let (s, v) = app.call(Method::POST, "/v1/approvals", t, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, _) = app.call(Method::POST, "/v1/human_contacts", t, Some(json!({"call_id": "q", "msg": "?"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    // b at +1s, a at +2s, d at +3s; e expired at +1.5s; c still pending.
    for (id, approved) in [("b", false), ("a", true), ("d", true)] {
        clock.advance(chrono::Duration::seconds(1));
        let (s, v) = app
            .call(Method::POST, &format!("/v1/approvals/{id}/respond"), t, Some(json!({"approved": approved})))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, _) = app.call(Method::POST, "/v1/approvals/e/respond", t, Some(json!({"approved": true}))).await;
    assert_eq!(s, StatusCode::CONFLICT, "e has expired");
    let ids = |v: &Value| -> Vec<String> {
        v["data"].as_array().unwrap().iter().map(|o| o["call_id"].as_str().unwrap().to_string()).collect()
    };

    let (s, first) = app.call(Method::GET, "/v1/approvals?order=settled&limit=2", t, None).await;
    assert_eq!((s, ids(&first)), (StatusCode::OK, vec!["d".to_string(), "a".to_string()]), "{first}");
    let next = first["next_cursor"].as_str().unwrap();
    let (_, second) =
        app.call(Method::GET, &format!("/v1/approvals?order=settled&limit=2&cursor={next}"), t, None).await;
    assert_eq!(ids(&second), vec!["e", "b"], "{second}");
    assert!(second["next_cursor"].is_null(), "{second}");
    let prev = second["prev_cursor"].as_str().unwrap();
    let (_, back) = app.call(Method::GET, &format!("/v1/approvals?order=settled&limit=2&before={prev}"), t, None).await;
    assert_eq!(ids(&back), vec!["d", "a"], "{back}");
    let (_, approved) = app.call(Method::GET, "/v1/approvals?order=settled&status=approved", t, None).await;
    assert_eq!(ids(&approved), vec!["d", "a"]);
    let (_, contacts) = app.call(Method::GET, "/v1/human_contacts?order=settled", t, None).await;
    assert_eq!(ids(&contacts), Vec::<String>::new(), "q is pending");
    let (_, by_id) = app.call(Method::GET, "/v1/approvals", t, None).await;
    assert_eq!(ids(&by_id), vec!["a", "b", "c", "d", "e"], "the default order is call_id, pending included");
    // A cursor of one order is not the other's.
    let (s, v) = app.call(Method::GET, &format!("/v1/approvals?cursor={next}"), t, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_cursor")), "{v}");
    let (s, v) = app.call(Method::GET, "/v1/approvals?order=newest", t, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_order")), "{v}");
}
