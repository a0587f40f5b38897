//! The operator CLI (`herald endpoints`, `events`, `deliveries`, `replay`, `tokens`, `tenants`,
//! `completions`) as people and scripts use it: the real binary, run as a subprocess with
//! HERALD_URL and HERALD_TOKEN against a real `herald all` on its own database, webhooks sent to
//! a real receiver on 127.0.0.1. Tables for people, `-o json` for scripts, and the exit codes
//! `herald --help` documents (0 ok, 1 refused, 2 usage or unreachable: nothing done, 3 server
//! error or no answer: maybe done).

mod support;

use std::time::Duration;

use herald_testkit::{eventually, Behaviour, Receiver};
use serde_json::Value;
use support::{herald_all, herald_output, read_request, Herald, FAST};
use tokio::io::AsyncWriteExt;

/// What one run of the CLI did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
}

/// The longest one run of the CLI may take in these tests; past it, the run is killed and the
/// test fails with what it printed (a CLI that hangs must not hang CI).
const CLI_DEADLINE: Duration = Duration::from_secs(90);

/// `herald ARGS` with exactly this environment of Herald's (HERALD_URL, HERALD_TOKEN from the
/// test, never from the shell the tests run in), and `stdin` on standard input; killed, failing
/// the test, past [`CLI_DEADLINE`].
async fn cli(env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Run {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.map(str::to_string);
    // Blocking, off the runtime: the receiver of the same test runs on it meanwhile.
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut cmd = Command::new(support::BIN);
        cmd.args(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for var in ["HERALD_URL", "HERALD_TOKEN", "HERALD_DATABASE_URL", "HERALD_LOG"] {
            cmd.env_remove(var);
        }
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start herald");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        // Both pipes read to their end meanwhile, so that a full pipe cannot stall the child.
        let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let _ = pipe.read_to_end(&mut got);
                String::from_utf8_lossy(&got).into_owned()
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let deadline = std::time::Instant::now() + CLI_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
        let Some(status) = status else {
            panic!("herald {args:?} still ran after {CLI_DEADLINE:?}: killed.\nstdout: {stdout}\nstderr: {stderr}")
        };
        Run { code: status.code().expect("an exit code, not a signal"), stdout, stderr }
    })
    .await
    .unwrap()
}

/// The columns of a table line up: each header's column starts at the same place on every line.
#[track_caller]
fn assert_aligned(table: &str, headers: &[&str]) {
    let lines: Vec<&str> = table.lines().collect();
    let head = lines[0];
    for h in headers {
        let at = head.find(h).unwrap_or_else(|| panic!("no column {h} in {head:?}"));
        for line in &lines[1..] {
            let chars: Vec<char> = line.chars().collect();
            assert!(at == 0 || chars.get(at - 1) == Some(&' '), "column {h} is not aligned on {line:?}:\n{table}");
            assert!(chars.get(at).is_some_and(|c| *c != ' '), "column {h} is empty or shifted on {line:?}:\n{table}");
        }
    }
}

