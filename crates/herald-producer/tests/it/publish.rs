//! The three ways to publish (contract sections 3 to 5) and their shared rules.

use std::time::Duration;

use futures_util::StreamExt;
use herald_producer::{publish, NewEvent};
use herald_testkit::TestDb;
use serde_json::json;
use tokio_postgres::AsyncMessage;

async fn count_events(db: &TestDb, tenant: &str) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM herald.events WHERE tenant_id = $1", &[&tenant])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn sql_publish_follows_the_callers_transaction() {
    let db = TestDb::new().await;
    db.tenant("acme").await;
    let mut client = herald_core::db::connect(&db.url).await.unwrap();

    let tx = client.transaction().await.unwrap();
    tx.batch_execute("SELECT herald.publish(tenant => 'acme', type => 'approval_completed', data => '{\"call_id\": \"c1\"}'::jsonb, id => 'evt_c1')").await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count_events(&db, "acme").await, 0, "a rolled-back transaction publishes nothing");

    let tx = client.transaction().await.unwrap();
    let id: String = tx
        .query_one("SELECT herald.publish(tenant => 'acme', type => 'approval_completed', data => '{\"call_id\": \"c1\"}'::jsonb, id => 'evt_c1')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(id, "evt_c1");
    assert_eq!(count_events(&db, "acme").await, 0, "not visible before COMMIT");
    tx.commit().await.unwrap();
    assert_eq!(count_events(&db, "acme").await, 1, "a committed transaction publishes exactly one event");

    // The same id again stores nothing new and returns the same id.
    let again: String = client
        .query_one(
            "SELECT herald.publish(tenant => 'acme', type => 'other', data => 'null'::jsonb, id => 'evt_c1')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(again, "evt_c1");
    assert_eq!(count_events(&db, "acme").await, 1);
    let pending: i64 = client.query_one("SELECT count(*) FROM herald.pending_events", &[]).await.unwrap().get(0);
    assert_eq!(pending, 1, "a duplicate is not queued for fan-out again");

    // A generated id is a time-ordered evt_ id.
    let generated: String =
        client.query_one("SELECT herald.publish('acme', 'run.finished', 'null'::jsonb)", &[]).await.unwrap().get(0);
    assert!(generated.starts_with("evt_") && generated.len() == 30, "{generated}");
}

#[tokio::test]
async fn sql_publish_refuses_unknown_tenants_and_bad_input() {
    let db = TestDb::new().await;
    db.tenant("acme").await;
    let client = db.client().await;
    for (call, why) in [
        ("SELECT herald.publish('nobody', 't', '{}'::jsonb)", "unknown tenant"),
        ("SELECT herald.publish('acme', 'bad type!', '{}'::jsonb)", "invalid event type"),
        ("SELECT herald.publish('acme', 't', '{}'::jsonb, id => E'a\\nb')", "invalid event id"),
        ("SELECT herald.publish('acme', 't', NULL)", "data is required"),
        ("SELECT herald.publish('acme', 't', '{}'::jsonb, callback_url => 'ftp://x')", "invalid callback_url"),
        ("SELECT herald.publish('acme', 't', '{}'::jsonb, callback_url => 'http://u:p@x/')", "invalid callback_url"),
        ("SELECT herald.publish('acme', 't', '{}'::jsonb, callback_url => 'https://x/', callback_secret => 'whsec_c2hvcnQ=')", "invalid callback_secret"),
        ("SELECT herald.publish('acme', 't', '{}'::jsonb, callback_secret => 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')", "need a callback_url"),
        ("SELECT herald.publish('acme', 't', '{}'::jsonb, callback_url => 'https://x/', retry_schedule => '{}')", "invalid retry_schedule"),
        ("SELECT herald.publish('acme', 't', '{}'::jsonb, traceparent => E'00-x\\r\\n')", "invalid traceparent"),
    ] {
        let err = client.batch_execute(call).await.expect_err(call);
        let msg = err.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
        assert!(msg.contains(why), "{call}: {msg}");
    }
    assert_eq!(count_events(&db, "acme").await, 0);
}

#[tokio::test]
async fn rust_publish_on_a_transaction_and_duplicates() {
    let db = TestDb::new().await;
    db.tenant("acme").await;
    let mut client = herald_core::db::connect(&db.url).await.unwrap();
    let event = NewEvent {
        id: Some("evt_rust_1".parse().unwrap()),
        event_type: "meeting.completed".into(),
        data: json!({"meeting": 7}).into(),
        callback_url: Some("https://agents.example.com/runs/7".into()),
        retry_schedule: Some(herald_core::config::RetrySchedule::parse(&["3s", "6s"]).unwrap()),
        ..Default::default()
    };
    let now = chrono::Utc::now();
    let tx = client.transaction().await.unwrap();
    let first = publish(&tx, &"acme".parse().unwrap(), &event, now).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(!first.duplicate);
    assert_eq!(count_events(&db, "acme").await, 0);

    let tx = client.transaction().await.unwrap();
    let first = publish(&tx, &"acme".parse().unwrap(), &event, now).await.unwrap();
    tx.commit().await.unwrap();
    assert!(!first.duplicate);
    let secret = first.generated_callback_secret.expect("a callback without a secret gets one");
    assert!(herald_core::signing::Secret::parse(&secret).is_ok(), "{secret}");

    let tx = client.transaction().await.unwrap();
    let second = publish(&tx, &"acme".parse().unwrap(), &event, now + chrono::Duration::seconds(5)).await.unwrap();
    tx.commit().await.unwrap();
    assert!(second.duplicate);
    assert_eq!(second.created_at, first.created_at, "a duplicate answers the original");
    assert_eq!(second.generated_callback_secret, None, "a secret is shown once");
    assert_eq!(count_events(&db, "acme").await, 1);
    let row = client.query_one("SELECT retry_schedule_ms, callback_secret FROM herald.events", &[]).await.unwrap();
    assert_eq!(row.get::<_, Vec<i64>>(0), vec![3000, 6000]);
    assert_eq!(row.get::<_, String>(1), secret);

    let err = {
        let tx = client.transaction().await.unwrap();
        publish(&tx, &"nobody".parse().unwrap(), &event, now).await.unwrap_err()
    };
    assert!(matches!(err, herald_producer::PublishError::UnknownTenant(_)), "{err}");
}

#[tokio::test]
async fn publish_wakes_listeners_at_commit_only() {
    let db = TestDb::new().await;
    db.tenant("acme").await;
    let (listener, mut conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    let (tx_note, mut notes) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(msg)) = stream.next().await {
            if let AsyncMessage::Notification(n) = msg {
                let _ = tx_note.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    listener.batch_execute("LISTEN herald_outbox").await.unwrap();

    let mut client = herald_core::db::connect(&db.url).await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("SELECT herald.publish('acme', 't', '1'::jsonb, id => 'rolled-back')").await.unwrap();
    tx.rollback().await.unwrap();
    client.batch_execute("SELECT herald.publish('acme', 't', '1'::jsonb, id => 'committed')").await.unwrap();
    let (channel, payload) = tokio::time::timeout(Duration::from_secs(10), notes.recv()).await.unwrap().unwrap();
    assert_eq!((channel.as_str(), payload.as_str()), ("herald_outbox", "acme"));
    // The committed publish is the only one that notified: the rolled-back one sent nothing
    // before it, and a ping after shows nothing else is queued.
    client.batch_execute("NOTIFY herald_outbox, 'ping'").await.unwrap();
    let (_, next) = tokio::time::timeout(Duration::from_secs(10), notes.recv()).await.unwrap().unwrap();
    assert_eq!(next, "ping");

    // A heavy publisher may turn the hint off for its session: the event is stored and queued
    // all the same (the poller's poll finds it), and no notification is sent.
    client
        .batch_execute("SET herald.notify = off; SELECT herald.publish('acme', 't', '1'::jsonb, id => 'quiet')")
        .await
        .unwrap();
    client.batch_execute("NOTIFY herald_outbox, 'ping2'").await.unwrap();
    let (_, next) = tokio::time::timeout(Duration::from_secs(10), notes.recv()).await.unwrap().unwrap();
    assert_eq!(next, "ping2");
    let queued: i64 = client
        .query_one("SELECT count(*) FROM herald.pending_events WHERE event_id = 'quiet'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 1);
}
