//! The consumer portal in a real browser (headless Chromium), used as the owner of a receiving
//! system uses it through a portal link for consumer "acme": it adds an endpoint at a receiver
//! that answers 500, sees the event this test publishes fail there with the receiver's status
//! and body, fixes the URL, retries, and the event arrives, signed with the secret the page
//! showed; it rotates the secret, sends a test, replays. Another consumer's endpoint never
//! shows, and expired and revoked links are refused. The browser side is
//! tests/browser/portal.mjs; the two talk over the script's standard streams.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use herald_testkit::{eventually, Behaviour, Received, Receiver, TestDb};
use serde_json::{json, Value};
use support::{Api, Herald, FAST};

const BAD_BODY: &str = "acme ERP: the order service is down for maintenance";

/// The webhooks of event type `kind` among `got`.
fn of_type<'a>(got: &'a [Received], kind: &str) -> Vec<&'a Received> {
    got.iter().filter(|r| r.json()["type"] == kind).collect()
}

fn verifies(secret: &str, r: &Received) -> bool {
    standardwebhooks::Webhook::new(secret).unwrap().verify(&r.body, &r.headers).is_ok()
}

/// What the test knows of the scene as the browser moves through it.
#[derive(Default)]
struct Scene {
    endpoint_id: String,
    created_secret: String,
    rotated_secret: String,
    event_id: String,
}

/// Answers one `@herald` request of the browser script.
async fn answer(api: &Api, good: &Receiver, scene: &mut Scene, ask: &Value) -> Value {
    match ask["step"].as_str().unwrap_or_default() {
        "endpoint_added" => {
            scene.endpoint_id = ask["endpoint_id"].as_str().unwrap().to_string();
            scene.created_secret = ask["secret"].as_str().unwrap().to_string();
            // The page sent no consumer: the API gave the endpoint the link's.
            let (s, e) = api.get(&format!("/v1/endpoints/{}", scene.endpoint_id)).await;
            assert_eq!(s, 200, "{e}");
            assert_eq!(e["consumer"], "acme", "{e}");
            assert_eq!(e["event_types"], json!(["order.*", "invoice.paid"]), "{e}");
            scene.event_id =
                api.publish(json!({"type": "order.paid", "data": {"order": "A-1042", "amount_cents": 1999}, "consumer": "acme"})).await;
            json!({ "event_id": scene.event_id })
        }
        "delivered" => {
            // The good receiver got exactly that event, once, signed with the secret the page showed.
            let got = good.wait_for("/good", 1, Duration::from_secs(10)).await;
            let orders = of_type(&got, "order.paid");
            assert_eq!(orders.len(), 1, "order.paid webhooks at /good: {}", orders.len());
            let e = orders[0].json();
            assert_eq!(e["id"], scene.event_id.as_str());
            assert_eq!(e["data"], json!({"order": "A-1042", "amount_cents": 1999}));
            assert!(
                verifies(&scene.created_secret, orders[0]),
                "the delivered webhook is not signed with the page's secret"
            );
            json!({})
        }
        "rotated" => {
            scene.rotated_secret = ask["secret"].as_str().unwrap().to_string();
            json!({})
        }
        other => json!({ "error": format!("unknown step {other:?}") }),
    }
}

#[tokio::test]
async fn a_consumer_fixes_its_endpoint_in_the_portal_and_gets_the_event() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let chromium = support::chromium();

    let db = TestDb::new().await;
    let token = db.tenant("shop").await;
    let herald = Herald::start(&db, "all", FAST).await;
    let api = Api::new(&herald.base, &token);
    let rx = Receiver::start().await;
    rx.set("/bad", Behaviour::Raw(500, BAD_BODY.as_bytes()));
    let globex_url = rx.url("/globex-hooks");
    let (globex_id, _) = api.endpoint(json!({"url": globex_url, "consumer": "globex"})).await;

    let (_, acme) = api.link(json!({"kind": "portal", "consumer": "acme", "expires_in": "1h"})).await;
    let (revoked_id, revoked) = api.link(json!({"kind": "portal", "consumer": "acme"})).await;
    let r = api.http.delete(format!("{}/v1/links/{revoked_id}", api.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (_, expired) = api.link(json!({"kind": "portal", "consumer": "acme", "expires_in": "1s"})).await;
    eventually("the short link to expire", Duration::from_secs(30), || async {
        (api.exchange(&expired).await == 401).then_some(())
    })
    .await;

    let config = json!({
        "base": herald.base,
        "shots": format!("{root}/target"),
        "links": {"acme": acme, "expired": expired, "revoked": revoked},
        "bad_url": rx.url("/bad"),
        "bad_body": BAD_BODY,
        "good_url": rx.url("/good"),
        "globex_url": globex_url,
        "globex_id": globex_id,
    });
    let mut node = Command::new("node")
        .arg(format!("{root}/tests/browser/portal.mjs"))
        .arg(config.to_string())
        .env("HERALD_CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut to_node = node.stdin.take().unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stdout = node.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut stderr = node.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let mut scene = Scene::default();
    let mut log = String::new();
    loop {
        let line = match tokio::time::timeout(Duration::from_secs(240), lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(_) => {
                let _ = node.kill();
                panic!("the browser run stalled; so far:\n{log}");
            }
        };
        match line.strip_prefix("@herald ") {
            Some(ask) => {
                let reply = answer(&api, &rx, &mut scene, &serde_json::from_str(ask).unwrap()).await;
                writeln!(to_node, "{reply}").and_then(|()| to_node.flush()).expect("write to the browser script");
            }
            None => {
                log.push_str(&line);
                log.push('\n');
            }
        }
    }
    let status = node.wait().unwrap();
    let errors = errors.join().unwrap();
    assert!(status.success(), "the browser run failed (see target/portal-failure.png):\n{log}{errors}");
    eprintln!("{log}");

    // The 500 receiver got the event on each of its 3 attempts; the good one got it on the retry
    // and again on the replay, the second time signed with both the new secret and the old one
    // (24 hours of overlap); the test event was signed with the new one too.
    let bad = of_type(&rx.requests("/bad"), "order.paid").len();
    assert_eq!(bad, 3, "attempts at the 500 receiver");
    let got = rx.wait_for("/good", 3, Duration::from_secs(10)).await;
    let orders = of_type(&got, "order.paid");
    assert_eq!(orders.len(), 2, "order.paid at /good: the retry and the replay");
    assert!(orders.iter().all(|r| r.json()["id"] == scene.event_id.as_str()));
    assert_eq!(orders[0].header("webhook-id"), orders[1].header("webhook-id"));
    assert!(verifies(&scene.rotated_secret, orders[1]) && verifies(&scene.created_secret, orders[1]));
    let tests = of_type(&got, "herald.test");
    assert_eq!(tests.len(), 1, "test events at /good");
    assert_eq!(tests[0].json()["data"]["endpoint_id"], scene.endpoint_id.as_str());
    assert!(verifies(&scene.rotated_secret, tests[0]), "the test event is not signed with the rotated secret");
    let (_, e) = api.get(&format!("/v1/endpoints/{}", scene.endpoint_id)).await;
    assert_eq!((e["url"].as_str(), e["status"].as_str()), (Some(rx.url("/good").as_str()), Some("healthy")), "{e}");
    // Globex's endpoint is untouched by acme's session.
    let (_, g) = api.get(&format!("/v1/endpoints/{globex_id}")).await;
    assert_eq!(g["url"], globex_url.as_str(), "{g}");
}
