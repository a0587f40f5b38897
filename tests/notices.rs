//! Failing-endpoint notices by email and Slack, end to end: the real `herald` binary, a real SMTP
//! server on 127.0.0.1 (aiosmtpd from PyPI, which scripts/smtp-deps.sh installs under
//! target/smtp; each message it takes is a file in a maildir), and a loopback receiver for Slack.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use herald_testkit::{eventually, Behaviour, Receiver, TestDb};
use serde_json::{json, Value};
use support::{fast_with, free_port, herald_output, Api, Herald};

const WAIT: Duration = Duration::from_secs(60);
const FROM: &str = "Herald <herald@example.com>";

/// aiosmtpd on 127.0.0.1:`port`, writing each message it takes into a maildir; stopped, and its
/// directory removed, when dropped.
struct Smtp {
    child: Child,
    dir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One message as the server stored it.
#[derive(Debug)]
struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mail {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    fn parse(raw: &str) -> Self {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = headers.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut mail = Self { headers, body: body.to_string() };
        if mail.header("content-transfer-encoding").eq_ignore_ascii_case("quoted-printable") {
            mail.body = quoted_printable(&mail.body);
        }
        mail
    }
}

/// Undoes quoted-printable (soft line breaks, `=XX`), as a mail client would.
fn quoted_printable(s: &str) -> String {
    let joined = s.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if let Some(b) = joined.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Smtp {
    fn python() -> PathBuf {
        std::env::var_os("HERALD_AIOSMTPD_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/smtp/bin/python"))
    }

    async fn start(port: u16) -> Self {
        let python = Self::python();
        assert!(
            python.exists(),
            "{} not found: run scripts/smtp-deps.sh (it installs aiosmtpd under target/smtp), or set HERALD_AIOSMTPD_PYTHON to a python that has aiosmtpd",
            python.display()
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("smtp-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let smtp = Self { child, dir };
        eventually("the SMTP server to listen", WAIT, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
        })
        .await;
        smtp
    }

    /// Every message taken so far, in the order they came.
    fn messages(&self) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("new")) else { return Vec::new() };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), e.path()))
            .collect();
        files.sort();
        files.into_iter().map(|(_, p)| Mail::parse(&std::fs::read_to_string(p).unwrap())).collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<Mail> {
        eventually(&format!("{n} emails"), WAIT, || async {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
        .await
    }
}

/// Each notice of `tenant`: (kind, channel, state, attempts, last_error), oldest first.
async fn notices(db: &TestDb, tenant: &str) -> Vec<Row> {
    db.client()
        .await
        .query(
            "SELECT kind, channel, state, attempts, last_error FROM herald.notices WHERE tenant_id = $1 ORDER BY notice_id",
            &[&tenant],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

async fn metrics(herald: &Herald) -> String {
    reqwest::get(format!("{}/metrics", herald.base)).await.unwrap().text().await.unwrap()
}

fn has_line(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

/// Waits until /metrics shows every one of `lines` (a result is counted just after it is
/// written, so a read right after the database changed may come before it).
async fn wait_metrics(herald: &Herald, lines: &[&str]) {
    eventually(&format!("/metrics to show {lines:?}"), WAIT, || async {
        let m = metrics(herald).await;
        lines.iter().all(|line| has_line(&m, line)).then_some(())
    })
    .await;
}

/// A notice of `tenant` as its row says: (kind, channel, state, attempts, last_error).
type Row = (String, String, String, i32, Option<String>);

fn find<'a>(rows: &'a [Row], kind: &str, channel: &str) -> Option<&'a Row> {
    rows.iter().find(|(k, c, ..)| k == kind && c == channel)
}

/// Tenant `acme` with a real SMTP server and a Slack receiver on 127.0.0.1, a receiver that
/// answers `path` with `behaviour` for its endpoint, and `herald all` sending notices quickly
/// (ticks of 100 ms, retries after 200 and 400 ms).
struct Channels {
    db: TestDb,
    smtp: Smtp,
    slack: Receiver,
    hooks: Receiver,
    herald: Herald,
    api: Api,
}

async fn channels(path: &str, behaviour: Behaviour) -> Channels {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let smtp_port = free_port();
    let smtp = Smtp::start(smtp_port).await;
    let slack = Receiver::start().await;
    let hooks = Receiver::start().await;
    hooks.set(path, behaviour);
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let env = fast_with(&[
        ("HERALD_SMTP_URL", &smtp_url),
        ("HERALD_SMTP_FROM", FROM),
        ("HERALD_NOTICE_INTERVAL", "100ms"),
        ("HERALD_NOTICE_RETRY_SCHEDULE", "200ms,400ms"),
    ]);
    let herald = Herald::start(&db, "all", &env).await;
    let api = Api::new(&herald.base, &token);
    Channels { db, smtp, slack, hooks, herald, api }
}

/// A tenant with both channels; an endpoint whose receiver answers 500 turns failing: one email
/// and one Slack message say so. Fixed, it recovers: one more of each. Nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_recovered_go_by_email_and_slack_once_each() {
    let Channels { db, smtp, slack, hooks, herald, api } = channels("/hook", Behaviour::Status(500, None)).await;

    let slack_url = slack.url("/slack");
    let (s, v) = api.patch("/v1/tenant", json!({"notify_email": "ops@acme.test", "notify_slack_url": slack_url})).await;
    assert_eq!(s, 200, "{v}");
    // The URL is the webhook's secret: shown masked, even to the caller who just sent it.
    let masked = format!("{}/…", slack.base);
    assert_eq!(v["notify_slack_url"].as_str(), Some(&*masked), "{v}");
    let (s, v) = api.get("/v1/tenant").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["notify_email"].as_str(), v["notify_slack_url"].as_str()), (Some("ops@acme.test"), Some(&*masked)));

    let hook_url = hooks.url("/hook");
    let (ep, _) = api.endpoint(json!({"url": hook_url, "event_types": ["order.*"]})).await;
    let evt = api.publish(json!({"type": "order.paid", "data": {"n": 1}})).await;
    api.wait_delivery(&evt, Some(&ep), "failed", WAIT).await;

    // The failing notice, by mail...
    let mails = smtp.wait_for(1).await;
    let mail = &mails[0];
    assert!(mail.header("to").contains("ops@acme.test"), "To: {:?}", mail.headers);
    assert_eq!(mail.header("x-rcptto"), "ops@acme.test", "the envelope's recipient");
    assert!(mail.header("from").contains("herald@example.com"), "From: {:?}", mail.headers);
    let subject = mail.header("subject");
    assert!(subject.contains(&ep) && subject.contains("is failing") && subject.contains("acme"), "{subject}");
    for part in [ep.as_str(), hook_url.as_str(), "is failing", "answered 500", evt.as_str()] {
        assert!(mail.body.contains(part), "the email's body lacks {part:?}:\n{}", mail.body);
    }
    // ... and on Slack.
    let posts = slack.wait_for("/slack", 1, WAIT).await;
    assert_eq!(posts[0].header("content-type"), Some("application/json"));
    let text = posts[0].json()["text"].as_str().expect("a Slack message is {\"text\": ...}").to_string();
    for part in [ep.as_str(), hook_url.as_str(), "is failing", "answered 500"] {
        assert!(text.contains(part), "the Slack text lacks {part:?}: {text}");
    }

    // Fixed: the next delivery succeeds, and the endpoint has recovered.
    hooks.set("/hook", Behaviour::Ok);
    let evt2 = api.publish(json!({"type": "order.paid", "data": {"n": 2}})).await;
    api.wait_delivery(&evt2, Some(&ep), "delivered", WAIT).await;
    let mails = smtp.wait_for(2).await;
    assert!(mails[1].header("subject").contains("has recovered"), "{:?}", mails[1].headers);
    assert!(mails[1].body.contains(&ep), "{}", mails[1].body);
    let posts = slack.wait_for("/slack", 2, WAIT).await;
    let text = posts[1].json()["text"].as_str().unwrap().to_string();
    assert!(text.contains("has recovered") && text.contains(&ep), "{text}");

    // Exactly once: every notice is recorded as sent on its first attempt (so none is left to
    // go again), and the servers got one message per notice.
    let all = eventually("every notice to be recorded", WAIT, || async {
        let n = notices(&db, "acme").await;
        (n.len() == 4 && n.iter().all(|(_, _, state, ..)| state == "sent")).then_some(n)
    })
    .await;
    let mut kinds: Vec<(String, String)> = all.iter().map(|(k, c, ..)| (k.clone(), c.clone())).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [("failing", "email"), ("failing", "slack"), ("recovered", "email"), ("recovered", "slack")]
            .map(|(k, c)| (k.to_string(), c.to_string()))
    );
    assert!(all.iter().all(|(.., attempts, _)| *attempts == 1), "{all:?}");
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(slack.count("/slack"), 2);
    wait_metrics(
        &herald,
        &[
            "herald_notices_total{channel=\"email\",result=\"sent\"} 2",
            "herald_notices_total{channel=\"slack\",result=\"sent\"} 2",
        ],
    )
    .await;
}