#[tokio::test]
async fn endpoints_and_events_from_the_command_line() {
    let (_db, herald, api) = herald_all(FAST).await;
    let rx = Receiver::start().await;
    let env = [("HERALD_URL", herald.base.as_str()), ("HERALD_TOKEN", api.token.as_str())];

    // Create, for a script: the API's JSON, with the secret.
    let url = rx.url("/hook");
    let created = cli(
        &env,
        &["endpoints", "create", &url, "--event-type", "order.*", "--description", "CRM", "-o", "json"],
        None,
    )
    .await
    .ok()
    .json();
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(created["event_types"], serde_json::json!(["order.*"]));
    // And for people: a table with the secret, which show never prints.
    let second =
        cli(&env, &["endpoints", "create", &rx.url("/other"), "--disabled", "--consumer", "shop-1"], None).await.ok();
    assert!(second.stdout.lines().any(|l| l.starts_with("secret ") && l.contains("whsec_")), "{second:?}");
    assert!(second.stdout.lines().any(|l| l.starts_with("status ") && l.ends_with("disabled")), "{second:?}");
    assert!(second.stdout.contains("(every type)"), "{second:?}");

    let list = cli(&env, &["endpoints", "list"], None).await.ok();
    assert_eq!(list.stdout.lines().count(), 3, "a header and two endpoints: {list:?}");
    assert!(list.stdout.lines().any(|l| l.starts_with(&id) && l.contains("healthy") && l.contains("order.*")));
    assert_aligned(&list.stdout, &["ID", "STATUS", "URL", "EVENT TYPES", "DESCRIPTION"]);
    assert!(!list.stdout.contains("whsec_"), "a list never shows secrets: {list:?}");
    let listed = cli(&env, &["endpoints", "list", "-o", "json", "--limit", "1"], None).await.ok().json();
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert!(listed["next_cursor"].is_string(), "{listed}");
    let shop = cli(&env, &["endpoints", "list", "-o", "json", "--consumer", "shop-1"], None).await.ok().json();
    let shop: Vec<&str> = shop["data"].as_array().unwrap().iter().filter_map(|e| e["consumer"].as_str()).collect();
    assert_eq!(shop, vec!["shop-1"], "only the consumer's endpoint");

    let shown = cli(&env, &["endpoints", "show", &id], None).await.ok();
    assert!(shown.stdout.contains(&url) && shown.stdout.contains("CRM"), "{shown:?}");
    assert!(!shown.stdout.contains("secret") && !shown.stdout.contains(&secret), "{shown:?}");

    // A test event reaches this endpoint alone, signed.
    let tested = cli(&env, &["endpoints", "test", &id, "-o", "json"], None).await.ok().json();
    assert!(tested["delivery_id"].as_str().unwrap().starts_with("dlv_"), "{tested}");
    let got = rx.wait_for("/hook", 1, Duration::from_secs(20)).await;
    assert_eq!(got[0].json()["type"], "herald.test");
    assert!(got[0].header("webhook-signature").is_some());

    let updated = cli(
        &env,
        &["endpoints", "update", &id, "--description", "CRM v2", "--retry-schedule", "1s,2s", "-o", "json"],
        None,
    )
    .await
    .ok()
    .json();
    assert_eq!(updated["description"], "CRM v2");
    assert_eq!(updated["retry_schedule"], serde_json::json!(["1s", "2s"]));
    let cleared = cli(&env, &["endpoints", "update", &id, "--retry-schedule", "none", "-o", "json"], None).await.ok();
    assert!(cleared.json()["retry_schedule"].is_null(), "{cleared:?}");
    let nothing = cli(&env, &["endpoints", "update", &id], None).await;
    assert_eq!(nothing.code, 2, "nothing to change is a usage error: {nothing:?}");
    assert!(nothing.stderr.contains("nothing to change"), "{nothing:?}");
    // The hint names the endpoint's URL flag, not Herald's address (which would send the PATCH,
    // with the token, to the webhook's host).
    assert!(nothing.stderr.contains("--endpoint-url") && !nothing.stderr.contains("--url "), "{nothing:?}");
    let moved = cli(&env, &["endpoints", "update", &id, "--endpoint-url", &rx.url("/moved"), "-o", "json"], None)
        .await
        .ok()
        .json();
    assert_eq!(moved["url"], rx.url("/moved"));
    let back = cli(&env, &["endpoints", "update", &id, "--endpoint-url", &url, "-o", "json"], None).await.ok().json();
    assert_eq!(back["url"], url.as_str());
    // `--url` is no flag of the CLI's: which URL it meant cannot be guessed.
    let ambiguous = cli(&env, &["endpoints", "update", &id, "--url", &rx.url("/moved")], None).await;
    assert_eq!(ambiguous.code, 2, "{ambiguous:?}");
    // Herald's address as a flag.
    let token_only = [("HERALD_TOKEN", api.token.as_str())];
    let by_flag = cli(&token_only, &["endpoints", "show", &id, "--herald-url", &herald.base], None).await.ok();
    assert!(by_flag.stdout.contains("CRM"), "{by_flag:?}");

    let disabled = cli(&env, &["endpoints", "disable", &id, "-o", "json"], None).await.ok().json();
    assert_eq!(disabled["status"], "disabled");
    let enabled = cli(&env, &["endpoints", "enable", &id], None).await.ok();
    assert!(enabled.stdout.lines().any(|l| l.starts_with("status ") && l.ends_with("healthy")), "{enabled:?}");
    let rotated = cli(&env, &["endpoints", "rotate", &id, "-o", "json"], None).await.ok().json();
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret, "{rotated}");

    // Events: data from an argument, a file and standard input, each delivered as written.
    cli(&env, &["events", "send", "order.paid", "--id", "evt_arg", "--data", r#"{"n": 1,  "from":"arg"}"#], None)
        .await
        .ok();
    let file = std::env::temp_dir().join(format!("herald-client-{}.json", std::process::id()));
    std::fs::write(&file, "{\"n\": 2, \"from\": \"file\"}\n").unwrap();
    let from_file =
        cli(&env, &["events", "send", "order.paid", "--id", "evt_file", "--data-file", file.to_str().unwrap()], None)
            .await;
    std::fs::remove_file(&file).unwrap();
    let from_file = from_file.ok();
    assert!(from_file.stdout.lines().any(|l| l.starts_with("id ") && l.ends_with("evt_file")), "{from_file:?}");
    let from_stdin = cli(
        &env,
        &["events", "send", "order.shipped", "--id", "evt_stdin", "--data-file", "-", "-o", "json"],
        Some("[3, \"stdin\"]\n"),
    )
    .await
    .ok()
    .json();
    assert_eq!(from_stdin["id"], "evt_stdin");
    assert_eq!(from_stdin["duplicate"], false);
    let again = cli(&env, &["events", "send", "order.shipped", "--id", "evt_stdin", "-o", "json"], None).await.ok();
    assert_eq!(again.json()["duplicate"], true, "{again:?}");
    let hooks = rx.wait_for("/hook", 4, Duration::from_secs(20)).await;
    let body =
        |id: &str| hooks.iter().map(|r| String::from_utf8_lossy(&r.body).to_string()).find(|b| b.contains(id)).unwrap();
    assert!(body("evt_arg").ends_with(r#""data":{"n": 1,  "from":"arg"}}"#), "{}", body("evt_arg"));
    assert!(body("evt_file").ends_with(r#""data":{"n": 2, "from": "file"}}"#), "{}", body("evt_file"));
    assert!(body("evt_stdin").ends_with(r#""data":[3, "stdin"]}"#), "{}", body("evt_stdin"));

    api.wait_delivery("evt_arg", Some(&id), "delivered", Duration::from_secs(20)).await;
    let shown = cli(&env, &["events", "show", "evt_arg"], None).await.ok();
    assert!(shown.stdout.contains("order.paid") && shown.stdout.contains(r#"{"from":"arg","n":1}"#), "{shown:?}");
    let deliveries = shown.stdout.split("\n\n").nth(1).expect("a deliveries table");
    assert!(deliveries.lines().nth(1).is_some_and(|l| l.contains(&id) && l.contains("delivered")), "{shown:?}");
    assert_aligned(deliveries, &["DELIVERY", "ENDPOINT", "STATE", "ATTEMPTS"]);

    let listed = cli(&env, &["events", "list", "--type", "order.*", "-o", "json"], None).await.ok().json();
    let ids: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["evt_stdin", "evt_file", "evt_arg"], "newest first, test events not of the type: {listed}");
    let paid = cli(&env, &["events", "list", "--type", "order.paid", "--since", "1h"], None).await.ok();
    assert_eq!(paid.stdout.lines().count(), 3, "{paid:?}");
    assert_aligned(&paid.stdout, &["ID", "TYPE", "CREATED AT", "DELIVERIES"]);
    let future = cli(&env, &["events", "list", "--since", "2099-01-01T00:00:00Z"], None).await.ok();
    assert_eq!(future.stdout.trim(), "no events", "{future:?}");
    let failed = cli(&env, &["events", "list", "--failed", "-o", "json"], None).await.ok().json();
    assert_eq!(failed["data"], serde_json::json!([]), "nothing failed: {failed}");
    let attempts = cli(&env, &["events", "attempts", "evt_arg"], None).await.ok();
    assert!(attempts.stdout.lines().nth(1).is_some_and(|l| l.contains("200")), "{attempts:?}");

    // Ids that are one path segment however they are written: a `:` goes as it is.
    cli(&env, &["events", "send", "misc.thing", "--id", "order-42:paid"], None).await.ok();
    let colon = cli(&env, &["events", "show", "order-42:paid", "-o", "json"], None).await.ok().json();
    assert_eq!(colon["id"], "order-42:paid");
    // `.` and `..` are valid event ids, but no URL path carries them: a GET of `events/..` would
    // be a GET of /v1/events. Refused before anything is sent (exit 2), saying how to ask.
    for dots in [".", ".."] {
        cli(&env, &["events", "send", "misc.thing", "--id", dots], None).await.ok();
        for args in [["events", "show", dots], ["events", "attempts", dots]] {
            let refused = cli(&env, &args, None).await;
            assert_eq!(refused.code, 2, "{refused:?}");
            assert!(refused.stderr.contains(&format!("the id {dots:?} cannot be sent")), "{refused:?}");
            assert!(refused.stdout.is_empty(), "{refused:?}");
        }
        // What the message says: Herald answers it when a client sends `%2E` as written.
        let encoded = dots.replace('.', "%2E");
        let refused = cli(&env, &["events", "show", dots], None).await;
        assert!(refused.stderr.contains(&format!("{}/v1/events/{encoded}'", herald.base)), "{refused:?}");
        let addr = herald.base.trim_start_matches("http://");
        let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /v1/events/{encoded} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n",
            api.token
        );
        raw.write_all(request.as_bytes()).await.unwrap();
        let answer = String::from_utf8_lossy(&read_request(&mut raw).await).to_string();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(&format!(r#""id":"{dots}""#)), "{answer}");
    }

    // Bad local input: exit 2, nothing sent. A refusal of the API: exit 1 with its code.
    let bad = cli(&env, &["events", "send", "order.paid", "--data", "{nope"], None).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("not JSON"), "{bad:?}");
    let refused = cli(&env, &["events", "send", "not a type!", "--data", "{}"], None).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("invalid_event_type") && refused.stderr.contains("422"), "{refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");
    let missing = cli(&env, &["endpoints", "show", "ep_01JD3P0S1T2V3W4X5Y6Z7A8B9C"], None).await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.starts_with("error: not_found: "), "{missing:?}");

    let deleted = cli(&env, &["endpoints", "delete", &id], None).await.ok();
    assert_eq!(deleted.stdout.trim(), format!("deleted {id}"));
    assert_eq!(cli(&env, &["endpoints", "show", &id], None).await.code, 1);
}

#[tokio::test]
async fn deliveries_retry_and_a_replay_followed_to_its_end() {
    let (_db, herald, api) = herald_all(FAST).await;
    let rx = Receiver::start().await;
    let env = [("HERALD_URL", herald.base.as_str()), ("HERALD_TOKEN", api.token.as_str())];
    let (ep, _) = api.endpoint(serde_json::json!({"url": rx.url("/r"), "event_types": ["job.*"]})).await;
    for i in 0..3 {
        let id = format!("evt_job_{i}");
        cli(&env, &["events", "send", "job.done", "--id", &id, "--data", "{}"], None).await.ok();
    }
    let delivery = api.wait_delivery("evt_job_0", Some(&ep), "delivered", Duration::from_secs(20)).await;
    let dlv = delivery["id"].as_str().unwrap();
    rx.wait_for("/r", 3, Duration::from_secs(20)).await;

    let shown = cli(&env, &["deliveries", "show", dlv], None).await.ok();
    assert!(shown.stdout.lines().any(|l| l.starts_with("state ") && l.ends_with("delivered")), "{shown:?}");
    assert!(shown.stdout.lines().any(|l| l.starts_with("event_id ") && l.ends_with("evt_job_0")), "{shown:?}");
    let retried = cli(&env, &["deliveries", "retry", dlv, "-o", "json"], None).await.ok().json();
    assert_eq!(retried["state"], "pending");
    rx.wait_for("/r", 4, Duration::from_secs(20)).await;
    // Every delivery finished (a pending or delivering one is left alone by a replay).
    for i in 0..3 {
        api.wait_delivery(&format!("evt_job_{i}"), Some(&ep), "delivered", Duration::from_secs(20)).await;
    }

    // A replay of the last hour: a job, followed until done; without a terminal, plain lines.
    let replay = cli(&env, &["replay", &ep, "--since", "1h", "--interval", "100ms"], None).await;
    assert_eq!(replay.code, 0, "{replay:?}");
    assert!(replay.stdout.lines().any(|l| l.starts_with("state ") && l.ends_with("done")), "{replay:?}");
    assert!(replay.stdout.lines().any(|l| l.starts_with("events_matched ") && l.ends_with(" 3")), "{replay:?}");
    assert!(replay.stderr.contains("replay rpl_") && replay.stderr.contains("done 100%"), "{replay:?}");
    assert!(!replay.stderr.contains('\r'), "no progress bar without a terminal: {replay:?}");
    rx.wait_for("/r", 7, Duration::from_secs(20)).await;
    // For a script: the job's last JSON.
    let replay = cli(&env, &["replay", &ep, "--since", "1h", "-o", "json"], None).await.ok();
    let job = replay.json();
    assert_eq!(job["state"], "done", "{job}");
    assert!(job["id"].as_str().unwrap().starts_with("rpl_"), "{job}");
    let started = cli(&env, &["replay", &ep, "--since", "1h", "--no-wait", "-o", "json"], None).await.ok().json();
    assert_eq!(started["state"], "running", "{started}");
    eventually("the replay started without waiting to end", Duration::from_secs(20), || async {
        let (_, v) = api.get(&format!("/v1/replays/{}", started["id"].as_str().unwrap())).await;
        (v["state"] == "done").then_some(())
    })
    .await;

    // A window that ends before it starts: the API refuses, exit 1 with its code.
    let refused = cli(&env, &["replay", &ep, "--since", "1h", "--until", "2h"], None).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("invalid_window"), "{refused:?}");
    let usage = cli(&env, &["replay", &ep], None).await;
    assert_eq!(usage.code, 2, "--since is required: {usage:?}");
}

#[tokio::test]
async fn tokens_and_tenants_from_the_command_line() {
    let (db, herald, api) = herald_all(FAST).await;
    let env = [("HERALD_URL", herald.base.as_str()), ("HERALD_TOKEN", api.token.as_str())];

    let made = cli(&env, &["tokens", "create", "ci", "--scope", "publish", "--expires-in", "30d", "-o", "json"], None)
        .await
        .ok()
        .json();
    let (tok_id, token) = (made["id"].as_str().unwrap(), made["token"].as_str().unwrap());
    assert_eq!(made["scope"], "publish");
    assert!(made["expires_at"].is_string(), "{made}");
    let listed = cli(&env, &["tokens", "list"], None).await.ok();
    assert!(listed.stdout.lines().any(|l| l.starts_with(tok_id) && l.contains("publish")), "{listed:?}");
    assert!(!listed.stdout.contains(token), "never the token itself: {listed:?}");
    assert!(!listed.stdout.contains(&api.token) && !listed.stderr.contains(&api.token));
    assert_aligned(&listed.stdout, &["ID", "NAME", "SCOPE", "CREATED AT", "EXPIRES AT"]);

    // The new token publishes, and its scope refuses the rest: 403 is exit 1.
    let ci = [("HERALD_URL", herald.base.as_str()), ("HERALD_TOKEN", token)];
    cli(&ci, &["events", "send", "ci.ran", "--data", "{}"], None).await.ok();
    let forbidden = cli(&ci, &["tokens", "list"], None).await;
    assert_eq!(forbidden.code, 1, "{forbidden:?}");
    assert!(forbidden.stderr.contains("forbidden") && forbidden.stderr.contains("403"), "{forbidden:?}");
    let revoked = cli(&env, &["tokens", "revoke", tok_id], None).await.ok();
    assert_eq!(revoked.stdout.trim(), format!("revoked {tok_id}"));
    let refused = cli(&ci, &["events", "send", "ci.ran", "--data", "{}"], None).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("unauthorized"), "{refused:?}");
    assert!(!refused.stderr.contains(token), "the token is never printed: {refused:?}");

    // Tenants, with an operator token.
    let (ok, operator, err) = herald_output(&db, &["admin", "token", "create"]);
    assert!(ok, "{err}");
    let op = [("HERALD_URL", herald.base.as_str()), ("HERALD_TOKEN", operator.trim())];
    let created = cli(&op, &["tenants", "create", "globex", "-o", "json"], None).await.ok().json();
    let globex_token = created["token"]["token"].as_str().unwrap().to_string();
    let people = cli(&op, &["tenants", "create", "initech"], None).await.ok();
    assert!(people.stdout.lines().any(|l| l.starts_with("token ") && l.contains("hrld_initech.")), "{people:?}");
    let list = cli(&op, &["tenants", "list"], None).await.ok();
    let names: Vec<&str> = list.stdout.lines().skip(1).map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["acme", "globex", "initech"], "{list:?}");
    let shown = cli(&op, &["tenants", "show", "globex", "-o", "json"], None).await.ok().json();
    assert_eq!(shown["id"], "globex");
    assert!(shown["disabled_at"].is_null());

    let globex = [("HERALD_URL", herald.base.as_str()), ("HERALD_TOKEN", globex_token.as_str())];
    cli(&globex, &["endpoints", "list"], None).await.ok();
    let disabled = cli(&op, &["tenants", "disable", "globex", "-o", "json"], None).await.ok().json();
    assert!(disabled["disabled_at"].is_string(), "{disabled}");
    let locked = cli(&globex, &["endpoints", "list"], None).await;
    assert_eq!(locked.code, 1, "{locked:?}");
    assert!(locked.stderr.contains("tenant_disabled"), "{locked:?}");
    cli(&op, &["tenants", "enable", "globex"], None).await.ok();
    cli(&globex, &["endpoints", "list"], None).await.ok();
    let issued = cli(&op, &["tenants", "token", "globex", "reader", "--scope", "read", "-o", "json"], None).await.ok();
    assert_eq!(issued.json()["scope"], "read");

    // A tenant's token does not reach /v1/admin; an operator's reaches nothing else.
    let tenant_at_admin = cli(&env, &["tenants", "list"], None).await;
    assert_eq!(tenant_at_admin.code, 1, "{tenant_at_admin:?}");
    let operator_at_tenant = cli(&op, &["endpoints", "list"], None).await;
    assert_eq!(operator_at_tenant.code, 1, "{operator_at_tenant:?}");
}

#[tokio::test]
async fn a_token_or_url_that_fails_its_check_is_never_printed_and_nothing_is_sent() {
    let proxy = Receiver::start().await;
    let secret = "s3cret-b1t5";
    let bearer = format!("Bearer hrld_acme.{secret}");
    let spaced = format!("hrld_acme {secret}");
    let runs = [
        cli(&[("HERALD_URL", &proxy.base), ("HERALD_TOKEN", &bearer)], &["endpoints", "list"], None).await,
        cli(&[("HERALD_URL", &proxy.base)], &["endpoints", "list", "--token", &spaced], None).await,
        cli(&[("HERALD_URL", &proxy.base)], &["events", "--token", &bearer, "list"], None).await,
    ];
    for run in &runs {
        assert_eq!(run.code, 2, "{run:?}");
        assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret), "the token is never printed: {run:?}");
        assert!(run.stderr.contains("HERALD_TOKEN (or --token)"), "{run:?}");
    }
    assert!(runs[0].stderr.contains("Bearer"), "says what is wrong: {:?}", runs[0]);
    assert_eq!(proxy.count("/v1/endpoints") + proxy.count("/v1/events"), 0, "nothing sent");

    // A password in Herald's URL: refused (it would go as a second Authorization), not echoed.
    let with_password = proxy.base.replace("http://", "http://admin:hunter2@");
    let run = cli(&[("HERALD_URL", &with_password), ("HERALD_TOKEN", "hrld_acme.x")], &["events", "list"], None).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(!run.stderr.contains("hunter2") && run.stderr.contains("user name or password"), "{run:?}");
    let run =
        cli(&[("HERALD_URL", "http://admin:hunter2@[::1"), ("HERALD_TOKEN", "hrld_acme.x")], &["events", "list"], None)
            .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(!run.stderr.contains("hunter2"), "{run:?}");

    // A duration too long for the calendar: exit 2 with a message, no panic, nothing sent.
    let env = [("HERALD_URL", proxy.base.as_str()), ("HERALD_TOKEN", "hrld_acme.x")];
    for args in [
        &["events", "list", "--since", "1000000y"][..],
        &["events", "send", "a.b", "--deliver-at", "1000000y"],
        &["replay", "ep_1", "--since", "1000000y"],
    ] {
        let run = cli(&env, args, None).await;
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stderr.contains("out of range") && !run.stderr.contains("panicked"), "{run:?}");
    }
    assert_eq!(proxy.count("/v1/events") + proxy.count("/v1/endpoints/ep_1/replay"), 0, "nothing sent");
}

