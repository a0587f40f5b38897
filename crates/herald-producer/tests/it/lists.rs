//! The lists people search (`GET /v1/events`, an endpoint's deliveries and attempts), an
//! endpoint's statistics, and paging in both directions over every list.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::App;

type Time = DateTime<Utc>;

fn t0() -> Time {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

/// Publishes through the outbox at `at` (so with no deliveries until a poller fans it out).
async fn publish_at(app: &App, tenant: &str, id: &str, event_type: &str, at: Time) {
    app.db
        .client()
        .await
        .execute(
            "SELECT herald.publish_event($1, $2, jsonb_build_object('n', $3::text), $3, NULL, NULL, NULL, NULL, $4)",
            &[&tenant, &event_type, &id, &at],
        )
        .await
        .unwrap();
}

/// A delivery of `event` to `target`, in `state`, with `last_error`.
async fn delivery(app: &App, event: &str, target: &str, state: &str, last_error: Option<&str>) -> String {
    let id = herald_core::id::new_id(herald_core::id::DELIVERY, Utc::now());
    app.db
        .client()
        .await
        .execute(
            "INSERT INTO herald.deliveries (tenant_id, delivery_id, event_id, target, endpoint_id, url, state, \
               next_attempt_at, created_at, updated_at, last_error, attempt_count) \
             VALUES ('acme', $1, $2, $3, $3, 'https://a.example.com/', $4, now(), now(), now(), $5, 1)",
            &[&id, &event, &target, &state, &last_error],
        )
        .await
        .unwrap();
    id
}

/// An attempt to `endpoint` started at `at`.
async fn attempt(app: &App, endpoint: &str, at: Time, status: Option<i32>, error: Option<&str>) -> String {
    let id = herald_core::id::new_id(herald_core::id::ATTEMPT, at);
    app.db
        .client()
        .await
        .execute(
            "INSERT INTO herald.attempts (tenant_id, attempt_id, delivery_id, event_id, attempt, started_at, \
               duration_ms, status_code, error, endpoint_id) \
             VALUES ('acme', $1, 'dlv_x', 'e', 1, $2, 5, $3, $4, $5)",
            &[&id, &at, &status, &error, &endpoint],
        )
        .await
        .unwrap();
    id
}

fn ids(page: &Value) -> Vec<String> {
    ids_by(page, "id")
}

fn ids_by(page: &Value, key: &str) -> Vec<String> {
    let items = page["data"].as_array().unwrap_or_else(|| panic!("no data: {page}"));
    items.iter().map(|i| i[key].as_str().unwrap().to_string()).collect()
}

fn cursor(page: &Value, which: &str) -> Option<String> {
    page[which].as_str().map(str::to_string)
}

/// Walks `path` (with `?` already in it) forward with `limit`, then back with `before` from the
/// last page: every item once, the same pages both ways, both cursors null at the ends.
async fn walk_both_ways(app: &App, token: &str, path: &str, limit: usize) -> Vec<String> {
    walk_by(app, token, path, limit, "id").await
}

/// [`walk_both_ways`], the items named by `key`.
async fn walk_by(app: &App, token: &str, path: &str, limit: usize, key: &str) -> Vec<String> {
    let ids = |page: &Value| ids_by(page, key);
    let t = Some(token);
    let mut pages = Vec::new();
    let (s, mut page) = app.call(Method::GET, &format!("{path}&limit={limit}"), t, None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["prev_cursor"], Value::Null, "the first page has nothing before it: {page}");
    loop {
        pages.push(ids(&page));
        let Some(next) = cursor(&page, "next_cursor") else { break };
        assert_eq!(ids(&page).len(), limit, "only the last page is short");
        let (s, p) = app.call(Method::GET, &format!("{path}&limit={limit}&cursor={next}"), t, None).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert!(p["prev_cursor"].is_string(), "a page after another has one before it: {p}");
        page = p;
    }
    // Back from the last page, page by page, to the first.
    let mut back = vec![ids(&page)];
    while let Some(prev) = cursor(&page, "prev_cursor") {
        let (s, p) = app.call(Method::GET, &format!("{path}&limit={limit}&before={prev}"), t, None).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert!(p["next_cursor"].is_string(), "a page before another has one after it: {p}");
        back.push(ids(&p));
        page = p;
    }
    assert_eq!(page["prev_cursor"], Value::Null);
    back.reverse();
    assert_eq!(back, pages, "the same pages backwards as forwards");
    pages.concat()
}

#[tokio::test]
async fn events_are_listed_newest_first_by_type_window_and_failure() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let other = app.db.tenant("globex").await;
    let t = Some(token.as_str());
    for (i, ty) in
        ["order.paid", "order.refunded", "user.created", "order.paid", "user.deleted", "orders.x"].iter().enumerate()
    {
        publish_at(&app, "acme", &format!("e{}", i + 1), ty, t0() + Duration::seconds(i as i64 + 1)).await;
    }
    publish_at(&app, "globex", "g1", "order.paid", t0()).await;

    let (s, all) = app.call(Method::GET, "/v1/events", t, None).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(ids(&all), ["e6", "e5", "e4", "e3", "e2", "e1"], "newest first");
    assert_eq!((all["next_cursor"].clone(), all["prev_cursor"].clone()), (Value::Null, Value::Null));
    let e1 = &all["data"][5];
    assert_eq!(e1["type"], "order.paid");
    assert_eq!(e1["data"], json!({"n": "e1"}));
    assert_eq!(e1["created_at"], "2026-03-01T12:00:01Z");
    assert!(e1.get("deliveries").is_none(), "counted, not listed");
    assert_eq!(
        e1["delivery_counts"],
        json!({"total": 0, "pending": 0, "delivered": 0, "failed": 0, "cancelled": 0, "failing": 0})
    );

    let list = |q: &'static str| {
        let app = &app;
        async move {
            let (s, v) = app.call(Method::GET, &format!("/v1/events?{q}"), t, None).await;
            assert_eq!(s, StatusCode::OK, "{q}: {v}");
            ids(&v)
        }
    };
    assert_eq!(list("type=order.paid").await, ["e4", "e1"]);
    assert_eq!(list("type=order.*").await, ["e4", "e2", "e1"], "a prefix ends at its dot: orders.x is not order.*");
    // [since, until): e2 at :02 is in, e5 at :05 is not.
    assert_eq!(list("since=2026-03-01T12:00:02Z&until=2026-03-01T12:00:05Z").await, ["e4", "e3", "e2"]);
    assert_eq!(
        list("since=2026-03-01T13:00:02%2B01:00").await,
        ["e6", "e5", "e4", "e3", "e2"],
        "an offset, %2B-encoded"
    );
    assert_eq!(list("until=2026-03-01T12:00:02Z&type=order.*").await, ["e1"]);

    // Failed: a delivery that failed for good, or one pending after a failed attempt.
    delivery(&app, "e2", "ep_1", "failed", Some("http_status: 500")).await;
    delivery(&app, "e2", "ep_2", "delivered", None).await;
    delivery(&app, "e3", "ep_1", "pending", Some("timeout: no answer within 15s")).await;
    delivery(&app, "e4", "ep_1", "delivered", None).await;
    delivery(&app, "e5", "ep_1", "pending", None).await;
    assert_eq!(list("failed=true").await, ["e3", "e2"]);
    assert_eq!(list("failed=false").await, ["e6", "e5", "e4", "e1"]);
    assert_eq!(list("failed=true&type=user.*").await, ["e3"]);
    let (_, v) = app.call(Method::GET, "/v1/events?failed=true", t, None).await;
    assert_eq!(
        v["data"][0]["delivery_counts"],
        json!({"total": 1, "pending": 1, "delivered": 0, "failed": 0, "cancelled": 0, "failing": 1})
    );
    assert_eq!(
        v["data"][1]["delivery_counts"],
        json!({"total": 2, "pending": 0, "delivered": 1, "failed": 1, "cancelled": 0, "failing": 0})
    );

    let (_, lean) = app.call(Method::GET, "/v1/events?with_data=false&limit=1", t, None).await;
    assert!(lean["data"][0].get("data").is_none(), "{lean}");

    // Pages both ways, also filtered.
    assert_eq!(walk_both_ways(&app, &token, "/v1/events?", 2).await, ["e6", "e5", "e4", "e3", "e2", "e1"]);
    assert_eq!(walk_both_ways(&app, &token, "/v1/events?type=order.*", 2).await, ["e4", "e2", "e1"]);
    assert_eq!(walk_both_ways(&app, &token, "/v1/events?failed=false", 3).await, ["e6", "e5", "e4", "e1"]);

    // Another tenant's events are not listed, filters or not.
    let (_, theirs) = app.call(Method::GET, "/v1/events", Some(&other), None).await;
    assert_eq!(ids(&theirs), ["g1"]);

    for (q, code) in [
        ("type=order*", "invalid_event_type"),
        ("type=*", "invalid_event_type"),
        ("since=yesterday", "invalid_time"),
        ("since=2026-03-01T12:00:05Z&until=2026-03-01T12:00:05Z", "invalid_window"),
        ("failed=maybe", "invalid_query"),
        ("limit=0", "invalid_limit"),
        ("cursor=e3", "invalid_cursor"),
        ("colour=red", "invalid_query"),
    ] {
        let (s, v) = app.call(Method::GET, &format!("/v1/events?{q}"), t, None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(code)), "{q}: {v}");
    }
    // A cursor of another list, and both directions at once.
    let (_, page) = app.call(Method::GET, "/v1/events?limit=1", t, None).await;
    let c = cursor(&page, "next_cursor").unwrap();
    for q in [format!("/v1/endpoints?cursor={c}"), format!("/v1/events?cursor={c}&before={c}")] {
        let (s, v) = app.call(Method::GET, &q, t, None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_cursor")),
            "{q}: {v}"
        );
    }
}

