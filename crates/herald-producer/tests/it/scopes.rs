//! Tokens and scopes: every route of docs/openapi.yaml with a token of every scope, the
//! operator's routes, revocation (at once, in every process), expiry and disabled tenants.

use axum::http::{Method, StatusCode};
use chrono::{Duration, Utc};
use herald_core::clock::{ManualClock, SharedClock};
use herald_core::targets::AllowList;
use herald_producer::api::{router, AppState};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::api::{spec_routes, PUBLIC_ROUTES};
use crate::App;

/// What docs/api.md promises each scope may call, written out apart from the code's rule.
fn promised(scope: &str, method: &Method, route: &str) -> bool {
    let get = method == Method::GET;
    let ops = ["/v1/approvals", "/v1/approvals/{call_id}", "/v1/human_contacts", "/v1/human_contacts/{call_id}"];
    let respond = ["/v1/approvals/{call_id}/respond", "/v1/human_contacts/{call_id}/respond"];
    match scope {
        "full" => true,
        "read" => get && !route.starts_with("/v1/tokens"),
        "publish" => {
            (get && (route.starts_with("/v1/events") || ops.contains(&route) || route == "/v1/tenant"))
                || (method == Method::POST
                    && (route == "/v1/events" || route == "/v1/approvals" || route == "/v1/human_contacts"))
        }
        "respond" => {
            (get && (ops.contains(&route) || route == "/v1/tenant"))
                || (method == Method::POST && respond.contains(&route))
        }
        _ => unreachable!(),
    }
}