#[tokio::test]
async fn a_replay_that_no_process_runs_is_said_and_given_up_on() {
    // The API alone: no outbox-poller, so nothing runs replay jobs.
    let db = herald_testkit::TestDb::new().await;
    let token = db.tenant("acme").await;
    let herald = Herald::start(&db, "producer", FAST).await;
    let api = support::Api::new(&herald.base, &token);
    let (ep, _) = api.endpoint(serde_json::json!({"url": "http://127.0.0.1:9/never"})).await;
    let env = [("HERALD_URL", herald.base.as_str()), ("HERALD_TOKEN", token.as_str())];
    let args =
        ["replay", &ep, "--since", "1h", "--interval", "50ms", "--timeout", "1500ms", "--stalled-after", "300ms"];
    let started = std::time::Instant::now();
    let replay = cli(&env, &args, None).await;
    assert_eq!(replay.code, 3, "{replay:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "it gave up at --timeout: {:?}", started.elapsed());
    assert!(replay.stderr.contains("has not moved for"), "said while waiting: {replay:?}");
    assert!(replay.stderr.contains("still running after --timeout 1s500ms"), "{replay:?}");
    assert!(replay.stderr.contains("herald poller"), "{replay:?}");
    assert!(replay.stdout.lines().any(|l| l.starts_with("state ") && l.ends_with("running")), "{replay:?}");
    // Another replay of that endpoint is refused while this one runs (exit 1, the API's code).
    let again = cli(&env, &args, None).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("replay_running"), "{again:?}");
    // For a script, on another endpoint: the job as last seen (its id to follow up on), and exit 3.
    let (other, _) = api.endpoint(serde_json::json!({"url": "http://127.0.0.1:9/never-either"})).await;
    let args = [&["replay", other.as_str()][..], &args[2..], &["-o", "json"][..]].concat();
    let json = cli(&env, &args, None).await;
    assert_eq!(json.code, 3, "{json:?}");
    assert_eq!(json.json()["state"], "running", "{json:?}");
    assert!(json.json()["id"].as_str().is_some_and(|id| id.starts_with("rpl_")), "{json:?}");
}