#[tokio::test]
async fn an_endpoints_deliveries_by_state_newest_first() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let (_, ep) = app.call(Method::POST, "/v1/endpoints", t, Some(json!({"url": "https://a.example.com/"}))).await;
    let ep = ep["id"].as_str().unwrap().to_string();
    let (_, other) = app.call(Method::POST, "/v1/endpoints", t, Some(json!({"url": "https://b.example.com/"}))).await;
    let other = other["id"].as_str().unwrap().to_string();
    let mut made = Vec::new();
    for i in 0..6 {
        let (s, v) =
            app.call(Method::POST, "/v1/events", t, Some(json!({"id": format!("e{i}"), "type": "t", "data": i}))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let (_, e) = app.call(Method::GET, &format!("/v1/events/e{i}"), t, None).await;
        let mine =
            e["deliveries"].as_array().unwrap().iter().find(|d| d["endpoint_id"] == ep.as_str()).unwrap().clone();
        made.push(mine["id"].as_str().unwrap().to_string());
    }
    let c = app.db.client().await;
    for (i, state, lease) in [
        (0, "delivered", false),
        (1, "failed", false),
        (2, "cancelled", false),
        (3, "pending", true),
        (5, "delivered", false),
    ] {
        c.execute(
            "UPDATE herald.deliveries SET state = $2, lease_until = CASE WHEN $3 THEN now() + interval '1 hour' END \
              WHERE delivery_id = $1",
            &[&made[i], &state, &lease],
        )
        .await
        .unwrap();
    }
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();
    let path = format!("/v1/endpoints/{ep}/deliveries");
    let (s, all) = app.call(Method::GET, &path, t, None).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(ids(&all), newest_first, "pending and finished ones merged, newest first");
    let d = &all["data"][2];
    assert_eq!((d["state"].as_str(), d["event_id"].as_str()), (Some("delivering"), Some("e3")), "{d}");
    assert!(d["created_at"].is_string() && d["updated_at"].is_string());
    for (state, want) in [
        ("delivered", vec![5, 0]),
        ("failed", vec![1]),
        ("cancelled", vec![2]),
        ("delivering", vec![3]),
        ("pending", vec![4]),
    ] {
        let (s, v) = app.call(Method::GET, &format!("{path}?state={state}"), t, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let want: Vec<String> = want.into_iter().map(|i| made[i].clone()).collect();
        assert_eq!(ids(&v), want, "{state}");
        assert!(v["data"].as_array().unwrap().iter().all(|d| d["state"] == state));
    }
    // Pages cross from the pending side to the finished one and back.
    assert_eq!(walk_both_ways(&app, &token, &format!("{path}?"), 2).await, newest_first);
    assert_eq!(
        walk_both_ways(&app, &token, &format!("{path}?state=delivered"), 1).await,
        [made[5].clone(), made[0].clone()]
    );
    let (_, v) = app.call(Method::GET, &format!("/v1/endpoints/{other}/deliveries?state=failed"), t, None).await;
    assert_eq!(v["data"], json!([]), "the other endpoint's deliveries are its own");

    let (s, v) = app.call(Method::GET, &format!("{path}?state=lost"), t, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_state")));
    let (s, _) = app.call(Method::GET, "/v1/endpoints/ep_01ARZ3NDEKTSV4RRFFQ69G5FAV/deliveries", t, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_endpoints_attempts_by_status_error_and_time() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let (_, ep) = app.call(Method::POST, "/v1/endpoints", t, Some(json!({"url": "https://a.example.com/"}))).await;
    let ep = ep["id"].as_str().unwrap().to_string();
    let s = |n: i64| t0() + Duration::seconds(n);
    // Two attempts start at the same instant: their ids order them.
    let a = [
        attempt(&app, &ep, s(1), Some(200), None).await,
        attempt(&app, &ep, s(2), Some(500), Some("http_status")).await,
        attempt(&app, &ep, s(3), None, Some("timeout")).await,
        attempt(&app, &ep, s(3), Some(503), Some("http_status")).await,
        attempt(&app, &ep, s(4), None, Some("connect")).await,
        attempt(&app, &ep, s(5), Some(404), Some("http_status")).await,
    ];
    attempt(&app, "ep_01ARZ3NDEKTSV4RRFFQ69G5FAV", s(3), Some(500), Some("http_status")).await;
    let path = format!("/v1/endpoints/{ep}/attempts");
    let list = |q: &'static str| {
        let (app, path) = (&app, &path);
        async move {
            let (st, v) = app.call(Method::GET, &format!("{path}?{q}"), t, None).await;
            assert_eq!(st, StatusCode::OK, "{q}: {v}");
            ids(&v)
        }
    };
    let pick = |is: &[usize]| is.iter().map(|&i| a[i].clone()).collect::<Vec<_>>();
    assert_eq!(list("").await, pick(&[5, 4, 3, 2, 1, 0]), "newest first, ties by id");
    assert_eq!(list("status_code=500").await, pick(&[1]));
    assert_eq!(list("status_code=5xx").await, pick(&[3, 1]));
    assert_eq!(list("status_code=4XX").await, pick(&[5]));
    assert_eq!(list("error=timeout").await, pick(&[2]));
    assert_eq!(list("error=http_status&status_code=5xx").await, pick(&[3, 1]));
    assert_eq!(list("since=2026-03-01T12:00:03Z&until=2026-03-01T12:00:05Z").await, pick(&[4, 3, 2]));
    assert_eq!(walk_both_ways(&app, &token, &format!("{path}?"), 4).await, pick(&[5, 4, 3, 2, 1, 0]));
    assert_eq!(
        walk_both_ways(&app, &token, &format!("{path}?since=2026-03-01T12:00:02Z"), 1).await,
        pick(&[5, 4, 3, 2, 1])
    );
    let (_, v) = app.call(Method::GET, &format!("{path}?error=connect"), t, None).await;
    let one = &v["data"][0];
    assert_eq!(
        (one["status_code"].clone(), one["error"].as_str(), one["started_at"].as_str()),
        (Value::Null, Some("connect"), Some("2026-03-01T12:00:04Z"))
    );

    for (q, code) in [
        ("status_code=5x", "invalid_status_code"),
        ("status_code=600", "invalid_status_code"),
        ("status_code=0500", "invalid_status_code"),
        ("status_code=6xx", "invalid_status_code"),
        ("error=slow", "invalid_error_class"),
        ("until=2026-03-01", "invalid_time"),
    ] {
        let (st, v) = app.call(Method::GET, &format!("{path}?{q}"), t, None).await;
        assert_eq!((st, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(code)), "{q}: {v}");
    }
}

/// The recorder's statement names each attempt's endpoint (a callback's, none), which is what the
/// lists and statistics by endpoint read.
#[tokio::test]
async fn recorded_attempts_name_their_endpoint() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let (_, ep) = app.call(Method::POST, "/v1/endpoints", t, Some(json!({"url": "https://a.example.com/"}))).await;
    let ep = ep["id"].as_str().unwrap().to_string();
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/events",
            t,
            Some(json!({"id": "e1", "type": "t", "data": 1, "callback_url": "https://cb.example.com/"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let c = app.db.client().await;
    // The callback goes through the outbox: fan it out as the poller would.
    herald_outbox_poller::Poller::new(
        app.db.pool.clone(),
        herald_core::clock::system(),
        Default::default(),
        herald_core::metrics::Metrics::new(),
    )
    .tick()
    .await
    .unwrap();
    let rows = c
        .query("SELECT delivery_id, target FROM herald.deliveries WHERE event_id = 'e1' ORDER BY target", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "one to the endpoint, one to the callback");
    c.execute("UPDATE herald.deliveries SET lease_owner = 'w1', lease_until = now() + interval '1 minute', attempt_count = 1 WHERE event_id = 'e1'", &[])
        .await
        .unwrap();
    let now = Utc::now();
    let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let attempt_ids: Vec<String> = ids.iter().map(|_| herald_core::id::new_id(herald_core::id::ATTEMPT, now)).collect();
    let n = ids.len();
    // The worker passes each attempt's endpoint as it claimed it (NULL for a callback).
    let endpoints: Vec<Option<String>> =
        rows.iter().map(|r| r.get::<_, String>(1)).map(|t| t.starts_with("ep_").then_some(t)).collect();
    let recorded = c
        .query(
            herald_core::deliveries::RECORD,
            &[
                &"acme",
                &ids,
                &now,
                &vec![1i32; n],
                &vec!["delivered"; n],
                &vec![now; n],
                &vec![Some(200i32); n],
                &vec![None::<String>; n],
                &"w1",
                &vec!["https://x.example.com/"; n],
                &attempt_ids,
                &vec!["e1"; n],
                &vec![now; n],
                &vec![7i32; n],
                &vec![None::<String>; n],
                &vec![Some("ok"); n],
                &endpoints,
            ],
        )
        .await
        .unwrap();
    assert_eq!(recorded.len(), 2);
    let named: Vec<(String, Option<String>)> = c
        .query("SELECT d.target, a.endpoint_id FROM herald.attempts a JOIN herald.deliveries d USING (tenant_id, delivery_id) ORDER BY d.target", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut want = vec![("callback".to_string(), None), (ep.clone(), Some(ep.clone()))];
    want.sort();
    assert_eq!(named, want);
    let (_, v) = app.call(Method::GET, &format!("/v1/endpoints/{ep}/attempts"), t, None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["data"][0]["event_id"], "e1");
}

#[tokio::test]
async fn endpoint_stats_count_the_last_hour_and_day() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let (_, ep) = app.call(Method::POST, "/v1/endpoints", t, Some(json!({"url": "https://a.example.com/"}))).await;
    let ep = ep["id"].as_str().unwrap().to_string();
    let (_, quiet) = app.call(Method::POST, "/v1/endpoints", t, Some(json!({"url": "https://b.example.com/"}))).await;
    let quiet = quiet["id"].as_str().unwrap().to_string();

    // As PostgreSQL keeps it: to the microsecond.
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let ago = |m: i64| now - Duration::minutes(m);
    // The last hour: 3 successes, a 500, a timeout (the latest failure).
    for m in [50, 40, 10] {
        attempt(&app, &ep, ago(m), Some(200), None).await;
    }
    attempt(&app, &ep, ago(30), Some(500), Some("http_status")).await;
    attempt(&app, &ep, ago(5), None, Some("timeout")).await;
    // Earlier that day: 2 successes, 2 failures.
    for (m, code) in [(300, 200), (200, 204), (150, 503), (120, 503)] {
        attempt(&app, &ep, ago(m), Some(code), (code >= 300).then_some("http_status")).await;
    }
    // Before the day: not counted, but the last success and failure are looked for among them.
    for m in [2000, 3000] {
        attempt(&app, &ep, ago(m), Some(200), None).await;
    }
    attempt(&app, &quiet, ago(3000), Some(502), Some("http_status")).await;
    attempt(&app, "ep_01ARZ3NDEKTSV4RRFFQ69G5FAV", ago(1), Some(500), Some("http_status")).await;

    let (s, v) = app.call(Method::GET, &format!("/v1/endpoints/{ep}/stats"), t, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["endpoint_id"], ep.as_str());
    assert_eq!(v["last_hour"], json!({"attempts": 5, "successes": 3, "failures": 2, "success_rate": 0.6}));
    assert_eq!(v["last_day"], json!({"attempts": 9, "successes": 5, "failures": 4, "success_rate": 0.5556}));
    let at = |m: i64| json!(ago(m));
    assert_eq!(v["last_success"], json!({"at": at(10), "status_code": 200}));
    assert_eq!(v["last_failure"], json!({"at": at(5), "status_code": null, "error": "timeout"}));

    let (_, q) = app.call(Method::GET, &format!("/v1/endpoints/{quiet}/stats"), t, None).await;
    assert_eq!(q["last_day"], json!({"attempts": 0, "successes": 0, "failures": 0, "success_rate": null}));
    assert_eq!(q["last_success"], Value::Null);
    assert_eq!(q["last_failure"], json!({"at": at(3000), "status_code": 502, "error": "http_status"}));

    let (s, _) = app.call(Method::GET, "/v1/endpoints/ep_01ARZ3NDEKTSV4RRFFQ69G5FAV/stats", t, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "an endpoint the tenant does not have, even with attempts under its id");
}

/// The lists that were there before paging went both ways: endpoints, approvals, human contacts
/// and an event's attempts.
#[tokio::test]
async fn the_older_lists_page_both_ways() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let mut endpoints = Vec::new();
    for i in 0..5 {
        let (_, ep) =
            app.call(Method::POST, "/v1/endpoints", t, Some(json!({"url": format!("https://{i}.example.com/")}))).await;
        endpoints.push(ep["id"].as_str().unwrap().to_string());
    }
    assert_eq!(walk_both_ways(&app, &token, "/v1/endpoints?", 2).await, endpoints, "oldest first");
    // A page after items that are gone is empty, and leads back to what is left.
    let (_, first) = app.call(Method::GET, "/v1/endpoints?limit=2", t, None).await;
    let next = cursor(&first, "next_cursor").unwrap();
    for gone in &endpoints[2..] {
        let (s, _) = app.call(Method::DELETE, &format!("/v1/endpoints/{gone}"), t, None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    let (_, empty) = app.call(Method::GET, &format!("/v1/endpoints?limit=2&cursor={next}"), t, None).await;
    assert_eq!((ids(&empty).len(), empty["next_cursor"].clone()), (0, Value::Null), "{empty}");
    let back = cursor(&empty, "prev_cursor").expect("the way back");
    let (_, again) = app.call(Method::GET, &format!("/v1/endpoints?limit=2&before={back}"), t, None).await;
    assert_eq!(ids(&again), endpoints[..2].to_vec());
    assert_eq!((again["prev_cursor"].clone(), again["next_cursor"].clone()), (Value::Null, Value::Null), "{again}");
    let mut calls = Vec::new();
    for i in 0..3 {
        let (s, op) = app
            .call(Method::POST, "/v1/approvals", t, Some(json!({"call_id": format!("c{i}"), "fn": "f", "kwargs": {}})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{op}");
        let (s, _) = app
            .call(Method::POST, "/v1/human_contacts", t, Some(json!({"call_id": format!("h{i}"), "msg": "?"})))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        calls.push(format!("c{i}"));
    }
    assert_eq!(walk_by(&app, &token, "/v1/approvals?status=pending", 2, "call_id").await, calls);
    assert_eq!(walk_by(&app, &token, "/v1/human_contacts?", 1, "call_id").await, ["h0", "h1", "h2"]);

    let (s, _) = app.call(Method::POST, "/v1/events", t, Some(json!({"id": "e1", "type": "t", "data": 1}))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (_, event) = app.call(Method::GET, "/v1/events/e1", t, None).await;
    let delivery = event["deliveries"][0]["id"].as_str().expect("a delivery").to_string();
    let (mut attempts, mut its) = (Vec::new(), Vec::new());
    for i in 0..7 {
        let id = herald_core::id::new_id(herald_core::id::ATTEMPT, t0() + Duration::seconds(i));
        // Every other attempt is another delivery's of the same event.
        let of = if i % 2 == 0 { delivery.as_str() } else { "dlv_x" };
        app.db
            .client()
            .await
            .execute(
                "INSERT INTO herald.attempts (tenant_id, attempt_id, delivery_id, event_id, attempt, started_at, duration_ms) \
                 VALUES ('acme', $1, $2, 'e1', $3, $4, 1)",
                &[&id, &of, &(i as i32 + 1), &(t0() + Duration::seconds(i))],
            )
            .await
            .unwrap();
        if i % 2 == 0 {
            its.push(id.clone());
        }
        attempts.push(id);
    }
    assert_eq!(walk_both_ways(&app, &token, "/v1/events/e1/attempts?", 2).await, attempts, "oldest first");
    let path = format!("/v1/deliveries/{delivery}/attempts?");
    assert_eq!(walk_both_ways(&app, &token, &path, 3).await, its, "the delivery's own, oldest first");
    let (s, v) = app.call(Method::GET, "/v1/deliveries/dlv_01M8W395SFG31M1MXKD8M2311T/attempts", t, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{v}");
}

/// A filter that matches little of a long history reads until HERALD_LIST_TIMEOUT, then answers
/// 503 `list_timeout` (here 1 ms over 20,000 events, none of the type asked for), and the
/// connection is fine for the next request.
#[tokio::test]
async fn a_list_that_reads_too_long_is_stopped_with_a_clear_answer() {
    let db = herald_testkit::TestDb::new().await;
    let mut state = herald_producer::api::AppState::new(
        db.pool.clone(),
        herald_core::clock::system(),
        herald_core::targets::AllowList::none(),
        4096,
        herald_core::metrics::Metrics::new(),
    );
    state.list_timeout = std::time::Duration::from_millis(1);
    let app = App { router: herald_producer::api::router(state), db };
    let token = app.db.tenant("acme").await;
    app.db
        .client()
        .await
        .batch_execute(
            "SELECT herald.publish_event('acme', 'common', '{}'::jsonb, 'e' || n, NULL, NULL, NULL, NULL, now()) \
               FROM generate_series(1, 20000) n",
        )
        .await
        .unwrap();
    let (s, v) = app.call(Method::GET, "/v1/events?type=rare&limit=1", Some(&token), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("list_timeout")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("since and until"), "{v}");
    let (s, v) = app.call(Method::GET, "/v1/endpoints", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "the next request is served: {v}");
}

/// An endpoint's `consumer`: set on create, listed by, repeated but never changed by PATCH, checked.
#[tokio::test]
async fn endpoints_are_tagged_and_listed_by_consumer() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let other = app.db.tenant("globex").await;
    let mut ids = Vec::new();
    for consumer in [Some("shop-1"), Some("shop-2"), None, Some("shop-1")] {
        let mut body = json!({"url": "https://hooks.example.com/x"});
        if let Some(c) = consumer {
            body["consumer"] = json!(c);
        }
        let (s, v) = app.call(Method::POST, "/v1/endpoints", Some(&token), Some(body)).await;
        assert_eq!((s, v["consumer"].as_str()), (StatusCode::CREATED, consumer), "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    app.call(
        Method::POST,
        "/v1/endpoints",
        Some(&other),
        Some(json!({"url": "https://g.example.com/", "consumer": "shop-1"})),
    )
    .await;
    let listed = |v: &Value| -> Vec<String> {
        v["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
    };
    let (s, v) = app.call(Method::GET, "/v1/endpoints?consumer=shop-1&limit=1", Some(&token), None).await;
    assert_eq!((s, listed(&v)), (StatusCode::OK, vec![ids[0].clone()]), "{v}");
    let next = v["next_cursor"].as_str().unwrap();
    let (_, v) =
        app.call(Method::GET, &format!("/v1/endpoints?consumer=shop-1&cursor={next}"), Some(&token), None).await;
    assert_eq!(listed(&v), vec![ids[3].clone()], "another tenant's shop-1 is not listed: {v}");

    // Fixed once made: repeated, fine; changed or cleared, refused, and nothing changes.
    let patch = |id: &str, body: serde_json::Value| {
        let (app, token, path) = (&app, &token, format!("/v1/endpoints/{id}"));
        async move { app.call(Method::PATCH, &path, Some(token), Some(body)).await }
    };
    let (s, v) = patch(&ids[1], json!({"consumer": "shop-2", "description": "d"})).await;
    assert_eq!((s, v["consumer"].as_str()), (StatusCode::OK, Some("shop-2")), "{v}");
    let (_, v) = patch(&ids[1], json!({"description": "e"})).await;
    assert_eq!(v["consumer"].as_str(), Some("shop-2"), "an absent consumer is kept");
    for (id, body) in [
        (&ids[1], json!({"consumer": "shop-1", "description": "moved"})),
        (&ids[1], json!({"consumer": null, "description": "moved"})),
        (&ids[2], json!({"consumer": "shop-1", "description": "moved"})),
    ] {
        let (s, v) = patch(id, body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_consumer")),
            "{body}: {v}"
        );
        let (_, v) = app.call(Method::GET, &format!("/v1/endpoints/{id}"), Some(&token), None).await;
        assert_ne!(v["description"], "moved", "a refused PATCH changes nothing: {v}");
    }
    let (s, v) = patch(&ids[2], json!({"consumer": null})).await;
    assert_eq!((s, v["consumer"].clone()), (StatusCode::OK, serde_json::Value::Null), "{v}");

    let (s, v) = app
        .call(
            Method::POST,
            "/v1/endpoints",
            Some(&token),
            Some(json!({"url": "https://h.example.com/", "consumer": "no spaces"})),
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_consumer")), "{v}");
    let (s, v) = app.call(Method::GET, "/v1/endpoints?consumer=a%20b", Some(&token), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_consumer")), "{v}");
}