async fn token(app: &App, full: &str, scope: &str) -> String {
    let (s, v) = app.call(Method::POST, "/v1/tokens", Some(full), Some(json!({"name": scope, "scope": scope}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["scope"], scope);
    v["token"].as_str().unwrap().to_string()
}

/// Every `/v1` route of the spec, with each scope: refused with 403 `forbidden` exactly where
/// the scope does not allow it; elsewhere answered by the route itself (never 401 or 403).
#[tokio::test]
async fn every_route_answers_as_each_scope_says() {
    let app = App::new().await;
    let full = app.db.tenant("acme").await;
    // The operator's calls (disable among them) go to another tenant than the tokens'.
    app.db.tenant("bystander").await;
    let operator = operator_token(&app).await;
    let mut walked = 0;
    // `full` last: its calls may change things (all on ids that name nothing).
    for scope in ["read", "publish", "respond", "full"] {
        let token = if scope == "full" { full.clone() } else { token(&app, &full, scope).await };
        for (method, template) in spec_routes() {
            if PUBLIC_ROUTES.contains(&template.as_str()) {
                continue;
            }
            let path = template
                .replace("{id}", "tok_00000000000000000000000000")
                .replace("{call_id}", "nobody")
                .replace("/v1/admin/tenants/tok_00000000000000000000000000", "/v1/admin/tenants/bystander");
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            let (s, v) = app.call(method.clone(), &path, Some(&token), body.clone()).await;
            if template.starts_with("/v1/admin") {
                assert_eq!(
                    (s, v["error"]["code"].as_str()),
                    (StatusCode::FORBIDDEN, Some("forbidden")),
                    "{scope} {method} {path}: {v}"
                );
                let (s, v) = app.call(method.clone(), &path, Some(&operator), body).await;
                assert!(
                    s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED,
                    "operator {method} {path}: {s} {v}"
                );
            } else if promised(scope, &method, &template) {
                assert!(
                    s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED,
                    "{scope} {method} {path}: {s} {v}"
                );
                let (s, v) = app.call(method.clone(), &path, Some(&operator), body).await;
                assert_eq!(
                    (s, v["error"]["code"].as_str()),
                    (StatusCode::FORBIDDEN, Some("forbidden")),
                    "operator {method} {path}: {v}"
                );
            } else {
                assert_eq!(
                    (s, v["error"]["code"].as_str()),
                    (StatusCode::FORBIDDEN, Some("forbidden")),
                    "{scope} {method} {path}: {v}"
                );
                let message = v["error"]["message"].as_str().unwrap();
                assert!(message.contains(&format!("`{scope}`")), "the refusal names the scope: {message}");
            }
            walked += 1;
        }
    }
    assert!(walked >= 4 * 30, "only {walked} calls: is docs/openapi.yaml read right?");
}

async fn operator_token(app: &App) -> String {
    let client = app.db.client().await;
    herald_producer::tenant::create_operator_token(&client, "test", None, Utc::now()).await.unwrap().token
}

#[tokio::test]
async fn tokens_are_made_once_listed_without_secret_and_revoked() {
    let app = App::new().await;
    let full = app.db.tenant("acme").await;
    let (s, made) = app
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&full),
            Some(json!({"name": "ci", "scope": "publish", "expires_at": "2099-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let publish = made["token"].as_str().unwrap().to_string();
    assert!(publish.starts_with("hrld_acme."));
    assert_eq!((made["name"].as_str(), made["expires_at"].as_str()), (Some("ci"), Some("2099-01-01T00:00:00Z")));
    let (s, list) = app.call(Method::GET, "/v1/tokens", Some(&full), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!list.to_string().contains(&publish[10..]), "a list never shows a token: {list}");
    let listed: Vec<&Value> = list["data"].as_array().unwrap().iter().filter(|t| t["id"] == made["id"]).collect();
    assert_eq!((listed.len(), listed[0]["scope"].as_str()), (1, Some("publish")));
    let stored: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM herald.api_tokens WHERE token_hash = sha256($1::text::bytea)", &[&publish])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1, "only the token's hash is kept");

    // Bad input: a clear 422 and nothing made.
    for (body, code) in [
        (json!({"name": "x", "scope": "admin"}), "invalid_scope"),
        (json!({"name": "", "scope": "read"}), "invalid_name"),
        (json!({"name": "x", "scope": "read", "expires_at": "2001-01-01T00:00:00Z"}), "invalid_expires_at"),
        (json!({"name": "x"}), "invalid_field"),
        // serde would fill the fields from an array, in order: every body is an object.
        (json!(["x", "publish"]), "invalid_field"),
    ] {
        let (s, v) = app.call(Method::POST, "/v1/tokens", Some(&full), Some(body)).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(code)), "{v}");
    }

    let (_, after) = app.call(Method::GET, "/v1/tokens", Some(&full), None).await;
    assert_eq!(after["data"].as_array().map(Vec::len), list["data"].as_array().map(Vec::len), "nothing made: {after}");
    let (s, v) = app.call(Method::PATCH, "/v1/tenant", Some(&full), Some(json!(["ops@example.com", null]))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field")), "{v}");
    let (s, _) = app.call(Method::POST, "/v1/events", Some(&publish), Some(json!({"type": "t", "data": 1}))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let id = made["id"].as_str().unwrap();
    let (s, _) = app.call(Method::DELETE, &format!("/v1/tokens/{id}"), Some(&full), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = app.call(Method::POST, "/v1/events", Some(&publish), Some(json!({"type": "t", "data": 1}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("revoked"), "{v}");
    let (s, _) = app.call(Method::DELETE, &format!("/v1/tokens/{id}"), Some(&full), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "revoked once");
    let (_, list) = app.call(Method::GET, "/v1/tokens", Some(&full), None).await;
    assert!(list["data"].as_array().unwrap().iter().all(|t| t["id"] != made["id"]), "a revoked token is not listed");
}

/// Two API processes (two states with their own caches, each listening): a token that both
/// have used is refused by both once one of them revokes it, without waiting for the cache's
/// TTL.
#[tokio::test]
async fn a_revoked_token_is_refused_at_once_by_every_process() {
    let app = App::new().await;
    let full = app.db.tenant("acme").await;
    let shutdown = CancellationToken::new();
    let url = app.db.url.clone();
    let mut other = Vec::new();
    for _ in 0..2 {
        let state = AppState::new(
            app.db.pool.clone(),
            herald_core::clock::system(),
            AllowList::none(),
            4096,
            herald_core::metrics::Metrics::new(),
        );
        tokio::spawn(state.watch_tokens(url.clone(), shutdown.clone()));
        other.push((state.tokens.clone(), router(state)));
    }
    let mut deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !other.iter().all(|(c, _)| c.wake().is_some_and(|w| w.listening())) {
        assert!(std::time::Instant::now() < deadline, "the token listeners did not start");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (s, made) =
        app.call(Method::POST, "/v1/tokens", Some(&full), Some(json!({"name": "r", "scope": "read"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let read = made["token"].as_str().unwrap().to_string();
    for (_, r) in &other {
        assert_eq!(crate::call_router(r, Method::GET, "/v1/endpoints", Some(&read)).await.0, StatusCode::OK);
    }
    let (s, _) = crate::call_router(
        &other[0].1,
        Method::DELETE,
        &format!("/v1/tokens/{}", made["id"].as_str().unwrap()),
        Some(&full),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Process 0 revoked it: refused there at once. Process 1 hears of it within a moment,
    // far sooner than the cache's 10 s.
    assert_eq!(
        crate::call_router(&other[0].1, Method::GET, "/v1/endpoints", Some(&read)).await.0,
        StatusCode::UNAUTHORIZED
    );
    deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let (s, _) = crate::call_router(&other[1].1, Method::GET, "/v1/endpoints", Some(&read)).await;
        if s == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "process 1 still serves a revoked token from its cache");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    shutdown.cancel();
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let db = herald_testkit::TestDb::new().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let shared: SharedClock = clock.clone();
    let state = AppState::new(db.pool.clone(), shared, AllowList::none(), 4096, herald_core::metrics::Metrics::new());
    let app = App { router: router(state), db };
    let full = app.db.tenant("acme").await;
    let expires = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let (s, made) = app
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&full),
            Some(json!({"name": "1h", "scope": "read", "expires_at": expires})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let read = made["token"].as_str().unwrap();
    assert_eq!(app.call(Method::GET, "/v1/endpoints", Some(read), None).await.0, StatusCode::OK);
    clock.advance(Duration::hours(2));
    let (s, v) = app.call(Method::GET, "/v1/endpoints", Some(read), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    assert!(v["error"]["message"].as_str().unwrap().contains("expired"), "{v}");
    assert_eq!(
        app.call(Method::GET, "/v1/endpoints", Some(&full), None).await.0,
        StatusCode::OK,
        "the token without expiry works"
    );
    // Expired comes before disabled: an expired token of a disabled tenant is no credential (401).
    app.db.client().await.execute("UPDATE herald.tenants SET disabled_at = now()", &[]).await.unwrap();
    let (s, v) = app.call(Method::GET, "/v1/endpoints", Some(read), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "{v}");
    let (s, v) = app.call(Method::GET, "/v1/endpoints", Some(&full), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("tenant_disabled")), "{v}");
}

#[tokio::test]
async fn the_operator_makes_lists_disables_and_enables_tenants() {
    let app = App::new().await;
    let operator = operator_token(&app).await;
    let (s, v) = app.call(Method::POST, "/v1/admin/tenants", None, Some(json!({"id": "acme"}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, made) = app.call(Method::POST, "/v1/admin/tenants", Some(&operator), Some(json!({"id": "acme"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    assert_eq!(
        (made["id"].as_str(), made["token"]["scope"].as_str(), made["disabled_at"].as_null()),
        (Some("acme"), Some("full"), Some(()))
    );
    let acme = made["token"]["token"].as_str().unwrap().to_string();
    assert_eq!(app.call(Method::GET, "/v1/endpoints", Some(&acme), None).await.0, StatusCode::OK);
    let (s, v) = app.call(Method::POST, "/v1/admin/tenants", Some(&operator), Some(json!({"id": "acme"}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("tenant_exists")));
    let (s, v) = app.call(Method::POST, "/v1/admin/tenants", Some(&operator), Some(json!({"id": "Bad Name"}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_tenant_id")));
    app.call(Method::POST, "/v1/admin/tenants", Some(&operator), Some(json!({"id": "globex"}))).await;
    let (s, list) = app.call(Method::GET, "/v1/admin/tenants?limit=1", Some(&operator), None).await;
    assert_eq!((s, list["data"][0]["id"].as_str()), (StatusCode::OK, Some("acme")), "{list}");
    let cursor = list["next_cursor"].as_str().unwrap();
    let (_, next) =
        app.call(Method::GET, &format!("/v1/admin/tenants?limit=1&cursor={cursor}"), Some(&operator), None).await;
    assert_eq!((next["data"][0]["id"].as_str(), next["next_cursor"].as_null()), (Some("globex"), Some(())));

    let (s, v) = app.call(Method::POST, "/v1/admin/tenants/acme/disable", Some(&operator), None).await;
    assert!(s == StatusCode::OK && v["disabled_at"].is_string(), "{v}");
    let (s, v) = app.call(Method::GET, "/v1/endpoints", Some(&acme), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("tenant_disabled")));
    let (s, issued) = app
        .call(
            Method::POST,
            "/v1/admin/tenants/acme/tokens",
            Some(&operator),
            Some(json!({"name": "ops", "scope": "read"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{issued}");
    let read = issued["token"].as_str().unwrap();
    assert_eq!(
        app.call(Method::GET, "/v1/endpoints", Some(read), None).await.0,
        StatusCode::FORBIDDEN,
        "every token of a disabled tenant"
    );
    let (s, v) = app.call(Method::POST, "/v1/admin/tenants/acme/enable", Some(&operator), None).await;
    assert!(s == StatusCode::OK && v["disabled_at"].is_null(), "{v}");
    assert_eq!(app.call(Method::GET, "/v1/endpoints", Some(&acme), None).await.0, StatusCode::OK);
    assert_eq!(app.call(Method::GET, "/v1/endpoints", Some(read), None).await.0, StatusCode::OK);
    let (s, _) = app.call(Method::GET, "/v1/admin/tenants/nobody", Some(&operator), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A revoked operator token is refused.
    let client = app.db.client().await;
    let id: String = client.query_one("SELECT token_id FROM herald.operator_tokens", &[]).await.unwrap().get(0);
    let id = herald_core::id::TokenId::parse(&id).unwrap();
    assert!(herald_producer::tenant::revoke_operator_token(&client, &id, Utc::now()).await.unwrap());
    let (s, _) = app.call(Method::GET, "/v1/admin/tenants", Some(&operator), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A bad token of the other kind is 401 too, not 403: it is no credential at all.
    let (s, _) = app.call(Method::GET, "/v1/endpoints", Some(&operator), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a revoked operator token on a tenant's route");
    let made_up = herald_core::token::generate("acme");
    let (s, _) = app.call(Method::GET, "/v1/admin/tenants", Some(&made_up), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "an unknown tenant token on /v1/admin");
    let (s, _) = app.call(Method::GET, "/v1/admin/tenants", Some(&acme), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a good tenant token on /v1/admin");
}