/// The mail server is down when the endpoint fails: the notice is retried (its state in the
/// database) while deliveries go on, and arrives once the server is up. A tenant without
/// channels gets no notice row at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_waits_for_the_mail_server_while_deliveries_go_on() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let quiet = db.tenant("quiet").await;
    // Set by the operator, on the command line.
    let (ok, out, err) = herald_output(&db, &["tenant", "set", "acme", "--notify-email", "ops@acme.test"]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(shown["notify_email"], "ops@acme.test", "{out}");
    let (ok, _, err) = herald_output(&db, &["tenant", "set", "acme", "--notify-email", "not-an-address"]);
    assert!(!ok && err.contains("--notify-email"), "{err}");

    let smtp_port = free_port(); // nothing listens there yet
    let hooks = Receiver::start().await;
    hooks.set("/hook", Behaviour::Status(500, None));
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    // Quick at first, then every second: about 18 s for the server to come up before the
    // notice would be given up.
    let schedule = ["200ms", "400ms", "800ms"].into_iter().chain(["1s"; 17]).collect::<Vec<_>>().join(",");
    let env = fast_with(&[
        ("HERALD_SMTP_URL", &smtp_url),
        ("HERALD_SMTP_FROM", FROM),
        ("HERALD_NOTICE_INTERVAL", "100ms"),
        ("HERALD_NOTICE_RETRY_SCHEDULE", &schedule),
    ]);
    let herald = Herald::start(&db, "all", &env).await;
    let api = Api::new(&herald.base, &token);
    let (ep, _) = api.endpoint(json!({"url": hooks.url("/hook"), "event_types": ["order.*"]})).await;
    let (ok_ep, _) = api.endpoint(json!({"url": hooks.url("/ok"), "event_types": ["other.*"]})).await;
    let quiet_api = Api::new(&herald.base, &quiet);
    let (quiet_ep, _) = quiet_api.endpoint(json!({"url": hooks.url("/quiet"), "event_types": ["order.*"]})).await;
    hooks.set("/quiet", Behaviour::Status(500, None));

    let evt = api.publish(json!({"type": "order.paid", "data": {}})).await;
    let quiet_evt = quiet_api.publish(json!({"type": "order.paid", "data": {}})).await;
    api.wait_delivery(&evt, Some(&ep), "failed", WAIT).await;
    quiet_api.wait_delivery(&quiet_evt, Some(&quiet_ep), "failed", WAIT).await;

    // The notice is tried, fails (connection refused), and waits in the database.
    let first = eventually("the email notice to fail an attempt", WAIT, || async {
        notices(&db, "acme").await.into_iter().find(|(_, _, state, attempts, e)| {
            state == "pending" && *attempts >= 1 && e.as_deref().is_some_and(|e| e.contains("smtp"))
        })
    })
    .await;
    assert_eq!((first.0.as_str(), first.1.as_str()), ("failing", "email"), "{first:?}");
    // Meanwhile, deliveries go on.
    let evt2 = api.publish(json!({"type": "other.thing", "data": {}})).await;
    api.wait_delivery(&evt2, Some(&ok_ep), "delivered", WAIT).await;
    let (s, e) = api.get(&format!("/v1/endpoints/{ep}")).await;
    assert_eq!((s, e["status"].as_str()), (200, Some("failing")), "{e}");
    assert!(notices(&db, "acme").await.iter().all(|(_, _, state, ..)| state == "pending"));

    // The mail server comes up: the notice goes at its next attempt.
    let smtp = Smtp::start(smtp_port).await;
    let mails = smtp.wait_for(1).await;
    assert!(mails[0].header("subject").contains(&ep) && mails[0].body.contains("is failing"), "{:?}", mails[0]);
    let sent = eventually("the notice to be recorded as sent", WAIT, || async {
        notices(&db, "acme").await.into_iter().find(|(_, _, state, ..)| state == "sent")
    })
    .await;
    assert!(sent.3 >= 2, "sent after a failed attempt at least: {sent:?}");
    assert_eq!(notices(&db, "acme").await.len(), 1, "one notice for one change");
    assert_eq!(smtp.messages().len(), 1);
    // The tenant without channels: its endpoint failed too, and no notice was written for it.
    let (_, q) = quiet_api.get(&format!("/v1/endpoints/{quiet_ep}")).await;
    assert_eq!(q["status"], "failing", "{q}");
    assert!(notices(&db, "quiet").await.is_empty());
}

