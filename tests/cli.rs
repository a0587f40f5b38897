//! The binary as operators and newcomers use it: `herald migrate`, `herald tenant create`,
//! `herald all` taking events over HTTP and from SQL.

mod support;

use herald_testkit::TestDb;
use serde_json::{json, Value};
use support::{herald_output, Herald};

/// A rollback: an earlier image's `herald migrate` (an initContainer) on a database that a later
/// release migrated goes through, and says so; a landed migration edited is still refused.
#[tokio::test]
async fn migrate_runs_on_a_database_a_later_release_migrated() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO herald.schema_history (version, name, applied_on, checksum) \
             VALUES (9999, 'from_a_later_release', '2027-01-01T00:00:00Z', '1')",
        )
        .await
        .unwrap();
    let (ok, _, err) = herald_output(&db, &["migrate"]);
    assert!(ok, "{err}");
    assert!(err.contains("later Herald") && err.contains("from_a_later_release"), "{err}");
    // A landed migration edited: refused.
    let checksum: String =
        client.query_one("SELECT checksum FROM herald.schema_history WHERE version = 1", &[]).await.unwrap().get(0);
    client.batch_execute("UPDATE herald.schema_history SET checksum = '1' WHERE version = 1").await.unwrap();
    let (ok, _, err) = herald_output(&db, &["migrate"]);
    assert!(!ok && err.contains("V1__initial") && err.contains("different"), "an edited migration is refused: {err}");
    client.execute("UPDATE herald.schema_history SET checksum = $1 WHERE version = 1", &[&checksum]).await.unwrap();
    // One of its own never applied below the newest: refused, not skipped.
    client.batch_execute("DELETE FROM herald.schema_history WHERE version = 2").await.unwrap();
    let (ok, _, err) = herald_output(&db, &["migrate"]);
    assert!(!ok && err.contains("never applied V2__delivery"), "a gap is refused: {err}");
}