#[tokio::test]
async fn exit_codes_when_herald_is_not_there_or_fails_and_completions() {
    // Nothing listens: exit 2, said plainly.
    let port = herald_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let env = [("HERALD_URL", url.as_str()), ("HERALD_TOKEN", "hrld_acme.not-a-real-token")];
    let down = cli(&env, &["endpoints", "list"], None).await;
    assert_eq!(down.code, 2, "{down:?}");
    assert!(down.stderr.contains("cannot reach Herald") && down.stderr.contains(&url), "{down:?}");
    assert!(!down.stderr.contains("not-a-real-token"), "the token is never printed: {down:?}");
    let no_token = cli(&[("HERALD_URL", url.as_str())], &["events", "list"], None).await;
    assert_eq!(no_token.code, 2, "{no_token:?}");
    assert!(no_token.stderr.contains("HERALD_TOKEN"), "{no_token:?}");
    let not_a_url = cli(&[("HERALD_URL", "127.0.0.1:8080"), ("HERALD_TOKEN", "t")], &["events", "list"], None).await;
    assert_eq!(not_a_url.code, 2, "{not_a_url:?}");

    // A proxy in front of Herald whose upstream is down answers 502: exit 3. One that
    // redirects elsewhere is the wrong URL: exit 2, and the token does not follow it.
    let proxy = Receiver::start().await;
    proxy.set("/v1/endpoints", Behaviour::Raw(502, b"<html>502 Bad Gateway</html>"));
    let at_proxy = [("HERALD_URL", proxy.base.as_str()), ("HERALD_TOKEN", "hrld_acme.x")];
    let failed = cli(&at_proxy, &["endpoints", "list"], None).await;
    assert_eq!(failed.code, 3, "{failed:?}");
    assert!(failed.stderr.contains("http_502") && failed.stderr.contains("Bad Gateway"), "{failed:?}");
    proxy.set("/v1/events", Behaviour::Redirect(proxy.url("/elsewhere")));
    let moved = cli(&at_proxy, &["events", "list"], None).await;
    assert_eq!(moved.code, 2, "{moved:?}");
    assert!(moved.stderr.contains("redirect"), "{moved:?}");
    assert_eq!(proxy.count("/elsewhere"), 0, "not followed");

    // A request that went out and got no answer in time may have been done: exit 3, not 2.
    proxy.set("/v1/events", Behaviour::Hang);
    let before = proxy.count("/v1/events");
    let hung = cli(&at_proxy, &["events", "send", "a.b", "--id", "evt_1", "--api-timeout", "300ms"], None).await;
    assert_eq!(hung.code, 3, "{hung:?}");
    assert!(hung.stderr.contains("did not answer within 300ms") && hung.stderr.contains("may have been done"));
    assert_eq!(proxy.count("/v1/events"), before + 1, "it was sent");
    // An answer whose body is cut short: the request was done or not, exit 3.
    let cut = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cut_url = format!("http://{}", cut.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut s, _) = cut.accept().await.unwrap();
        read_request(&mut s).await;
        let head = "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n";
        s.write_all(format!("{head}{{\"id\": \"evt_").as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let at_cut = [("HERALD_URL", cut_url.as_str()), ("HERALD_TOKEN", "hrld_acme.x")];
    let cut_short = cli(&at_cut, &["events", "send", "a.b", "--data", "{}"], None).await;
    server.await.unwrap();
    assert_eq!(cut_short.code, 3, "{cut_short:?}");
    assert!(cut_short.stderr.contains("body could not be read"), "{cut_short:?}");

    // The exit codes are in the help.
    let help = cli(&[], &["--help"], None).await.ok();
    for line in ["0  done", "1  the API refused", "2  bad usage", "3  Herald failed", "may have been done"] {
        assert!(help.stdout.contains(line), "{line:?} in {}", help.stdout);
    }
    let usage = cli(&[], &["endpoints", "frobnicate"], None).await;
    assert_eq!(usage.code, 2, "{usage:?}");

    // Completions for every shell asked for, naming the API commands.
    for (shell, marker) in [("bash", "complete -F _herald"), ("zsh", "#compdef herald"), ("fish", "complete -c herald")]
    {
        let script = cli(&[], &["completions", shell], None).await.ok();
        assert!(script.stdout.contains(marker), "{shell}: {}", &script.stdout[..200.min(script.stdout.len())]);
        for word in ["endpoints", "replay", "tenants", "links", "event-type"] {
            assert!(script.stdout.contains(word), "{shell} completes {word}");
        }
    }
    let bash = cli(&[], &["completions", "bash"], None).await.ok();
    let checked = std::process::Command::new("bash").arg("-n").stdin(std::process::Stdio::piped()).spawn();
    if let Ok(mut bash_n) = checked {
        use std::io::Write;
        bash_n.stdin.take().unwrap().write_all(bash.stdout.as_bytes()).unwrap();
        assert!(bash_n.wait().unwrap().success(), "the bash script parses");
    }
}

/// A field's value on a `field  value` line of an object printed for people.
#[track_caller]
fn field<'a>(run: &'a Run, name: &str) -> &'a str {
    let prefix = format!("{name} ");
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} line: {run:?}"))
}