/// Slack keeps answering 503: the notice is tried on the schedule until the schedule's total
/// has passed since the change, then given up, which is logged and counted. The Slack URL, the
/// webhook's secret, is never in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_that_cannot_go_is_given_up_with_a_log_and_a_metric() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let slack = Receiver::start().await;
    slack.set("/services/T0/B0/s3cr3t", Behaviour::Status(503, None));
    let hooks = Receiver::start().await;
    hooks.set("/hook", Behaviour::Status(500, None));
    let env = fast_with(&[("HERALD_NOTICE_INTERVAL", "100ms"), ("HERALD_NOTICE_RETRY_SCHEDULE", "300ms,300ms")]);
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("notices-given-up-{}.log", std::process::id()));
    let herald = Herald::start_logged(&db, "all", &env, &log).await;
    let api = Api::new(&herald.base, &token);
    let (s, v) = api.patch("/v1/tenant", json!({"notify_slack_url": slack.url("/services/T0/B0/s3cr3t")})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["notify_email"], Value::Null);
    let (ep, _) = api.endpoint(json!({"url": hooks.url("/hook"), "event_types": ["order.*"]})).await;
    let evt = api.publish(json!({"type": "order.paid", "data": {}})).await;
    api.wait_delivery(&evt, Some(&ep), "failed", WAIT).await;

    let given_up = eventually("the notice to be given up", WAIT, || async {
        notices(&db, "acme").await.into_iter().find(|(_, _, state, ..)| state == "failed")
    })
    .await;
    let error = given_up.4.clone().unwrap();
    assert!(error.contains("503") && error.contains("given up: not sent within 600ms"), "{error}");
    // Retried, one request per attempt...
    let attempts = given_up.3;
    assert!(attempts >= 2, "retried before it was given up: {given_up:?}");
    let posts = slack.requests("/services/T0/B0/s3cr3t");
    assert_eq!(posts.len(), attempts as usize);
    // ... until its deadline, 600 ms after the change: the attempt that gave up came no sooner
    // (less the time the answer took to come back).
    let created: chrono::DateTime<chrono::Utc> = db
        .client()
        .await
        .query_one("SELECT created_at FROM herald.notices WHERE tenant_id = 'acme'", &[])
        .await
        .unwrap()
        .get(0);
    let last = posts.last().unwrap();
    let last_at = chrono::Utc::now() - chrono::Duration::from_std(last.at.elapsed()).unwrap();
    assert!(
        last_at >= created + chrono::Duration::milliseconds(600 - 100),
        "the last attempt came {} ms after the change",
        (last_at - created).num_milliseconds()
    );
    let failed = format!("herald_notices_total{{channel=\"slack\",result=\"failed\"}} {}", attempts - 1);
    wait_metrics(
        &herald,
        &[
            "herald_notices_total{channel=\"slack\",result=\"given_up\"} 1",
            &failed,
            "herald_notices_total{channel=\"slack\",result=\"sent\"} 0",
        ],
    )
    .await;
    let logged = eventually("the log to say so", WAIT, || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("given up").then_some(text)
    })
    .await;
    assert!(!logged.contains("s3cr3t"), "the Slack URL is in the log:\n{logged}");
    drop(herald);
    let _ = std::fs::remove_file(&log);
}

