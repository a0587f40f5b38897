//! The HTTP API's routes for events and endpoints, and tenant isolation.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::App;

#[tokio::test]
async fn publish_over_http_and_read_it_back() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let (s, v) = app
        .call(Method::POST, "/v1/events", Some(&token), Some(json!({"type": "run.finished", "data": {"run": 1}})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("evt_"));
    assert_eq!(v["duplicate"], false);
    assert!(v["created_at"].as_str().unwrap().ends_with('Z'));

    // Same id again: 200, duplicate, the original's time; the type given second is ignored.
    let (s, again) = app
        .call(Method::POST, "/v1/events", Some(&token), Some(json!({"id": id, "type": "other", "data": null})))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["created_at"], v["created_at"]);

    let (s, event) = app.call(Method::GET, &format!("/v1/events/{id}"), Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(event["type"], "run.finished");
    assert_eq!(event["data"], json!({"run": 1}));
    assert_eq!(event["deliveries"], json!([]));

    // Idempotency-Key header names the id; data null is a value.
    let req = axum::http::Request::post("/v1/events")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "order-42:paid")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .body(axum::body::Body::from(r#"{"type": "order.paid", "data": null}"#))
        .unwrap();
    let (s, v) = app.send(req).await;
    assert_eq!((s, v["id"].as_str()), (StatusCode::ACCEPTED, Some("order-42:paid")));
    let tp: Option<String> = app
        .db
        .client()
        .await
        .query_one("SELECT traceparent FROM herald.events WHERE event_id = 'order-42:paid'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tp.as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

#[tokio::test]
async fn endpoints_lifecycle() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let (s, ep) = app
        .call(
            Method::POST,
            "/v1/endpoints",
            t,
            Some(json!({"url": "https://hooks.example.com/herald", "event_types": ["meeting.*", "run.finished"], "description": "CRM", "retry_schedule": ["3s", "6s"], "max_in_flight": 4, "rate_limit_per_s": 10})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ep}");
    let id = ep["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ep_"));
    let secret = ep["secret"].as_str().unwrap().to_string();
    assert!(herald_core::signing::Secret::parse(&secret).is_ok());
    assert_eq!(ep["status"], "healthy");
    assert_eq!(ep["signature_scheme"], "standard-webhooks");
    assert_eq!(ep["retry_schedule"], json!(["3s", "6s"]));
    assert_eq!(ep["event_types"], json!(["meeting.*", "run.finished"]));

    // A client-given secret is kept.
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (s, ep2) = app
        .call(
            Method::POST,
            "/v1/endpoints",
            t,
            Some(json!({"url": "https://b.example.com/", "secret": given, "signature_scheme": "hmac-sha256-hex"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(ep2["secret"], given);

    // Reads do not show the secret.
    let (s, got) = app.call(Method::GET, &format!("/v1/endpoints/{id}"), t, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(got.get("secret").is_none());

    // Pagination: limit 1 gives a cursor, the second page the other one, then no cursor.
    let (_, page1) = app.call(Method::GET, "/v1/endpoints?limit=1", t, None).await;
    assert_eq!(page1["data"].as_array().unwrap().len(), 1);
    assert_eq!(page1["data"][0]["id"], id.as_str());
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = app.call(Method::GET, &format!("/v1/endpoints?limit=1&cursor={cursor}"), t, None).await;
    assert_eq!(page2["data"][0]["id"], ep2["id"]);
    assert_eq!(page2["next_cursor"], serde_json::Value::Null);

    // PATCH changes what it names; null resets a nullable field.
    let (s, patched) = app
        .call(
            Method::PATCH,
            &format!("/v1/endpoints/{id}"),
            t,
            Some(json!({"description": "CRM v2", "retry_schedule": null, "max_in_flight": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["description"], "CRM v2");
    assert_eq!(patched["retry_schedule"], serde_json::Value::Null);
    assert_eq!(patched["max_in_flight"], serde_json::Value::Null);
    assert_eq!(patched["rate_limit_per_s"], 10);
    assert_eq!(patched["url"], "https://hooks.example.com/herald");

    // Rotation: a new secret, the old one kept for the overlap window.
    let (s, rotated) = app.call(Method::POST, &format!("/v1/endpoints/{id}/rotate-secret"), t, None).await;
    assert_eq!(s, StatusCode::OK);
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT previous_secret, previous_secret_until - updated_at FROM herald.endpoints WHERE endpoint_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), secret);

    let (s, d) = app.call(Method::POST, &format!("/v1/endpoints/{id}/disable"), t, None).await;
    assert_eq!((s, d["status"].as_str()), (StatusCode::OK, Some("disabled")));
    let (s, e) = app.call(Method::POST, &format!("/v1/endpoints/{id}/enable"), t, None).await;
    assert_eq!((s, e["status"].as_str()), (StatusCode::OK, Some("healthy")));

    // Delete cancels the endpoint's pending deliveries.
    let c = app.db.client().await;
    c.batch_execute(&format!(
        "SELECT herald.publish('acme', 'run.finished', '{{}}'::jsonb, id => 'e1');
         INSERT INTO herald.deliveries (tenant_id, delivery_id, event_id, target, endpoint_id, url, next_attempt_at, created_at, updated_at)
         VALUES ('acme', 'dlv_1', 'e1', '{id}', '{id}', 'https://hooks.example.com/herald', now(), now(), now())"
    ))
    .await
    .unwrap();
    let (s, _) = app.call(Method::DELETE, &format!("/v1/endpoints/{id}"), t, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let state: String =
        c.query_one("SELECT state FROM herald.deliveries WHERE delivery_id = 'dlv_1'", &[]).await.unwrap().get(0);
    assert_eq!(state, "cancelled");
    let (s, _) = app.call(Method::GET, &format!("/v1/endpoints/{id}"), t, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tenants_see_only_their_own_objects() {
    let app = App::new().await;
    let acme = app.db.tenant("acme").await;
    let globex = app.db.tenant("globex").await;
    let (_, ep) =
        app.call(Method::POST, "/v1/endpoints", Some(&acme), Some(json!({"url": "https://a.example.com/"}))).await;
    let id = ep["id"].as_str().unwrap();
    let (_, ev) = app
        .call(Method::POST, "/v1/events", Some(&acme), Some(json!({"id": "shared-id", "type": "t", "data": 1})))
        .await;
    assert_eq!(ev["duplicate"], false);

    let before = app.db.row_counts().await;
    for (method, path, body) in [
        (Method::GET, format!("/v1/endpoints/{id}"), None),
        (Method::PATCH, format!("/v1/endpoints/{id}"), Some(json!({"description": "mine now"}))),
        (Method::DELETE, format!("/v1/endpoints/{id}"), None),
        (Method::POST, format!("/v1/endpoints/{id}/rotate-secret"), None),
        (Method::POST, format!("/v1/endpoints/{id}/disable"), None),
        (Method::POST, format!("/v1/endpoints/{id}/enable"), None),
        (Method::GET, "/v1/events/shared-id".to_string(), None),
    ] {
        let (s, v) = app.call(method.clone(), &path, Some(&globex), body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], "not_found");
    }
    assert_eq!(app.db.row_counts().await, before, "nothing changed for acme");
    let (_, list) = app.call(Method::GET, "/v1/endpoints", Some(&globex), None).await;
    assert_eq!(list["data"], json!([]));

    // Event ids are unique per tenant: globex may use acme's id.
    let (s, v) = app
        .call(Method::POST, "/v1/events", Some(&globex), Some(json!({"id": "shared-id", "type": "t", "data": 2})))
        .await;
    assert_eq!((s, v["duplicate"].as_bool()), (StatusCode::ACCEPTED, Some(false)));
}

#[tokio::test]
async fn health_routes() {
    let app = App::new().await;
    let (s, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A database whose migrations are behind is not ready.
    app.db.client().await.batch_execute("DELETE FROM herald.schema_history").await.unwrap();
    let (s, v) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(v["error"]["message"].as_str().unwrap().contains("herald migrate"));
}

#[tokio::test]
async fn loopback_targets_need_the_allow_list() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let (s, v) =
        app.call(Method::POST, "/v1/endpoints", Some(&token), Some(json!({"url": "http://127.0.0.1:9000/"}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("blocked_target")));

    let open = App::with_allow(herald_core::targets::AllowList::loopback()).await;
    let token = open.db.tenant("acme").await;
    let (s, _) =
        open.call(Method::POST, "/v1/endpoints", Some(&token), Some(json!({"url": "http://127.0.0.1:9000/"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = open.call(Method::POST, "/v1/endpoints", Some(&token), Some(json!({"url": "http://10.0.0.8/"}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("blocked_target")));
}

/// The spec's routes a walk leaves out: served without a token (the operator's routes, the
/// pages' files) or answering a link's session cookie only.
pub const PUBLIC_ROUTES: [&str; 13] = [
    "/v1/sessions",
    "/v1/sessions/current",
    "/healthz",
    "/readyz",
    "/metrics",
    "/favicon.ico",
    "/inbox",
    "/inbox/inbox.css",
    "/inbox/inbox.js",
    "/portal",
    "/portal/portal.css",
    "/portal/portal.js",
    "/pages/herald.js",
];

/// Every `(method, path)` of docs/openapi.yaml, read from its `paths:` section.
pub fn spec_routes() -> Vec<(Method, String)> {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml")).unwrap();
    let mut routes = Vec::new();
    let mut path = None;
    let mut in_paths = false;
    for line in spec.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            path = Some(format!("/{p}"));
        } else if let (Some(p), Some(m)) = (&path, line.strip_prefix("    ").and_then(|m| m.strip_suffix(':'))) {
            if let Ok(method) = m.to_ascii_uppercase().parse::<Method>() {
                if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                    routes.push((method, p.clone()));
                }
            }
        }
    }
    routes
}

/// Walks every route of the OpenAPI document with one tenant's token against another tenant's
/// objects: nothing is read, listed, changed, retried, replayed, rotated or answered, and
/// nothing is written. A route the walk does not know how to classify fails the test, so a new
/// route cannot be left out.
#[tokio::test]
async fn no_route_of_the_spec_reaches_another_tenants_objects() {
    let app = App::new().await;
    let acme = app.db.tenant("acme").await;
    let globex = app.db.tenant("globex").await;
    let call = |m: Method, p: String, t: &str, b: Option<serde_json::Value>| {
        let (app, t) = (&app, t.to_string());
        async move { app.call(m, &p, Some(&t), b).await }
    };
    // Acme's objects: an endpoint, an event with a delivery to it, an approval, a human contact.
    let (_, ep) =
        call(Method::POST, "/v1/endpoints".into(), &acme, Some(json!({"url": "https://a.example.com/"}))).await;
    let endpoint = ep["id"].as_str().unwrap().to_string();
    let (s, _) =
        call(Method::POST, "/v1/events".into(), &acme, Some(json!({"id": "acme-ev", "type": "t", "data": 1}))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (_, ev) = call(Method::GET, "/v1/events/acme-ev".into(), &acme, None).await;
    let delivery = ev["deliveries"][0]["id"].as_str().expect("the event has a delivery").to_string();
    for (route, body) in [
        ("/v1/approvals", json!({"call_id": "acme-call", "fn": "f", "kwargs": {}})),
        ("/v1/human_contacts", json!({"call_id": "acme-hc", "msg": "?"})),
    ] {
        let (s, v) = call(Method::POST, route.into(), &acme, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{route}: {v}");
    }
    let (s, replay) = call(
        Method::POST,
        format!("/v1/endpoints/{endpoint}/replay"),
        &acme,
        Some(json!({"since": "2000-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{replay}");
    let replay = replay["id"].as_str().unwrap().to_string();
    let replays = || async {
        let c = app.db.client().await;
        let r = c.query_one("SELECT count(*), max(updated_at) FROM herald.replays", &[]).await.unwrap();
        (r.get::<_, i64>(0), r.get::<_, Option<chrono::DateTime<chrono::Utc>>>(1))
    };
    let replays_before = replays().await;

    let before = app.db.row_counts().await;
    let creates = ["/v1/events", "/v1/endpoints", "/v1/approvals", "/v1/human_contacts", "/v1/tokens", "/v1/links"];
    let (s, link) =
        call(Method::POST, "/v1/links".into(), &acme, Some(json!({"kind": "inbox", "responder": "A"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let acme_link = link["id"].as_str().unwrap().to_string();
    let (_, tokens) = call(Method::GET, "/v1/tokens".into(), &acme, None).await;
    let acme_token = tokens["data"][0]["id"].as_str().expect("acme's token is listed").to_string();
    let mut walked = 0;
    for (method, template) in spec_routes() {
        if PUBLIC_ROUTES.contains(&template.as_str()) || template.starts_with("/v1/admin/") {
            // The operator's routes: a tenant's token is refused there (tests/it/scopes.rs).
            continue;
        }
        let path = template
            .replace("/v1/events/{id}", "/v1/events/acme-ev")
            .replace("/v1/endpoints/{id}", &format!("/v1/endpoints/{endpoint}"))
            .replace("/v1/deliveries/{id}", &format!("/v1/deliveries/{delivery}"))
            .replace("/v1/approvals/{call_id}", "/v1/approvals/acme-call")
            .replace("/v1/human_contacts/{call_id}", "/v1/human_contacts/acme-hc")
            .replace("/v1/tokens/{id}", &format!("/v1/tokens/{acme_token}"))
            .replace("/v1/links/{id}", &format!("/v1/links/{acme_link}"))
            .replace("/v1/replays/{id}", &format!("/v1/replays/{replay}"));
        assert!(!path.contains('{'), "{method} {template}: the walk does not know this path's parameter");
        if path == template {
            // No object in the path: a list, which must not show acme's, or a create, which
            // makes globex's own (checked below).
            if method == Method::GET && path == "/v1/tenant" {
                // The caller's own settings, never another tenant's.
                let (s, v) = call(method.clone(), path.clone(), &globex, None).await;
                assert_eq!((s, v["id"].as_str()), (StatusCode::OK, Some("globex")), "{method} {path}: {v}");
            } else if method == Method::PATCH && path == "/v1/tenant" {
                // The caller's own notice channels: globex's change leaves acme's alone
                // (checked after the walk).
                let body = json!({"notify_email": "ops@globex.example"});
                let (s, v) = call(method.clone(), path.clone(), &globex, Some(body)).await;
                assert_eq!(
                    (s, v["id"].as_str(), v["notify_email"].as_str()),
                    (StatusCode::OK, Some("globex"), Some("ops@globex.example")),
                    "{method} {path}: {v}"
                );
            } else if method == Method::GET && path == "/v1/tokens" {
                // The caller's own tokens: globex's one, never acme's.
                let (s, v) = call(method.clone(), path.clone(), &globex, None).await;
                let ids: Vec<&str> = v["data"].as_array().unwrap().iter().filter_map(|t| t["id"].as_str()).collect();
                assert_eq!((s, ids.contains(&acme_token.as_str()), ids.len()), (StatusCode::OK, false, 1), "{v}");
            } else if method == Method::GET {
                let (s, v) = call(method.clone(), path.clone(), &globex, None).await;
                assert_eq!((s, v["data"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{method} {path}: {v}");
            } else {
                assert!(
                    method == Method::POST && creates.contains(&path.as_str()),
                    "{method} {template}: not classified"
                );
            }
            walked += 1;
            continue;
        }
        let body = if path.starts_with("/v1/approvals/") && path.ends_with("/respond") {
            Some(json!({"approved": true}))
        } else if path.ends_with("/respond") {
            Some(json!({"response": "x"}))
        } else if path.ends_with("/replay") {
            Some(json!({"since": "2000-01-01T00:00:00Z"}))
        } else if method == Method::PATCH {
            Some(json!({"description": "mine now"}))
        } else if method == Method::POST {
            Some(json!({}))
        } else {
            None
        };
        let (s, v) = call(method.clone(), path.clone(), &globex, body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{method} {path}: {v}"
        );
        walked += 1;
    }
    assert!(walked >= 18, "only {walked} routes walked: is docs/openapi.yaml read right?");
    assert_eq!(app.db.row_counts().await, before, "globex changed nothing of acme's");
    assert_eq!(replays().await, replays_before, "nor made or changed a replay");
    let (s, _) = call(Method::GET, "/v1/tokens".into(), &acme, None).await;
    assert_eq!(s, StatusCode::OK, "acme's token was not revoked by globex");
    let (s, v) = call(Method::GET, "/v1/tenant".into(), &acme, None).await;
    assert_eq!((s, &v["notify_email"]), (StatusCode::OK, &serde_json::Value::Null), "acme's settings untouched: {v}");

    // The same call id is globex's own: created, not acme's answered back.
    let (s, v) = call(
        Method::POST,
        "/v1/approvals".into(),
        &globex,
        Some(json!({"call_id": "acme-call", "fn": "g", "kwargs": 1})),
    )
    .await;
    assert_eq!((s, v["spec"]["fn"].as_str()), (StatusCode::CREATED, Some("g")), "{v}");
}