#[tokio::test]
async fn links_events_for_a_consumer_and_a_deliverys_attempts() {
    let (_db, herald, api) = herald_all(FAST).await;
    let env = [("HERALD_URL", herald.base.as_str()), ("HERALD_TOKEN", api.token.as_str())];
    // What `POST /v1/sessions` (the page's exchange, with no token) answers for a link's URL.
    let exchange = |url: String| {
        let http = api.http.clone();
        let base = herald.base.clone();
        async move {
            let credential = url.split_once('#').expect("a fragment").1.to_string();
            let r = http
                .post(format!("{base}/v1/sessions"))
                .json(&serde_json::json!({ "credential": credential }))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };

    // A portal link, for people: the page's whole URL, said to be shown once.
    let made = cli(&env, &["links", "create", "portal", "--consumer", "shop-1", "--expires-in", "2h"], None).await.ok();
    let url = field(&made, "url").to_string();
    assert!(url.starts_with(&format!("{}/portal#hrldl_acme.", herald.base)), "{made:?}");
    assert_eq!(made.stdout.lines().next().map(|l| l.starts_with("url ")), Some(true), "the URL first: {made:?}");
    let id = field(&made, "id").to_string();
    assert!(id.starts_with("lnk_"), "{made:?}");
    assert_eq!(field(&made, "consumer"), "shop-1");
    assert!(field(&made, "expires_at").starts_with("20"), "{made:?}");
    assert!(made.stderr.contains("shown this once") && made.stderr.contains(&id), "{made:?}");
    assert_eq!(exchange(url.clone()).await, 201, "its fragment opens a session");

    // For a script: the API's JSON alone, its url relative to Herald's address.
    let inbox =
        cli(&env, &["links", "create", "inbox", "--responder", "Jane Doe", "--run-id", "run_42", "-o", "json"], None)
            .await
            .ok();
    let inbox_link = inbox.json();
    assert!(inbox_link["url"].as_str().unwrap().starts_with("/inbox#hrldl_acme."), "{inbox:?}");
    assert_eq!(inbox_link["responder"], "Jane Doe");
    assert_eq!(inbox_link["run_id"], "run_42");
    assert!(inbox.stderr.is_empty(), "{inbox:?}");

    // Listed newest first, never with their credentials.
    let list = cli(&env, &["links", "list"], None).await.ok();
    assert_eq!(list.stdout.lines().count(), 3, "a header and two links: {list:?}");
    let inbox_id = inbox_link["id"].as_str().unwrap();
    assert!(list.stdout.lines().nth(1).is_some_and(|l| l.starts_with(inbox_id) && l.contains("Jane Doe")));
    assert!(list.stdout.lines().nth(2).is_some_and(|l| l.starts_with(&id) && l.contains("shop-1")), "{list:?}");
    assert!(!list.stdout.contains("hrldl_") && !list.stderr.contains("hrldl_"), "no credential: {list:?}");
    assert_aligned(&list.stdout, &["ID", "KIND", "RESPONDER", "RUN ID", "CONSUMER", "EXPIRES AT", "REVOKED AT"]);
    let page = cli(&env, &["links", "list", "--limit", "1", "-o", "json"], None).await.ok().json();
    assert_eq!(page["data"][0]["id"], inbox_id);
    let next = page["next_cursor"].as_str().expect("a next page");
    let page = cli(&env, &["links", "list", "--cursor", next, "-o", "json"], None).await.ok().json();
    assert_eq!(page["data"][0]["id"], id.as_str(), "{page}");

    // Revoked: the URL opens nothing from then on.
    let revoked = cli(&env, &["links", "revoke", &id], None).await.ok();
    assert_eq!(revoked.stdout.trim(), format!("revoked {id}"));
    assert_eq!(exchange(url).await, 401);
    let listed = cli(&env, &["links", "list", "-o", "json"], None).await.ok().json();
    assert!(listed["data"][1]["revoked_at"].is_string(), "{listed}");
    let again = cli(&env, &["links", "revoke", &id], None).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("not_found"), "{again:?}");
    let no_responder = cli(&env, &["links", "create", "inbox"], None).await;
    assert_eq!(no_responder.code, 2, "an inbox link needs --responder: {no_responder:?}");
    let too_long = cli(&env, &["links", "create", "portal", "--expires-in", "90d"], None).await;
    assert_eq!(too_long.code, 1, "{too_long:?}");
    assert!(too_long.stderr.contains("invalid_expires_in"), "{too_long:?}");

    // An event for a consumer: stored with it, and shown.
    cli(&env, &["events", "send", "order.paid", "--id", "evt_shop", "--consumer", "shop-1"], None).await.ok();
    let (_, stored) = api.get("/v1/events/evt_shop").await;
    assert_eq!(stored["consumer"], "shop-1", "{stored}");
    let shown = cli(&env, &["events", "show", "evt_shop"], None).await.ok();
    assert_eq!(field(&shown, "consumer"), "shop-1");
    let bad = cli(&env, &["events", "send", "order.paid", "--consumer", "not a name!"], None).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("invalid_consumer") && bad.stderr.contains("422"), "{bad:?}");

    // A delivery's attempts, against a receiver that answers 500: each with its status, error
    // class and the receiver's answer.
    let rx = Receiver::start().await;
    rx.set("/down", Behaviour::Status(500, None));
    let (ep, _) = api.endpoint(serde_json::json!({"url": rx.url("/down"), "event_types": ["job.*"]})).await;
    cli(&env, &["events", "send", "job.failed", "--id", "evt_down"], None).await.ok();
    let delivery = api.wait_delivery("evt_down", Some(&ep), "failed", Duration::from_secs(30)).await;
    let dlv = delivery["id"].as_str().unwrap();
    let attempts = cli(&env, &["deliveries", "attempts", dlv], None).await.ok();
    let rows: Vec<&str> = attempts.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "the schedule's 3 attempts: {attempts:?}");
    for (n, row) in rows.iter().enumerate() {
        assert!(row.starts_with(&(n + 1).to_string()), "attempt numbers in order: {attempts:?}");
        assert!(row.contains(" 500 ") && row.contains("http_status"), "{attempts:?}");
        assert!(row.ends_with("answered 500 on purpose"), "the receiver's answer: {attempts:?}");
    }
    let headers = ["ATTEMPT", "STARTED AT", "STATUS CODE", "ERROR", "DURATION MS", "RESPONSE EXCERPT"];
    assert_aligned(&attempts.stdout, &headers);
    let page = cli(&env, &["deliveries", "attempts", dlv, "--limit", "2", "-o", "json"], None).await.ok().json();
    assert_eq!(page["data"].as_array().unwrap().len(), 2, "{page}");
    let next = page["next_cursor"].as_str().expect("a next page");
    let page = cli(&env, &["deliveries", "attempts", dlv, "--cursor", next, "-o", "json"], None).await.ok().json();
    assert_eq!(page["data"][0]["attempt"], 3, "{page}");
    assert_eq!(page["data"][0]["response_excerpt"], "answered 500 on purpose");
    let missing = cli(&env, &["deliveries", "attempts", "dlv_01JD3Q4ZKB7M1E2F3G4H5J6K7M"], None).await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.starts_with("error: not_found: "), "{missing:?}");
}
