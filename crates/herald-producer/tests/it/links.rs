//! Links: a link's credential is exchanged for a session cookie. An inbox link's answers
//! operations (of the link's run only) as the link's responder, and nothing else; a portal
//! link's manages the endpoints of its consumer, and nothing else. Revocation and expiry end
//! them at once.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{Duration, Utc};
use herald_core::clock::{ManualClock, SharedClock};
use herald_producer::api::{router, AppState};
use serde_json::{json, Value};

use crate::api::{spec_routes, PUBLIC_ROUTES};
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
        (json!({"kind": "settings"}), "invalid_kind"),
        (json!({"kind": "portal", "responder": "x"}), "invalid_field"),
        (json!({"kind": "portal", "run_id": "r1"}), "invalid_field"),
        (json!({"kind": "portal", "consumer": "not a name!"}), "invalid_consumer"),
        (json!({"kind": "inbox", "responder": "x", "consumer": "shop"}), "invalid_consumer"),
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

const ORIGIN: Option<&str> = Some("http://herald.example");

/// A link's session cookie: makes the link with `body`, exchanges it.
async fn session(app: &App, token: &str, body: Value) -> (String, Value) {
    let (s, link) = app.call(Method::POST, "/v1/links", Some(token), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let (s, cookie, v) = exchange(app, link["url"].as_str().unwrap(), false).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (cookie.unwrap().0, link)
}

async fn endpoint(app: &App, token: &str, url: &str, consumer: Option<&str>) -> String {
    let (s, v) =
        app.call(Method::POST, "/v1/endpoints", Some(token), Some(json!({"url": url, "consumer": consumer}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_portal_link_manages_its_consumers_endpoints_and_nothing_else() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let ours = endpoint(&app, &token, "https://shop.example.com/hooks", Some("shop")).await;
    let theirs = endpoint(&app, &token, "https://globex.example.com/hooks", Some("globex")).await;
    let untagged = endpoint(&app, &token, "https://internal.example.com/hooks", None).await;
    // One event for each consumer: each reaches its consumer's endpoint.
    let mut events = Vec::new();
    for (id, consumer) in [("ev1", "shop"), ("ev2", "globex")] {
        let body = json!({"id": id, "type": "order.paid", "data": 1, "consumer": consumer});
        let (s, _) = app.call(Method::POST, "/v1/events", Some(&token), Some(body)).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        events.push(app.call(Method::GET, &format!("/v1/events/{id}"), Some(&token), None).await.1);
    }
    let delivery_to = |event: &Value, endpoint: &str| {
        event["deliveries"].as_array().unwrap().iter().find(|d| d["endpoint_id"] == endpoint).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (our_delivery, their_delivery) = (delivery_to(&events[0], &ours), delivery_to(&events[1], &theirs));
    let since = (Utc::now() - Duration::hours(1)).to_rfc3339();
    let (s, replay) = app
        .call(Method::POST, &format!("/v1/endpoints/{theirs}/replay"), Some(&token), Some(json!({"since": since})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{replay}");
    let their_replay = replay["id"].as_str().unwrap().to_string();

    let (cookie, link) = session(&app, &token, json!({"kind": "portal", "consumer": "shop"})).await;
    assert!(link["url"].as_str().unwrap().starts_with("/portal#hrldl_acme."), "{link}");
    let call = |m: Method, p: String, b: Option<Value>| {
        let (app, cookie) = (&app, cookie.clone());
        async move { with_cookie(app, m, &p, &cookie, ORIGIN, b).await }
    };
    let (s, me) = call(Method::GET, "/v1/sessions/current".into(), None).await;
    assert_eq!((s, me["kind"].as_str(), me["consumer"].as_str()), (StatusCode::OK, Some("portal"), Some("shop")));

    // The consumer's endpoints only, and what hangs off them.
    let (s, list) = call(Method::GET, "/v1/endpoints".into(), None).await;
    assert_eq!((s, ids(&list)), (StatusCode::OK, vec![ours.clone()]));
    let (s, v) = call(Method::GET, "/v1/endpoints?consumer=globex".into(), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    for other in [&theirs, &untagged] {
        for (m, tail, body) in [
            (Method::GET, "", None),
            (Method::PATCH, "", Some(json!({"description": "mine now"}))),
            (Method::DELETE, "", None),
            (Method::GET, "/deliveries", None),
            (Method::GET, "/attempts", None),
            (Method::GET, "/stats", None),
            (Method::POST, "/rotate-secret", None),
            (Method::POST, "/test", None),
            (Method::POST, "/enable", None),
            (Method::POST, "/disable", None),
            (Method::POST, "/replay", Some(json!({"since": since}))),
        ] {
            let (s, v) = call(m.clone(), format!("/v1/endpoints/{other}{tail}"), body).await;
            assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{m} {tail}: {v}");
        }
    }
    for (m, p) in [
        (Method::GET, format!("/v1/deliveries/{their_delivery}")),
        (Method::GET, format!("/v1/deliveries/{their_delivery}/attempts")),
        (Method::POST, format!("/v1/deliveries/{their_delivery}/retry")),
        (Method::GET, format!("/v1/replays/{their_replay}")),
    ] {
        let (s, v) = call(m.clone(), p.clone(), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {p}: {v}");
    }
    let (_, v) = call(Method::GET, format!("/v1/endpoints/{theirs}"), None).await;
    assert!(!v.to_string().contains("globex"), "a refusal names nothing of another consumer: {v}");

    for (m, tail) in
        [(Method::GET, ""), (Method::GET, "/deliveries"), (Method::GET, "/attempts"), (Method::GET, "/stats")]
    {
        let (s, v) = call(m.clone(), format!("/v1/endpoints/{ours}{tail}"), None).await;
        assert_eq!(s, StatusCode::OK, "{m} {tail}: {v}");
    }
    let (s, v) = call(Method::GET, format!("/v1/deliveries/{our_delivery}"), None).await;
    assert_eq!((s, v["endpoint_id"].as_str()), (StatusCode::OK, Some(ours.as_str())), "{v}");
    let (s, v) = call(Method::GET, format!("/v1/deliveries/{our_delivery}/attempts"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, replay) = call(Method::POST, format!("/v1/endpoints/{ours}/replay"), Some(json!({"since": since}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{replay}");
    let our_replay = replay["id"].as_str().unwrap().to_string();
    assert_eq!(call(Method::GET, format!("/v1/replays/{our_replay}"), None).await.0, StatusCode::OK);
    let (_, replays) = call(Method::GET, "/v1/replays".into(), None).await;
    assert_eq!(ids(&replays), vec![our_replay.clone()], "the other consumer's replay is not listed");
    let (_, all) = app.call(Method::GET, "/v1/replays", Some(&token), None).await;
    assert_eq!(ids(&all).len(), 2, "the tenant's token sees both: {all}");

    // What the session makes is the consumer's; it cannot hand an endpoint to another.
    let (s, made) =
        call(Method::POST, "/v1/endpoints".into(), Some(json!({"url": "https://shop.example.com/v2"}))).await;
    assert_eq!((s, made["consumer"].as_str()), (StatusCode::CREATED, Some("shop")), "{made}");
    assert!(made["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "the secret, once: {made}");
    let body = json!({"url": "https://shop.example.com/v3", "consumer": "globex"});
    let (s, v) = call(Method::POST, "/v1/endpoints".into(), Some(body)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{v}");
    for body in [json!({"consumer": null}), json!({"consumer": "globex"})] {
        let (s, v) = call(Method::PATCH, format!("/v1/endpoints/{ours}"), Some(body.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{body}: {v}");
    }
    let (s, v) =
        call(Method::PATCH, format!("/v1/endpoints/{ours}"), Some(json!({"consumer": "shop", "description": "Shop"})))
            .await;
    assert_eq!((s, v["description"].as_str()), (StatusCode::OK, Some("Shop")), "{v}");

    // Nothing but endpoints.
    for (m, p) in [
        (Method::GET, "/v1/events"),
        (Method::POST, "/v1/events"),
        (Method::GET, "/v1/events/ev1"),
        (Method::GET, "/v1/events/ev1/attempts"),
        (Method::GET, "/v1/approvals"),
        (Method::GET, "/v1/tenant"),
        (Method::GET, "/v1/links"),
        (Method::POST, "/v1/links"),
        (Method::GET, "/v1/tokens"),
    ] {
        let (s, v) = call(m.clone(), p.into(), Some(json!({}))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{m} {p}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("portal link"), "{v}");
    }

    // A portal link without a consumer manages every endpoint of the tenant.
    let (every, _) = session(&app, &token, json!({"kind": "portal"})).await;
    let (_, list) = with_cookie(&app, Method::GET, "/v1/endpoints", &every, None, None).await;
    assert_eq!(ids(&list).len(), 4, "{list}");

    // Revoked: refused at once.
    let id = link["id"].as_str().unwrap();
    assert_eq!(
        app.call(Method::DELETE, &format!("/v1/links/{id}"), Some(&token), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (s, v) = call(Method::GET, "/v1/endpoints".into(), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
}

/// What docs/api.md promises each kind of link's session may call, written out apart from the
/// code's rule.
fn promised(kind: &str, method: &Method, route: &str) -> bool {
    let get = method == Method::GET;
    if route == "/v1/sessions/current" {
        return true;
    }
    match kind {
        "inbox" => {
            (get && ["/v1/approvals", "/v1/approvals/{call_id}", "/v1/human_contacts", "/v1/human_contacts/{call_id}"]
                .contains(&route))
                || (method == Method::POST && route.ends_with("/respond"))
        }
        "portal" => {
            let endpoint = route == "/v1/endpoints" || route.starts_with("/v1/endpoints/");
            let posts = ["rotate-secret", "test", "enable", "disable", "replay"];
            (endpoint && get)
                || (route == "/v1/endpoints" && method == Method::POST)
                || (route == "/v1/endpoints/{id}" && (method == Method::PATCH || method == Method::DELETE))
                || (method == Method::POST && posts.iter().any(|p| route == format!("/v1/endpoints/{{id}}/{p}")))
                || (get && (route.starts_with("/v1/deliveries/{id}") || route.starts_with("/v1/replays")))
                || (method == Method::POST && route == "/v1/deliveries/{id}/retry")
        }
        _ => unreachable!(),
    }
}

/// Every `/v1` route of the spec with each kind of link's session: 403 `forbidden` exactly
/// where the kind does not allow it, naming the kind; elsewhere answered by the route itself.
#[tokio::test]
async fn every_route_answers_a_links_session_as_its_kind_says() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let mut walked = 0;
    for (kind, body) in [
        ("inbox", json!({"kind": "inbox", "responder": "Ann"})),
        ("portal", json!({"kind": "portal", "consumer": "shop"})),
        ("portal", json!({"kind": "portal"})),
    ] {
        let (cookie, _) = session(&app, &token, body).await;
        for (method, template) in spec_routes() {
            // The operator's routes take an operator token, and answer 401 to anything else.
            if PUBLIC_ROUTES.contains(&template.as_str()) || template.starts_with("/v1/admin/") {
                continue;
            }
            let path = template.replace("{id}", "tok_00000000000000000000000000").replace("{call_id}", "nobody");
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            let (s, v) = with_cookie(&app, method.clone(), &path, &cookie, ORIGIN, body).await;
            if promised(kind, &method, &template) {
                assert!(s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED, "{kind} {method} {path}: {s} {v}");
            } else {
                assert_eq!(
                    (s, v["error"]["code"].as_str()),
                    (StatusCode::FORBIDDEN, Some("forbidden")),
                    "{kind} {method} {path}: {v}"
                );
                assert!(v["error"]["message"].as_str().unwrap().contains(&format!("{kind} link")), "{v}");
            }
            walked += 1;
        }
    }
    assert!(walked >= 3 * 30, "only {walked} calls: is docs/openapi.yaml read right?");
}

/// A delivery to the callback URL of `event` (published with one), as the tenant sees it.
async fn callback_delivery(app: &App, token: &str, event: &str) -> String {
    let (_, v) = app.call(Method::GET, &format!("/v1/events/{event}"), Some(token), None).await;
    let delivery = v["deliveries"].as_array().unwrap().iter().find(|d| d["endpoint_id"].is_null()).cloned();
    delivery.unwrap_or_else(|| panic!("no callback delivery: {v}"))["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_portal_without_a_consumer_reaches_every_endpoint_but_no_callback() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let ours = endpoint(&app, &token, "https://shop.example.com/hooks", None).await;
    let body =
        json!({"id": "ev1", "type": "order.paid", "data": 1, "callback_url": "https://cb.example.com/done?key=s3cret"});
    let (s, v) = app.call(Method::POST, "/v1/events", Some(&token), Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    // The callback goes through the outbox: fan it out as the poller would.
    let poller = herald_outbox_poller::Poller::new(
        app.db.pool.clone(),
        herald_core::clock::system(),
        Default::default(),
        herald_core::metrics::Metrics::new(),
    );
    poller.tick().await.unwrap();
    let callback = callback_delivery(&app, &token, "ev1").await;
    let (_, event) = app.call(Method::GET, "/v1/events/ev1", Some(&token), None).await;
    let to_endpoint = event["deliveries"].as_array().unwrap().iter().find(|d| d["endpoint_id"] == ours.as_str());
    let to_endpoint = to_endpoint.unwrap()["id"].as_str().unwrap().to_string();

    let (every, _) = session(&app, &token, json!({"kind": "portal"})).await;
    for (m, p) in [
        (Method::GET, format!("/v1/deliveries/{callback}")),
        (Method::GET, format!("/v1/deliveries/{callback}/attempts")),
        (Method::POST, format!("/v1/deliveries/{callback}/retry")),
    ] {
        let (s, v) = with_cookie(&app, m.clone(), &p, &every, ORIGIN, None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{m} {p}: {v}");
        assert!(!v.to_string().contains("s3cret"), "{v}");
    }
    let (s, v) = with_cookie(&app, Method::GET, &format!("/v1/deliveries/{to_endpoint}"), &every, None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = with_cookie(&app, Method::GET, &format!("/v1/endpoints/{ours}/stats"), &every, None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = app.call(Method::GET, &format!("/v1/deliveries/{callback}"), Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "the tenant's token reaches it");
}

/// Every route a portal session may call is held to its consumer: by the extractor's check of
/// the path's object, or by its handler (a list, a creation, the session itself). One it does
/// not know is refused whatever the kind allows.
#[test]
fn every_route_a_portal_may_call_is_held_to_its_consumer() {
    use herald_core::token::LinkKind;
    use herald_producer::api::extract::{portal_reach, PortalReach, PORTAL_NARROWED};
    let mut allowed = 0;
    for (method, route) in spec_routes() {
        if !LinkKind::Portal.allows(method.as_str(), &route) {
            continue;
        }
        allowed += 1;
        match portal_reach(&route) {
            Some(PortalReach::Object { .. }) => assert!(route.contains("{id}"), "{method} {route}"),
            Some(PortalReach::Narrowed) => assert!(PORTAL_NARROWED.contains(&route.as_str()), "{method} {route}"),
            None => panic!("{method} {route}: a portal may call it, but nothing holds it to the portal's consumer"),
        }
    }
    assert!(allowed >= 20, "only {allowed} routes a portal may call: is docs/openapi.yaml read right?");
    for route in ["/v1/events/{id}", "/v1/links/{id}", "/v1/tokens", "/v1/approvals/{call_id}"] {
        assert_eq!(portal_reach(route), None, "{route}");
    }
}

/// A PATCH with the session `cookie` whose body comes only once `meanwhile` has run: a client
/// holding its body back while the tenant changes things.
async fn held_patch(
    app: &App,
    path: &str,
    cookie: &str,
    body: Value,
    meanwhile: impl std::future::Future<Output = ()>,
) -> (StatusCode, Value) {
    let (asked, asked_for) = tokio::sync::oneshot::channel::<()>();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let stream = futures_util::stream::once(async move {
        let _ = asked.send(());
        let _ = released.await;
        Ok::<_, std::io::Error>(axum::body::Bytes::from(body.to_string()))
    });
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(path)
        .header("cookie", cookie)
        .header("host", "herald.example")
        .header("origin", ORIGIN.unwrap())
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap();
    let tenant_side = async {
        // The extractors have passed once the body is asked for.
        tokio::time::timeout(std::time::Duration::from_secs(10), asked_for).await.expect("the body is read").unwrap();
        meanwhile.await;
        release.send(()).unwrap();
    };
    let (res, ()) = tokio::join!(tower::ServiceExt::oneshot(app.router.clone(), req), tenant_side);
    let res = res.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_held_body_is_checked_again_once_it_is_in() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let ours = endpoint(&app, &token, "https://shop.example.com/hooks", Some("shop")).await;
    let path = format!("/v1/endpoints/{ours}");
    let description = || async {
        let (_, v) = app.call(Method::GET, &path, Some(&token), None).await;
        v["description"].as_str().unwrap().to_string()
    };

    // The link is revoked while the body is held: 401, nothing written.
    let (cookie, link) = session(&app, &token, json!({"kind": "portal", "consumer": "shop"})).await;
    let revoke = async {
        let id = link["id"].as_str().unwrap();
        let (s, _) = app.call(Method::DELETE, &format!("/v1/links/{id}"), Some(&token), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    };
    let (s, v) = held_patch(&app, &path, &cookie, json!({"description": "late"}), revoke).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(description().await, "");

    // Nothing changed meanwhile: the body is taken.
    let (cookie, _) = session(&app, &token, json!({"kind": "portal", "consumer": "shop"})).await;
    let (s, v) = held_patch(&app, &path, &cookie, json!({"description": "on time"}), async {}).await;
    assert_eq!((s, v["description"].as_str()), (StatusCode::OK, Some("on time")), "{v}");

    // The endpoint is deleted while the body is held: 404, nothing written.
    let delete = async {
        let (s, v) = app.call(Method::DELETE, &path, Some(&token), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    };
    let (s, v) = held_patch(&app, &path, &cookie, json!({"description": "late"}), delete).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{v}");
}

#[tokio::test]
async fn a_portal_is_not_told_the_tenants_allowed_domains() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let ours = endpoint(&app, &token, "https://shop.example.com/hooks", Some("shop")).await;
    let domains = vec!["shop.example.com".to_string(), "globex.example.com".to_string()];
    let client = app.db.client().await;
    client
        .execute("UPDATE herald.tenants SET allowed_domains = $2 WHERE tenant_id = $1", &[&"acme", &domains])
        .await
        .unwrap();
    let elsewhere = json!({"url": "https://elsewhere.example.net/hooks"});

    let (cookie, _) = session(&app, &token, json!({"kind": "portal", "consumer": "shop"})).await;
    for (m, p) in [(Method::POST, "/v1/endpoints".to_string()), (Method::PATCH, format!("/v1/endpoints/{ours}"))] {
        let (s, v) = with_cookie(&app, m.clone(), &p, &cookie, ORIGIN, Some(elsewhere.clone())).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("url_not_allowed")),
            "{m}: {v}"
        );
        assert!(!v.to_string().contains("globex"), "{m}: another customer's domain: {v}");
    }
    let (s, v) = app.call(Method::POST, "/v1/endpoints", Some(&token), Some(elsewhere)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("shop.example.com, globex.example.com"),
        "the tenant's own token is told: {v}"
    );
}