/// `PATCH /v1/tenant` sets and clears a tenant's own channels, and refuses, with a 422 that says
/// how to fix it and nothing written, what is not an address or a usable URL, and the
/// operator's settings. Here non-public targets are not allowed (the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_tenant_sets_and_checks_the_channels() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let other = db.tenant("beta").await;
    let herald = Herald::start_with(&db, "all", &fast_with(&[]), false).await;
    let api = Api::new(&herald.base, &token);
    let slack = "https://hooks.slack.com/services/T0/B0/abc";

    let (s, v) = api.patch("/v1/tenant", json!({"notify_email": "ops@acme.example", "notify_slack_url": slack})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["id"].as_str(), v["notify_email"].as_str()), (Some("acme"), Some("ops@acme.example")));
    // Masked: the path is the webhook's secret.
    let masked = "https://hooks.slack.com/…";
    assert_eq!(v["notify_slack_url"], masked, "{v}");
    assert!(!v.to_string().contains("abc"), "{v}");
    assert_eq!(v["require_https"], false, "the other settings are shown as before");

    for (body, code, says) in [
        (json!({"notify_email": "ops at acme"}), "invalid_notify_email", "ops@example.com"),
        (json!({"notify_email": "Ops <ops@acme.example>"}), "invalid_notify_email", "plain address"),
        (json!({"notify_slack_url": "http://hooks.slack.com/services/x"}), "invalid_url", "https://"),
        (json!({"notify_slack_url": "https://127.0.0.1/services/x"}), "blocked_target", "HERALD_ALLOW_PRIVATE_TARGETS"),
        (json!({"notify_slack_url": "ftp://hooks.slack.com/x"}), "invalid_url", "https"),
        (json!({"notify_email": null, "notify_slack_url": "not a url"}), "invalid_url", "URL"),
        (json!({"notify_email": 7}), "invalid_field", "notify_email"),
        (json!({"require_https": false}), "invalid_field", "require_https"),
    ] {
        let (s, v) = api.patch("/v1/tenant", body.clone()).await;
        assert_eq!(s, 422, "{body} → {v}");
        assert_eq!(v["error"]["code"], code, "{body} → {v}");
        let message = v["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{body}: the message should say {says:?}: {message}");
    }
    // Nothing of a refused request was written (its valid field neither).
    let (_, v) = api.get("/v1/tenant").await;
    assert_eq!((v["notify_email"].as_str(), v["notify_slack_url"].as_str()), (Some("ops@acme.example"), Some(masked)));
    // Stored in full (the sender needs it), shown masked to every scope that may read it.
    let stored: Option<String> = db
        .client()
        .await
        .query_one("SELECT notify_slack_url FROM herald.tenants WHERE tenant_id = 'acme'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.as_deref(), Some(slack));
    let (s, t) = api.post("/v1/tokens", json!({"name": "dashboard", "scope": "read"})).await;
    assert_eq!(s, 201, "{t}");
    let (s, v) = Api::new(&herald.base, t["token"].as_str().unwrap()).get("/v1/tenant").await;
    assert_eq!((s, v["notify_slack_url"].as_str()), (200, Some(masked)), "{v}");

    // Absent: left as it is; null: off.
    let (s, v) = api.patch("/v1/tenant", json!({"notify_slack_url": null})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["notify_email"].as_str(), v["notify_slack_url"].clone()), (Some("ops@acme.example"), Value::Null));
    let (s, v) = api.patch("/v1/tenant", json!({})).await;
    assert_eq!((s, v["notify_email"].as_str()), (200, Some("ops@acme.example")));

    // Another tenant's settings are its own.
    let (_, b) = Api::new(&herald.base, &other).get("/v1/tenant").await;
    assert_eq!((b["id"].as_str(), b["notify_email"].clone()), (Some("beta"), Value::Null), "{b}");
}