#[tokio::test]
async fn tenant_create_prints_the_token_alone_and_it_works() {
    let db = TestDb::new().await;
    // A newcomer who forgets to migrate is told what to do. (TestDb is migrated: drop the
    // schema to see a fresh database.)
    db.client().await.batch_execute("DROP SCHEMA herald CASCADE").await.unwrap();
    let (ok, _, err) = herald_output(&db, &["tenant", "create", "acme"]);
    assert!(!ok && err.contains("herald migrate"), "{err}");
    let (ok, out, err) = herald_output(&db, &["migrate"]);
    assert!(ok, "{err}");
    let (ok, token, err) = herald_output(&db, &["tenant", "create", "acme"]);
    assert!(ok, "{err}");
    assert_eq!(token.lines().count(), 1, "only the token on stdout: {token:?}");
    let token = token.trim().to_string();
    assert!(out.is_empty());
    let hashed: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM herald.api_tokens WHERE token_hash = sha256($1::text::bytea)", &[&token])
        .await
        .unwrap()
        .get(0);
    assert_eq!(hashed, 1, "only the hash is stored");
    let plain: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM herald.api_tokens WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'",
            &[&token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plain, 0);

    let (ok, _, err) = herald_output(&db, &["tenant", "create", "acme"]);
    assert!(!ok && err.contains("exists already"), "{err}");
    let (ok, _, err) = herald_output(&db, &["tenant", "create", "Not Valid"]);
    assert!(!ok && err.contains("a-z 0-9"), "{err}");

    let herald = Herald::start(&db, "all", &[]).await;
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/v1/events", herald.base))
        .bearer_auth(&token)
        .json(&json!({"id": "evt_cli_1", "type": "run.finished", "data": {"ok": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);

    // Published by SQL in a service's own transaction: readable through the API at once.
    db.client().await.batch_execute("BEGIN; SELECT herald.publish(tenant => 'acme', type => 'approval_completed', data => '{\"call_id\": \"c1\"}'::jsonb, id => 'evt_c1'); COMMIT;").await.unwrap();
    let v: Value = http
        .get(format!("{}/v1/events/evt_c1", herald.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["type"], "approval_completed");
    assert_eq!(v["data"]["call_id"], "c1");

    let metrics = http.get(format!("{}/metrics", herald.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("herald_build_info"), "{metrics}");
}
#[tokio::test]
async fn help_lists_every_contract_setting() {
    let out = std::process::Command::new(support::BIN).args(["all", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "HERALD_DATABASE_URL",
        "HERALD_LISTEN",
        "HERALD_RETRY_SCHEDULE",
        "HERALD_LEASE",
        "HERALD_ATTEMPT_TIMEOUT",
        "HERALD_ALLOW_PRIVATE_TARGETS",
        "HERALD_MAX_PAYLOAD_BYTES",
    ] {
        assert!(help.contains(var), "`herald all --help` must list {var}:\n{help}");
    }
}

#[tokio::test]
async fn migrate_citus_refuses_a_postgresql_without_citus_and_changes_nothing() {
    let db = TestDb::new().await;
    let before = db.row_counts().await;
    let history: i64 =
        db.client().await.query_one("SELECT count(*) FROM herald.schema_history", &[]).await.unwrap().get(0);
    let (ok, _, err) = herald_output(&db, &["migrate", "--citus"]);
    assert!(!ok, "refused");
    assert!(err.contains("this PostgreSQL has no Citus") && err.contains("CREATE EXTENSION citus"), "{err}");
    assert_eq!(db.row_counts().await, before);
    let after: i64 =
        db.client().await.query_one("SELECT count(*) FROM herald.schema_history", &[]).await.unwrap().get(0);
    assert_eq!(after, history, "no migration ran");
    let (ok, _, err) = herald_output(&db, &["migrate", "--undistribute"]);
    assert!(!ok && err.contains("this PostgreSQL has no Citus"), "the way back refuses too: {err}");
}

#[tokio::test]
async fn every_table_of_herald_has_its_place_on_citus() {
    // A table a migration adds and `herald migrate --citus` does not know would stay on the
    // coordinator alone: every statement naming it would go through one node.
    let db = TestDb::new().await;
    let rows = db
        .client()
        .await
        .query(
            "SELECT 'herald.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = 'herald' AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
                AND c.relname <> 'schema_history' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let tables: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let mut known: Vec<&str> =
        herald_core::citus::REFERENCE.iter().chain(herald_core::citus::DISTRIBUTED).copied().collect();
    known.sort();
    assert_eq!(tables, known, "herald_core::citus::{{REFERENCE, DISTRIBUTED}} must list every table");
}

#[tokio::test]
async fn herald_log_format_json_writes_one_json_object_a_line() {
    let db = TestDb::new().await;
    let log =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("json-log-{}.log", std::process::id()));
    let mut worker = Herald::start_logged(&db, "worker", &[("HERALD_LOG_FORMAT", "json")], &log).await;
    worker.signal("TERM");
    worker.wait_exit(std::time::Duration::from_secs(20)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let started = lines
        .iter()
        .find(|l| l["fields"]["message"] == "delivery-worker started")
        .unwrap_or_else(|| panic!("no start line in:\n{text}"));
    assert_eq!(started["level"], "INFO");
    assert!(started["timestamp"].is_string() && started["fields"]["concurrency"].is_number(), "{started}");
}

/// `herald verify`: a webhook captured at a receiver, checked with its secret, in both dialects.
#[tokio::test]
async fn verify_says_whether_a_captured_webhook_is_signed_by_a_secret() {
    let (_db, _herald, api) = support::herald_all(support::FAST).await;
    let rx = herald_testkit::Receiver::start().await;
    let (_, secret) = api.endpoint(json!({"url": rx.url("/std")})).await;
    let hex_secret = "a raw secret of the receiver";
    api.endpoint(json!({"url": rx.url("/hex"), "signature_scheme": "hmac-sha256-hex", "secret": hex_secret,
                        "signature_header": "X-Sig"}))
        .await;
    api.publish(json!({"id": "evt_verify", "type": "t", "data": {"n": 1}})).await;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let capture = |r: &herald_testkit::Received, name: &str, body: &[u8]| {
        let mut raw = b"POST /hook HTTP/1.1\r\n".to_vec();
        for (k, v) in r.headers.iter() {
            raw.extend_from_slice(format!("{k}: {}\r\n", v.to_str().unwrap()).as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(body);
        let path = dir.join(format!("capture-{}-{name}", std::process::id()));
        std::fs::write(&path, raw).unwrap();
        path
    };
    let verify = |path: &std::path::Path, extra: &[&str]| {
        let out = std::process::Command::new(support::BIN)
            .arg("verify")
            .arg("--request")
            .arg(path)
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let std_req = rx.wait_for("/std", 1, std::time::Duration::from_secs(30)).await.remove(0);
    let good = capture(&std_req, "std", &std_req.body);
    let (code, said) = verify(&good, &["--secret", &secret]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("holds: standard-webhooks"), "{said}");
    // During a rotation either secret may be given.
    let (code, said) = verify(&good, &["--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "--secret", &secret]);
    assert_eq!(code, Some(0), "{said}");
    let tampered = capture(&std_req, "std-tampered", br#"{"tampered":true}"#);
    assert_eq!(verify(&tampered, &["--secret", &secret]).0, Some(1));
    assert_eq!(verify(&good, &["--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).0, Some(1));
    assert_eq!(verify(&good, &["--secret", "not a whsec secret"]).0, Some(2));

    let hex_req = rx.wait_for("/hex", 1, std::time::Duration::from_secs(30)).await.remove(0);
    let hex = capture(&hex_req, "hex", &hex_req.body);
    let (code, said) = verify(&hex, &["--secret", hex_secret, "--header", "X-Sig"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("hmac-sha256-hex in x-sig"), "{said}");
    assert_eq!(
        verify(&hex, &["--secret", "another raw secret!!"]).0,
        Some(2),
        "no x-webhook-signature: the header must be named"
    );
    assert_eq!(verify(&hex, &["--secret", "another raw secret!!", "--header", "x-sig"]).0, Some(1));
    for f in [good, tampered, hex] {
        let _ = std::fs::remove_file(f);
    }
}
