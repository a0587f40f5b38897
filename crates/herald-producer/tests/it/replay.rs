//! Replay as a job: `POST /v1/endpoints/{id}/replay` answers at once, the runner of the
//! outbox-poller's processes (herald-outbox-poller's `replay.rs`) walks the window in batches,
//! and `GET /v1/replays/{id}` follows it to `done` or `failed`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use herald_core::clock::{self, ManualClock, SharedClock};
use herald_core::id::TenantId;
use herald_outbox_poller::replay::{ReplayConfig, Replayer, Step};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::App;

fn replayer(app: &App, clock: SharedClock, batch: usize) -> Replayer {
    let config =
        ReplayConfig { batch, turn: 1000, lease: Duration::from_secs(30), poll_interval: Duration::from_millis(50) };
    Replayer::new(app.db.pool.clone(), clock, config)
}

fn acme() -> TenantId {
    "acme".parse().unwrap()
}

/// An endpoint for `order.*`, 25 `order.paid` events and 5 `user.created` ones published over
/// HTTP (so fanned out), every delivery made `delivered`, a `herald.test` event to the endpoint,
/// and two events still in the outbox. Returns the app, the token and the endpoint.
async fn window() -> (App, String, String) {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let t = Some(token.as_str());
    let (_, ep) = app
        .call(
            Method::POST,
            "/v1/endpoints",
            t,
            Some(json!({"url": "https://a.example.com/", "event_types": ["order.*"]})),
        )
        .await;
    let ep = ep["id"].as_str().unwrap().to_string();
    for i in 0..30 {
        let ty = if i % 6 == 5 { "user.created" } else { "order.paid" };
        let (s, v) = app
            .call(Method::POST, "/v1/events", t, Some(json!({"id": format!("e{i:02}"), "type": ty, "data": i})))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    let (s, v) = app.call(Method::POST, &format!("/v1/endpoints/{ep}/test"), t, None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let c = app.db.client().await;
    c.batch_execute(
        "UPDATE herald.deliveries SET state = 'delivered', attempt_count = 1;
         SELECT herald.publish('acme', 'order.paid', '1'::jsonb, id => 'waiting-1');
         SELECT herald.publish('acme', 'order.paid', '2'::jsonb, id => 'waiting-2');",
    )
    .await
    .unwrap();
    (app, token, ep)
}

async fn get(app: &App, token: &str, path: &str) -> Value {
    let (s, v) = app.call(Method::GET, path, Some(token), None).await;
    assert_eq!(s, StatusCode::OK, "{path}: {v}");
    v
}

/// Deliveries to `ep` by state, and how many there are in all.
async fn deliveries(app: &App, ep: &str) -> (i64, i64) {
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FROM herald.deliveries WHERE target = $1",
            &[&ep],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_replay_larger_than_a_batch_runs_to_done_with_the_right_deliveries() {
    let (app, token, ep) = window().await;
    let t = Some(token.as_str());
    assert_eq!(deliveries(&app, &ep).await, (0, 26), "25 order events and the test event, all delivered");

    let (s, job) = app
        .call(Method::POST, &format!("/v1/endpoints/{ep}/replay"), t, Some(json!({"since": "2000-01-01T00:00:00Z"})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("rpl_") && id.len() == 30, "{id}");
    assert_eq!(
        (job["state"].as_str(), job["endpoint_id"].as_str(), job["deliveries_created"].as_i64(), job["since"].as_str()),
        (Some("running"), Some(ep.as_str()), Some(0), Some("2000-01-01T00:00:00Z"))
    );
    assert_eq!((job["reached"].clone(), job["error"].clone()), (job["since"].clone(), Value::Null));
    assert_eq!(deliveries(&app, &ep).await, (0, 26), "the request itself makes nothing");

    // Batches of 7: the 30 events of the window take five, the last one short.
    let runner = replayer(&app, clock::system(), 7);
    let job_id = runner.claim(&acme()).await.unwrap().expect("the job is there to run");
    assert_eq!(job_id, id);
    let mut steps = Vec::new();
    loop {
        let step = runner.step(&acme(), &job_id).await.unwrap();
        steps.push(step);
        if step != Step::More {
            break;
        }
        let progress = get(&app, &token, &format!("/v1/replays/{id}")).await;
        assert_eq!(progress["state"], "running");
        assert_eq!(progress["events_scanned"], 7 * steps.len());
        assert!(progress["reached"].as_str().unwrap() > "2000", "{progress}");
    }
    assert_eq!(steps, [Step::More, Step::More, Step::More, Step::More, Step::Done]);

    let done = get(&app, &token, &format!("/v1/replays/{id}")).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        (done["events_scanned"].as_i64(), done["events_matched"].as_i64(), done["deliveries_created"].as_i64()),
        (Some(30), Some(25), Some(25)),
        "herald.test and the outbox's events are not in the window; user.created is not the endpoint's: {done}"
    );
    assert_eq!(done["reached"], done["until"]);
    assert!(done["finished_at"].is_string() && done["error"].is_null());
    assert_eq!(deliveries(&app, &ep).await, (25, 26), "each order event's delivery made due again, once");
    let test_event: String = app
        .db
        .client()
        .await
        .query_one("SELECT d.state FROM herald.deliveries d JOIN herald.events e USING (tenant_id, event_id) WHERE e.event_type = 'herald.test'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(test_event, "delivered", "a test event is never replayed");
    let waiting: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM herald.deliveries WHERE event_id LIKE 'waiting-%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(waiting, 0, "events still in the outbox are the poller's to fan out");
    assert_eq!(runner.claim(&acme()).await.unwrap(), None, "nothing left to run");

    // Listed, newest first, by state and endpoint.
    let (_, second) = app
        .call(
            Method::POST,
            &format!("/v1/endpoints/{ep}/replay"),
            t,
            Some(json!({"since": "2000-01-01T00:00:00Z", "until": "2001-01-01T00:00:00Z"})),
        )
        .await;
    let ids = |v: &Value| {
        v["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let second = second["id"].as_str().unwrap().to_string();
    assert_eq!(ids(&get(&app, &token, "/v1/replays").await), [second.clone(), id.clone()]);
    assert_eq!(ids(&get(&app, &token, "/v1/replays?state=done").await), [id.as_str()]);
    assert_eq!(ids(&get(&app, &token, "/v1/replays?state=running").await), [second.as_str()]);
    assert_eq!(ids(&get(&app, &token, &format!("/v1/replays?endpoint_id={ep}&limit=1")).await), [second]);
    assert_eq!(
        ids(&get(&app, &token, "/v1/replays?endpoint_id=ep_01ARZ3NDEKTSV4RRFFQ69G5FAV").await),
        Vec::<String>::new()
    );
    let (s, v) = app.call(Method::GET, "/v1/replays?state=paused", t, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_state")));

    // Another tenant sees none of it.
    let other = app.db.tenant("globex").await;
    let (s, _) = app.call(Method::GET, &format!("/v1/replays/{id}"), Some(&other), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, theirs) = app.call(Method::GET, "/v1/replays", Some(&other), None).await;
    assert_eq!(theirs["data"], json!([]));
}

#[tokio::test]
async fn a_replay_is_refused_or_fails_with_its_reason() {
    let (app, token, ep) = window().await;
    let t = Some(token.as_str());
    let replay = format!("/v1/endpoints/{ep}/replay");
    for body in [
        json!({"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"}),
        json!({"since": "2999-01-01T00:00:00Z"}),
    ] {
        let (s, v) = app.call(Method::POST, &replay, t, Some(body)).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_window")), "{v}");
    }
    let (s, _) = app
        .call(
            Method::POST,
            "/v1/endpoints/ep_01ARZ3NDEKTSV4RRFFQ69G5FAV/replay",
            t,
            Some(json!({"since": "2000-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for bad in ["/v1/replays/rpl_nope", "/v1/replays/rpl_01ARZ3NDEKTSV4RRFFQ69G5FAV"] {
        let (s, v) = app.call(Method::GET, bad, t, None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{bad}");
    }

    let (_, job) = app.call(Method::POST, &replay, t, Some(json!({"since": "2000-01-01T00:00:00Z"}))).await;
    let id = job["id"].as_str().unwrap().to_string();
    // One at a time per endpoint.
    let (s, v) = app.call(Method::POST, &replay, t, Some(json!({"since": "2000-01-01T00:00:00Z"}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("replay_running")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(&id), "the refusal names the running job: {v}");
    let runner = replayer(&app, clock::system(), 10);
    let job_id = runner.claim(&acme()).await.unwrap().unwrap();
    assert_eq!(runner.step(&acme(), &job_id).await.unwrap(), Step::More);
    let (s, _) = app.call(Method::DELETE, &format!("/v1/endpoints/{ep}"), t, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(runner.step(&acme(), &job_id).await.unwrap(), Step::Failed);
    let failed = get(&app, &token, &format!("/v1/replays/{id}")).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains(&ep) && error.contains("deleted"), "{error}");
    assert_eq!(
        (failed["events_scanned"].as_i64(), failed["deliveries_created"].as_i64()),
        (Some(10), Some(9)),
        "{failed}"
    );
    assert!(failed["finished_at"].is_string());
    assert_eq!(runner.step(&acme(), &job_id).await.unwrap(), Step::Lost, "a failed job is done with");
}

/// A runner that dies mid-job holds it until its lease ends; then another takes it over where
/// the last committed batch left it, and the first, back, finds it gone.
#[tokio::test]
async fn a_replay_survives_its_runner_dying_mid_job() {
    let (app, token, ep) = window().await;
    let t = Some(token.as_str());
    let (_, job) = app
        .call(Method::POST, &format!("/v1/endpoints/{ep}/replay"), t, Some(json!({"since": "2000-01-01T00:00:00Z"})))
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    let time = Arc::new(ManualClock::new(chrono::Utc::now()));
    let first = replayer(&app, time.clone(), 4);
    let second = replayer(&app, time.clone(), 4);
    assert_eq!(first.claim(&acme()).await.unwrap().as_deref(), Some(id.as_str()));
    for _ in 0..3 {
        assert_eq!(first.step(&acme(), &id).await.unwrap(), Step::More);
    }
    // The first dies here, its lease held. While the lease lasts, nobody else runs the job.
    assert_eq!(second.claim(&acme()).await.unwrap(), None);
    assert_eq!(second.step(&acme(), &id).await.unwrap(), Step::Lost, "a job it did not claim");
    time.advance(chrono::Duration::seconds(29));
    assert_eq!(second.claim(&acme()).await.unwrap(), None, "each batch carried the lease on");
    time.advance(chrono::Duration::seconds(2));
    assert_eq!(second.claim(&acme()).await.unwrap().as_deref(), Some(id.as_str()), "the lease is over");
    let resumed = get(&app, &token, &format!("/v1/replays/{id}")).await;
    assert_eq!(resumed["events_scanned"], 12, "where the first left it: {resumed}");
    assert_eq!(first.step(&acme(), &id).await.unwrap(), Step::Lost, "the first, back, finds it taken");
    let mut steps = 0;
    while second.step(&acme(), &id).await.unwrap() == Step::More {
        steps += 1;
    }
    assert_eq!(steps, 4, "the rest of the window, 18 events in batches of 4");
    let done = get(&app, &token, &format!("/v1/replays/{id}")).await;
    assert_eq!(
        (
            done["state"].as_str(),
            done["events_scanned"].as_i64(),
            done["events_matched"].as_i64(),
            done["deliveries_created"].as_i64()
        ),
        (Some("done"), Some(30), Some(25), Some(25)),
        "every event once: {done}"
    );
    assert_eq!(deliveries(&app, &ep).await, (25, 26));
}

/// The runner's loop: it carries out a job it is woken for or finds at its poll, gives each
/// tenant's jobs their turn, and stops on shutdown.
#[tokio::test]
async fn the_runner_loop_finishes_jobs_and_stops_on_shutdown() {
    let (app, token, ep) = window().await;
    let t = Some(token.as_str());
    let other = app.db.tenant("globex").await;
    let (_, theirs) =
        app.call(Method::POST, "/v1/endpoints", Some(&other), Some(json!({"url": "https://g.example.com/"}))).await;
    let theirs = theirs["id"].as_str().unwrap().to_string();
    for i in 0..12 {
        app.call(
            Method::POST,
            "/v1/events",
            Some(&other),
            Some(json!({"id": format!("g{i}"), "type": "x", "data": i})),
        )
        .await;
    }
    let shutdown = CancellationToken::new();
    let runner = replayer(&app, clock::system(), 3);
    let running = tokio::spawn(runner.run(shutdown.clone()));
    let mut jobs = Vec::new();
    for (tok, endpoint) in [(token.as_str(), ep.as_str()), (other.as_str(), theirs.as_str())] {
        let (s, job) = app
            .call(
                Method::POST,
                &format!("/v1/endpoints/{endpoint}/replay"),
                Some(tok),
                Some(json!({"since": "2000-01-01T00:00:00Z"})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        jobs.push((tok, job["id"].as_str().unwrap().to_string()));
    }
    for (tok, id) in &jobs {
        let done = herald_testkit::eventually("the replay to be done", Duration::from_secs(20), || async {
            let (_, v) = app.call(Method::GET, &format!("/v1/replays/{id}"), Some(tok), None).await;
            (v["state"] != "running").then_some(v)
        })
        .await;
        assert_eq!(done["state"], "done", "{done}");
    }
    let (_, mine) = app.call(Method::GET, &format!("/v1/replays/{}", jobs[0].1), t, None).await;
    assert_eq!(mine["deliveries_created"], 25);
    let (_, g) = app.call(Method::GET, &format!("/v1/replays/{}", jobs[1].1), Some(&other), None).await;
    assert_eq!(
        (g["events_scanned"].as_i64(), g["deliveries_created"].as_i64()),
        (Some(12), Some(0)),
        "globex's were pending still: {g}"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running).await.expect("the runner stops on shutdown").unwrap();
}
