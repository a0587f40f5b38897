//! `POST /v1/events` in groups: requests that arrive together share a transaction, and each
//! still gets its own answer: the same id sent many times at once is stored once, and one
//! event the database refuses fails only its own request.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::App;

async fn endpoint(app: &App, token: &str) -> String {
    let (s, v) =
        app.call(Method::POST, "/v1/endpoints", Some(token), Some(json!({"url": "https://a.example.com/"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_same_id_sent_at_once_is_stored_and_fanned_out_once() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    endpoint(&app, &token).await;
    let calls = (0..40).map(|i| {
        let body = json!({"id": "evt_same", "type": "run.finished", "data": {"try": i}});
        app.call(Method::POST, "/v1/events", Some(&token), Some(body))
    });
    let answers = futures_util::future::join_all(calls).await;
    let made: Vec<_> = answers.iter().filter(|(s, _)| *s == StatusCode::ACCEPTED).collect();
    assert_eq!(made.len(), 1, "exactly one request made the event: {answers:?}");
    assert_eq!(made[0].1["duplicate"], false);
    for (s, v) in &answers {
        assert!(*s == StatusCode::ACCEPTED || (*s == StatusCode::OK && v["duplicate"] == true), "{s} {v}");
        assert_eq!(v["created_at"], made[0].1["created_at"], "every answer has the stored time");
    }
    let client = app.db.client().await;
    let n = |q: &'static str| {
        let client = &client;
        async move { client.query_one(q, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(n("SELECT count(*) FROM herald.events WHERE event_id = 'evt_same'").await, 1);
    assert_eq!(n("SELECT count(*) FROM herald.deliveries WHERE event_id = 'evt_same'").await, 1);
    // The first request's data is the one kept.
    let (_, event) = app.call(Method::GET, "/v1/events/evt_same", Some(&token), None).await;
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn one_refused_event_fails_alone_and_the_rest_of_its_group_is_stored() {
    // Three tenants publishing at once share transactions; one event the database refuses
    // fails alone, whichever tenant's it is and whoever shared its transaction.
    let app = App::new().await;
    let mut tokens = Vec::new();
    for tenant in ["acme", "globex", "initech"] {
        let token = app.db.tenant(tenant).await;
        endpoint(&app, &token).await;
        tokens.push(token);
    }
    // The database refuses one event (as a constraint added later might).
    app.db
        .client()
        .await
        .batch_execute(
            "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                IF NEW.event_id = 'evt_refused' THEN
                    RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON herald.events FOR EACH ROW EXECUTE FUNCTION refuse_one();",
        )
        .await
        .unwrap();
    let calls = (0..30).map(|i| {
        let id = if i == 15 { "evt_refused".to_string() } else { format!("evt_ok_{i}") };
        let body = json!({"id": id, "type": "run.finished", "data": i});
        app.call(Method::POST, "/v1/events", Some(&tokens[i % 3]), Some(body))
    });
    let answers = futures_util::future::join_all(calls).await;
    for (i, (s, v)) in answers.iter().enumerate() {
        if i == 15 {
            assert_eq!((*s, v["error"]["code"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("internal")), "{v}");
        } else {
            assert_eq!(*s, StatusCode::ACCEPTED, "{i}: {v}");
        }
    }
    let client = app.db.client().await;
    let rows = client
        .query(
            "SELECT e.tenant_id, count(*), count(d.delivery_id) FROM herald.events e \
               LEFT JOIN herald.deliveries d ON d.tenant_id = e.tenant_id AND d.event_id = e.event_id \
              GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<(String, i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        stored,
        [("acme".into(), 9, 9), ("globex".into(), 10, 10), ("initech".into(), 10, 10)],
        "the others are stored, each with its delivery, under its own tenant"
    );
}