/// A receiver that answers 410 Gone disables its endpoint: one email and one Slack message say
/// so, however many deliveries met the 410, and name what to do (enable it again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_endpoint_is_told_once_per_channel() {
    let Channels { db, smtp, slack, hooks, herald, api } = channels("/gone", Behaviour::Status(410, None)).await;
    let (s, v) = api
        .patch("/v1/tenant", json!({"notify_email": "ops@acme.test", "notify_slack_url": slack.url("/slack")}))
        .await;
    assert_eq!(s, 200, "{v}");
    let (ep, _) = api.endpoint(json!({"url": hooks.url("/gone"), "event_types": ["order.*"]})).await;
    // Several deliveries at once: each that reaches the receiver meets the 410.
    for n in 0..3 {
        api.publish(json!({"type": "order.paid", "data": {"n": n}})).await;
    }
    eventually("the endpoint to be disabled", WAIT, || async {
        let (_, e) = api.get(&format!("/v1/endpoints/{ep}")).await;
        (e["status"] == "disabled").then_some(())
    })
    .await;

    let mails = smtp.wait_for(1).await;
    let subject = mails[0].header("subject");
    assert!(subject.contains(&ep) && subject.contains("was disabled"), "{subject}");
    for part in ["410 Gone", &format!("/v1/endpoints/{ep}/enable")] {
        assert!(mails[0].body.contains(part), "the email's body lacks {part:?}:\n{}", mails[0].body);
    }
    let posts = slack.wait_for("/slack", 1, WAIT).await;
    let text = posts[0].json()["text"].as_str().unwrap().to_string();
    assert!(text.contains(&ep) && text.contains("was disabled") && text.contains("410 Gone"), "{text}");
    let all = eventually("both notices to be recorded", WAIT, || async {
        let n = notices(&db, "acme").await;
        n.iter().all(|(_, _, state, ..)| state == "sent").then_some(n)
    })
    .await;
    let mut kinds: Vec<(&str, &str)> = all.iter().map(|(k, c, ..)| (k.as_str(), c.as_str())).collect();
    kinds.sort();
    assert_eq!(kinds, [("disabled", "email"), ("disabled", "slack")], "one notice per channel: {all:?}");
    assert!(hooks.count("/gone") >= 1);
    assert_eq!((smtp.messages().len(), slack.count("/slack")), (1, 1));
    wait_metrics(
        &herald,
        &[
            "herald_notices_total{channel=\"email\",result=\"sent\"} 1",
            "herald_notices_total{channel=\"slack\",result=\"sent\"} 1",
        ],
    )
    .await;
}

