//! A client that sends too slowly, or not at all, cannot hold a connection: the real binary, raw
//! TCP on 127.0.0.1, the limits shortened by configuration (the defaults are 10 s and 30 s).

mod support;

use std::time::{Duration, Instant};

use herald_testkit::TestDb;
use support::{Api, Herald};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMITS: &[(&str, &str)] = &[("HERALD_HTTP_READ_TIMEOUT", "1s"), ("HERALD_REQUEST_TIMEOUT", "2s")];

/// Reads until the server closes the connection (or `deadline` passes); what it sent.
async fn read_until_closed(stream: &mut TcpStream, deadline: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + deadline;
    loop {
        match tokio::time::timeout_at(end.into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let herald = Herald::start(&db, "all", LIMITS).await;
    let addr = herald.base.trim_start_matches("http://").to_string();

    // Connected, nothing sent: closed after the read timeout.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let t0 = Instant::now();
    assert!(read_until_closed(&mut silent, Duration::from_secs(10)).await.is_some(), "a silent connection stays open");
    assert!(t0.elapsed() >= Duration::from_millis(900), "closed before the timeout: {:?}", t0.elapsed());

    // Headers a piece at a time, never finished: closed.
    let mut trickle = TcpStream::connect(&addr).await.unwrap();
    trickle.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // A header line every 200 ms for 6 s: a deadline that restarted with each byte would never
    // come; the real one (1 s for the whole head) cuts the trickle long before it ends.
    let writer = async {
        for sent in 0..30 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if trickle.write_all(b"X-A: b\r\n").await.is_err() {
                return sent;
            }
        }
        30
    };
    let (sent, closed) = tokio::join!(writer, async {
        let mut probe = TcpStream::connect(&addr).await.unwrap();
        // (the trickling stream itself is read below; this probe only proves the server lives)
        probe.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        read_until_closed(&mut probe, Duration::from_secs(5)).await
    });
    assert!(closed.unwrap().starts_with("HTTP/1.1 200"), "the server answers others meanwhile");
    assert!(sent < 30, "the trickle was never cut off");
    assert!(
        read_until_closed(&mut trickle, Duration::from_secs(10)).await.is_some(),
        "a trickle of headers is never cut"
    );

    // Headers in full, the body never finished: 408 in the contract's shape, and nothing stored.
    let mut slow_body = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\": \"t\""
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut slow_body, Duration::from_secs(10)).await.expect("the slow body is cut off");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    let stored: i64 = db.client().await.query_one("SELECT count(*) FROM herald.events", &[]).await.unwrap().get(0);
    assert_eq!(stored, 0);
    // And counted, as every answer is (cut off before routing ended: no route pattern).
    let metrics = reqwest::get(format!("{}/metrics", herald.base)).await.unwrap().text().await.unwrap();
    let line = "herald_http_requests_total{route=\"unmatched\",method=\"POST\",status=\"408\"} 1";
    assert!(metrics.lines().any(|l| l == line), "/metrics lacks `{line}`:\n{metrics}");

    // A client that keeps up is served as before, on one keep-alive connection.
    let api = Api::new(&herald.base, &token);
    for i in 0..3 {
        api.publish(serde_json::json!({"type": "t", "data": i})).await;
    }
}
