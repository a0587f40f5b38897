//! Inbox links: a link's credential is exchanged for a session cookie that answers operations
//! (of the link's run only) as the link's responder, and nothing else; revocation and expiry end
//! it at once.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{Duration, Utc};
use herald_core::clock::{ManualClock, SharedClock};
use herald_producer::api::{router, AppState};
use serde_json::{json, Value};

use crate::App;

/// A request with the session cookie (and no token); `origin` as a browser would send it.
async fn with_cookie(
    app: &App,
    method: Method,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", format!("theme=dark; {cookie}"))
        .header("host", "herald.example");
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    app.send(req).await
}

/// Exchanges `url`'s fragment; answers the `name=value` of the cookie and its whole header.
async fn exchange(app: &App, url: &str, https: bool) -> (StatusCode, Option<(String, String)>, Value) {
    let credential = url.split_once('#').map_or("", |(_, c)| c);
    let mut req =
        Request::builder().method(Method::POST).uri("/v1/sessions").header("content-type", "application/json");
    if https {
        req = req.header("x-forwarded-proto", "https");
    }
    let res = tower::ServiceExt::oneshot(
        app.router.clone(),
        req.body(Body::from(json!({"credential": credential}).to_string())).unwrap(),
    )
    .await
    .unwrap();
    let status = res.status();
    let set = res.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, set.map(|s| (s.split(';').next().unwrap().to_string(), s)), v)
}