/// Without HERALD_SMTP_URL no email can go: an email notice is dropped at its first attempt
/// (not retried for a day), while the Slack one goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_mail_server_email_notices_are_dropped_at_once() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let slack = Receiver::start().await;
    let hooks = Receiver::start().await;
    hooks.set("/hook", Behaviour::Status(500, None));
    let env = fast_with(&[("HERALD_NOTICE_INTERVAL", "100ms"), ("HERALD_NOTICE_RETRY_SCHEDULE", "1m")]);
    let herald = Herald::start(&db, "all", &env).await;
    let api = Api::new(&herald.base, &token);
    let (s, v) = api
        .patch("/v1/tenant", json!({"notify_email": "ops@acme.test", "notify_slack_url": slack.url("/slack")}))
        .await;
    assert_eq!(s, 200, "{v}");
    let (ep, _) = api.endpoint(json!({"url": hooks.url("/hook"), "event_types": ["order.*"]})).await;
    let evt = api.publish(json!({"type": "order.paid", "data": {}})).await;
    api.wait_delivery(&evt, Some(&ep), "failed", WAIT).await;

    let all = eventually("both notices to be settled", WAIT, || async {
        let n = notices(&db, "acme").await;
        (n.len() == 2 && n.iter().all(|(_, _, state, ..)| state != "pending")).then_some(n)
    })
    .await;
    let email = find(&all, "failing", "email").expect("an email notice");
    assert_eq!((email.2.as_str(), email.3), ("dropped", 1), "{email:?}");
    assert!(email.4.as_deref().is_some_and(|e| e.contains("HERALD_SMTP_URL")), "{email:?}");
    let slack_notice = find(&all, "failing", "slack").expect("a Slack notice");
    assert_eq!(slack_notice.2, "sent", "{slack_notice:?}");
    assert_eq!(slack.count("/slack"), 1);
    wait_metrics(
        &herald,
        &[
            "herald_notices_total{channel=\"email\",result=\"dropped\"} 1",
            "herald_notices_total{channel=\"email\",result=\"failed\"} 0",
            "herald_notices_total{channel=\"slack\",result=\"sent\"} 1",
        ],
    )
    .await;
}

/// An endpoint fails while Slack is down, then recovers: the `failing` notice, still waiting for
/// Slack, is dropped as superseded (the newest state is what matters), and only `recovered` is
/// posted once Slack is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_change_supersedes_a_notice_not_yet_sent() {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let slack = Receiver::start().await;
    slack.set("/slack", Behaviour::Status(503, None));
    let hooks = Receiver::start().await;
    hooks.set("/hook", Behaviour::Status(500, None));
    // About 20 s before a notice would be given up.
    let schedule = ["200ms"].into_iter().chain(["1s"; 19]).collect::<Vec<_>>().join(",");
    let env = fast_with(&[("HERALD_NOTICE_INTERVAL", "100ms"), ("HERALD_NOTICE_RETRY_SCHEDULE", &schedule)]);
    let herald = Herald::start(&db, "all", &env).await;
    let api = Api::new(&herald.base, &token);
    let (s, v) = api.patch("/v1/tenant", json!({"notify_slack_url": slack.url("/slack")})).await;
    assert_eq!(s, 200, "{v}");
    let (ep, _) = api.endpoint(json!({"url": hooks.url("/hook"), "event_types": ["order.*"]})).await;
    let evt = api.publish(json!({"type": "order.paid", "data": {"n": 1}})).await;
    api.wait_delivery(&evt, Some(&ep), "failed", WAIT).await;
    eventually("the failing notice to meet Slack's 503", WAIT, || async {
        let n = notices(&db, "acme").await;
        find(&n, "failing", "slack").filter(|r| r.2 == "pending" && r.3 >= 1).map(|_| ())
    })
    .await;

    // The endpoint recovers while the failing notice still waits for Slack.
    hooks.set("/hook", Behaviour::Ok);
    let evt2 = api.publish(json!({"type": "order.paid", "data": {"n": 2}})).await;
    api.wait_delivery(&evt2, Some(&ep), "delivered", WAIT).await;
    let superseded = eventually("the failing notice to be dropped", WAIT, || async {
        let n = notices(&db, "acme").await;
        find(&n, "failing", "slack").filter(|r| r.2 == "dropped").cloned()
    })
    .await;
    assert!(superseded.4.as_deref().is_some_and(|e| e.contains("superseded")), "{superseded:?}");

    // Slack is back: the recovery goes, and nothing more says the endpoint is failing.
    let before = slack.count("/slack");
    slack.set("/slack", Behaviour::Ok);
    eventually("the recovered notice to be sent", WAIT, || async {
        let n = notices(&db, "acme").await;
        find(&n, "recovered", "slack").filter(|r| r.2 == "sent").map(|_| ())
    })
    .await;
    let after: Vec<String> = slack.requests("/slack")[before..]
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!after.is_empty() && after.iter().all(|t| t.contains("has recovered")), "{after:?}");
    assert_eq!(notices(&db, "acme").await.len(), 2);
    wait_metrics(
        &herald,
        &[
            "herald_notices_total{channel=\"slack\",result=\"dropped\"} 1",
            "herald_notices_total{channel=\"slack\",result=\"sent\"} 1",
        ],
    )
    .await;
}

/// An SMTP server that takes connections and never says a word; it notes when each came, and
/// the most that were open at once.
struct BlackHole {
    port: u16,
    most: Arc<AtomicUsize>,
    accepted: Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (m, a) = (most.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                a.lock().unwrap().push(std::time::Instant::now());
                m.fetch_max(open.fetch_add(1, SeqCst) + 1, SeqCst);
                let open = open.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = [0u8; 1024];
                    // Until the client gives up and closes.
                    while let Ok(1..) = socket.read(&mut buf).await {}
                    open.fetch_sub(1, SeqCst);
                });
            }
        });
        Self { port, most, accepted, _task: task }
    }
}