async fn approval(app: &App, token: &str, call_id: &str, run: &str) {
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/approvals",
            Some(token),
            Some(json!({"call_id": call_id, "fn": "deploy", "kwargs": {}, "run_id": run})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn an_inbox_link_answers_its_runs_operations_as_its_responder_and_nothing_else() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    approval(&app, &token, "ours", "r1").await;
    approval(&app, &token, "theirs", "r2").await;
    let (s, link) = app
        .call(
            Method::POST,
            "/v1/links",
            Some(&token),
            Some(json!({"kind": "inbox", "responder": "Jane Doe", "run_id": "r1"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with("/inbox#hrldl_acme."), "{url}");
    let (_, listed) = app.call(Method::GET, "/v1/links", Some(&token), None).await;
    assert!(!listed.to_string().contains(url.split_once('#').unwrap().1), "a list never shows a credential");

    let (s, cookie, v) = exchange(&app, url, false).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (cookie, header) = cookie.expect("a session cookie");
    assert!(header.contains("HttpOnly") && header.contains("SameSite=Strict") && header.contains("Path=/"), "{header}");
    assert!(!header.contains("Secure"), "plain http: {header}");
    assert_eq!((v["responder"].as_str(), v["run_id"].as_str()), (Some("Jane Doe"), Some("r1")));
    let (_, _, _) = exchange(&app, url, true).await;
    let (_, https, _) = exchange(&app, url, true).await;
    assert!(https.unwrap().1.contains("; Secure"), "behind https the cookie is Secure");

    // Only the link's run, and only operations.
    let (s, list) = with_cookie(&app, Method::GET, "/v1/approvals?status=pending", &cookie, None, None).await;
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().filter_map(|o| o["call_id"].as_str()).collect();
    assert_eq!((s, ids), (StatusCode::OK, vec!["ours"]));
    let (s, _) = with_cookie(&app, Method::GET, "/v1/approvals/theirs", &cookie, None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = with_cookie(
        &app,
        Method::POST,
        "/v1/approvals/theirs/respond",
        &cookie,
        Some("http://herald.example"),
        Some(json!({"approved": true})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another run's operation cannot be answered");
    for (m, p) in [
        (Method::GET, "/v1/endpoints"),
        (Method::GET, "/v1/events"),
        (Method::POST, "/v1/approvals"),
        (Method::GET, "/v1/tokens"),
        (Method::GET, "/v1/tenant"),
        (Method::PATCH, "/v1/tenant"),
        (Method::GET, "/v1/links"),
    ] {
        let (s, v) = with_cookie(&app, m.clone(), p, &cookie, None, Some(json!({}))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{m} {p}: {v}");
    }
    // A change from another origin, or with no Origin at all, is refused, even with the cookie.
    let (s, _) =
        with_cookie(&app, Method::POST, "/v1/approvals/ours/respond", &cookie, None, Some(json!({"approved": true})))
            .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = with_cookie(
        &app,
        Method::POST,
        "/v1/approvals/ours/respond",
        &cookie,
        Some("https://evil.example"),
        Some(json!({"approved": true})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The answer is recorded as the link's responder, whatever the page says.
    let (s, v) = with_cookie(
        &app,
        Method::POST,
        "/v1/approvals/ours/respond",
        &cookie,
        Some("http://herald.example"),
        Some(json!({"approved": true, "responder": "Mallory"})),
    )
    .await;
    assert_eq!((s, v["status"]["responder"].as_str()), (StatusCode::OK, Some("Jane Doe")), "{v}");

    let (s, me) = with_cookie(&app, Method::GET, "/v1/sessions/current", &cookie, None, None).await;
    assert_eq!((s, me["responder"].as_str()), (StatusCode::OK, Some("Jane Doe")), "{me}");

    // Revoking the link ends its sessions and its credential at once.
    let id = link["id"].as_str().unwrap();
    assert_eq!(
        app.call(Method::DELETE, &format!("/v1/links/{id}"), Some(&token), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (s, v) = with_cookie(&app, Method::GET, "/v1/approvals", &cookie, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("revoked"), "{v}");
    assert_eq!(exchange(&app, url, false).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn links_expire_sessions_end_and_bad_requests_are_refused() {
    let db = herald_testkit::TestDb::new().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let shared: SharedClock = clock.clone();
    let state = AppState::new(
        db.pool.clone(),
        shared,
        herald_core::targets::AllowList::none(),
        4096,
        herald_core::metrics::Metrics::new(),
    );
    let app = App { router: router(state), db };
    let token = app.db.tenant("acme").await;
    for (body, code) in [
        (json!({"kind": "portal", "responder": "x"}), "invalid_kind"),
        (json!({"kind": "inbox"}), "invalid_responder"),
        (json!({"kind": "inbox", "responder": "x", "expires_in": "90d"}), "invalid_expires_in"),
        (json!({"kind": "inbox", "responder": "x", "expires_in": "soon"}), "invalid_expires_in"),
    ] {
        let (s, v) = app.call(Method::POST, "/v1/links", Some(&token), Some(body)).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(code)), "{v}");
    }
    let (s, link) = app
        .call(
            Method::POST,
            "/v1/links",
            Some(&token),
            Some(json!({"kind": "inbox", "responder": "Ann", "expires_in": "1h"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let url = link["url"].as_str().unwrap();
    let (_, cookie, _) = exchange(&app, url, false).await;
    let (cookie, _) = cookie.unwrap();
    assert_eq!(with_cookie(&app, Method::GET, "/v1/approvals", &cookie, None, None).await.0, StatusCode::OK);

    // Signing out ends this session only.
    let (_, second, _) = exchange(&app, url, false).await;
    let (second, _) = second.unwrap();
    let (s, _) = with_cookie(&app, Method::DELETE, "/v1/sessions/current", &second, None, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(with_cookie(&app, Method::GET, "/v1/approvals", &second, None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(with_cookie(&app, Method::GET, "/v1/approvals", &cookie, None, None).await.0, StatusCode::OK);

    // A link keeps its 20 newest sessions: the oldest end as more are made.
    for _ in 0..20 {
        clock.advance(Duration::seconds(1));
        exchange(&app, url, false).await;
    }
    assert_eq!(with_cookie(&app, Method::GET, "/v1/approvals", &cookie, None, None).await.0, StatusCode::UNAUTHORIZED);
    let (_, cookie, _) = exchange(&app, url, false).await;
    let (cookie, _) = cookie.unwrap();
    let n: i64 = app.db.client().await.query_one("SELECT count(*) FROM herald.sessions", &[]).await.unwrap().get(0);
    assert_eq!(n, 20);

    clock.advance(Duration::hours(2));
    let (s, v) = with_cookie(&app, Method::GET, "/v1/approvals", &cookie, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("expired"), "{v}");
    assert_eq!(exchange(&app, url, false).await.0, StatusCode::UNAUTHORIZED, "an expired link's credential");
    assert_eq!(exchange(&app, "/inbox#hrldl_acme.nope", false).await.0, StatusCode::UNAUTHORIZED);
    let forged = format!("{}=hrlds_acme.{}", "herald_session", "A".repeat(43));
    assert_eq!(with_cookie(&app, Method::GET, "/v1/approvals", &forged, None, None).await.0, StatusCode::UNAUTHORIZED);
}