/// The notice sender in its own process, where non-public targets are not allowed, with a mail
/// server that hangs. Slack goes on while an email hangs (the channels run apart); emails go to
/// the hanging server one at a time, and after one could not get through no other is tried in
/// that tick (the next waits for the next tick); a Slack URL on a name that resolves to a loopback address is never posted to,
/// and given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_mail_server_and_a_private_slack_url_hold_up_nothing() {
    let db = TestDb::new().await;
    let acme = db.tenant("acme").await;
    let beta = db.tenant("beta").await;
    let hole = BlackHole::start().await;
    let slack = Receiver::start().await;
    let hooks = Receiver::start().await;
    hooks.set("/hook", Behaviour::Status(500, None));

    // The operator may name any host; the sender still connects only where it is allowed.
    let private = format!("http://localhost:{}/slack/s3cr3t", slack.base.rsplit(':').next().unwrap());
    let (ok, out, err) = herald_output(
        &db,
        &["tenant", "set", "acme", "--notify-email", "ops@acme.test", "--notify-slack-url", &private],
    );
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(shown["notify_slack_url"].as_str(), Some(&*format!("{}/…", private.rsplit_once("/slack").unwrap().0)));
    assert!(!out.contains("s3cr3t"), "the printout shows the webhook's secret: {out}");
    let (ok, _, err) = herald_output(&db, &["tenant", "set", "beta", "--notify-email", "ops@beta.test"]);
    assert!(ok, "{err}");

    let smtp_url = format!("smtp://127.0.0.1:{}", hole.port);
    let env = fast_with(&[
        ("HERALD_SMTP_URL", &smtp_url),
        ("HERALD_SMTP_FROM", FROM),
        // Ticks 3 s apart (±20 %), and an attempt given up after 2 s: a second email tried in
        // the same tick as the first would come 2 s after it, in the next tick at least 4.4 s.
        ("HERALD_NOTICE_INTERVAL", "3s"),
        ("HERALD_NOTICE_TIMEOUT", "2s"),
        ("HERALD_NOTICE_RETRY_SCHEDULE", "1m"),
    ]);
    // The API and a worker, which may reach the loopback receivers; the notices wait.
    let producer = Herald::start(&db, "producer", &env).await;
    let _worker = Herald::start(&db, "worker", &env).await;
    for (token, tenant) in [(&acme, "acme"), (&beta, "beta")] {
        let api = Api::new(&producer.base, token);
        let (ep, _) = api.endpoint(json!({"url": hooks.url("/hook"), "event_types": ["order.*"]})).await;
        let evt = api.publish(json!({"type": "order.paid", "data": {}})).await;
        api.wait_delivery(&evt, Some(&ep), "failed", WAIT).await;
        eventually(&format!("{tenant}'s notices to be made"), WAIT, || async {
            let n = notices(&db, tenant).await;
            (n.len() == if tenant == "acme" { 2 } else { 1 }).then_some(())
        })
        .await;
    }
    // Now the notice sender, with non-public targets not allowed: three notices due at once.
    let _poller = Herald::start_with(&db, "poller", &env, false).await;

    let (acme_rows, beta_rows) = eventually("the Slack notice to be given up", WAIT, || async {
        let a = notices(&db, "acme").await;
        find(&a, "failing", "slack").filter(|r| r.2 == "failed")?;
        Some((a, notices(&db, "beta").await))
    })
    .await;
    let given_up = find(&acme_rows, "failing", "slack").unwrap();
    assert_eq!(given_up.3, 1, "given up at once: {given_up:?}");
    assert!(
        given_up.4.as_deref().is_some_and(|e| e.contains("blocked_target") && !e.contains("s3cr3t")),
        "{given_up:?}"
    );
    // Settled while the first email still hangs (2 s): Slack did not wait for it.
    for row in acme_rows.iter().chain(&beta_rows).filter(|r| r.1 == "email") {
        assert_eq!((row.2.as_str(), row.4.as_deref()), ("pending", None), "an email attempt ended already: {row:?}");
    }

    // Both emails are tried, each timing out, one after the other: never two connections at once.
    let emails = eventually("both emails to time out", WAIT, || async {
        let mut rows = notices(&db, "acme").await;
        rows.extend(notices(&db, "beta").await);
        let emails: Vec<Row> = rows.into_iter().filter(|r| r.1 == "email").collect();
        emails.iter().all(|r| r.4.is_some()).then_some(emails)
    })
    .await;
    for row in &emails {
        assert_eq!((row.2.as_str(), row.3), ("pending", 1), "{row:?}");
        let e = row.4.as_deref().unwrap();
        assert!(e.contains(&format!("smtp 127.0.0.1:{}", hole.port)), "{e}");
    }
    let accepted = hole.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 2, "one connection per email");
    assert_eq!(hole.most.load(SeqCst), 1, "the emails went one at a time to the server that hangs");
    let gap = accepted[1] - accepted[0];
    assert!(gap >= Duration::from_millis(3500), "the second email came {gap:?} after the first: not in the next tick");
    assert_eq!(slack.count("/slack/s3cr3t"), 0, "a loopback address was posted to");
}
