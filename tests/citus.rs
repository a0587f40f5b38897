//! Herald on a real Citus cluster (a coordinator and two workers on 127.0.0.1, started by
//! `make test-citus`, which sets HERALD_CITUS_URL to the coordinator): distributed by
//! `herald migrate --citus`, then 20 tenants published to over HTTP and by `herald.publish` in
//! the caller's transaction, fanned out with type filters, claimed by two workers (one killed
//! on the way), an approval answered and its callback delivered. Ignored by `make test`.

mod support;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use herald_testkit::{eventually, Receiver};
use serde_json::json;
use support::{fast_with, Api, Herald, BIN};

const WAIT: Duration = Duration::from_secs(120);

fn herald(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).env("HERALD_DATABASE_URL", url).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test]
#[ignore = "needs a Citus cluster: make test-citus"]
async fn herald_runs_on_citus() {
    let url = std::env::var("HERALD_CITUS_URL").expect("HERALD_CITUS_URL: run `make test-citus`");
    let (ok, _, err) = herald(&url, &["migrate", "--citus"]);
    assert!(ok && err.contains("distributed by tenant on Citus: herald.tenants"), "{err}");
    let (ok, _, err) = herald(&url, &["migrate", "--citus"]);
    assert!(ok && err.contains("none (already distributed)"), "idempotent: {err}");
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    attempt_months_are_citus_partitions(&admin).await;

    // Long enough that no attempt outlasts it on a loaded machine (a duplicate must then come
    // from the killed worker or the stopped node), short enough that the killed worker's
    // deliveries are soon taken over.
    let env = fast_with(&[("HERALD_LEASE", "10s")]);
    let producer = Herald::start_url(&url, "producer", &env, true).await;
    let _poller = Herald::start_url(&url, "poller", &env, true).await;
    let mut w1 = Herald::start_url(&url, "worker", &env, true).await;
    let _w2 = Herald::start_url(&url, "worker", &env, true).await;
    let rx = Receiver::start().await;
    let tenants: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
    let mut apis = Vec::new();
    for t in &tenants {
        let (ok, token, err) = herald(&url, &["tenant", "create", t]);
        assert!(ok, "{err}");
        let api = Api::new(&producer.base, token.trim());
        api.endpoint(json!({"url": rx.url(&format!("/{t}/all"))})).await;
        api.endpoint(json!({"url": rx.url(&format!("/{t}/a")), "event_types": ["a.*"]})).await;
        apis.push(api);
    }
    let mut want: HashSet<(String, String)> = HashSet::new();
    let mut expect = |t: &str, id: String, kind: &str| {
        want.insert((format!("/{t}/all"), id.clone()));
        if kind.starts_with("a.") {
            want.insert((format!("/{t}/a"), id));
        }
    };
    // Over HTTP, with a worker killed half way.
    for round in 0..2 {
        for (t, api) in tenants.iter().zip(&apis) {
            for i in 0..5 {
                let kind = if i % 2 == 0 { "a.x" } else { "b.y" };
                let id = api.publish(json!({"id": format!("h{round}_{i}"), "type": kind, "data": {"i": i}})).await;
                expect(t, id, kind);
            }
        }
        if round == 0 {
            w1.signal("KILL");
            w1.wait_exit(Duration::from_secs(10)).await;
            w1 = Herald::start_url(&url, "worker", &env, true).await;
        }
    }
    // By SQL on the coordinator, in the caller's transaction: committed, and rolled back.
    let (caller, connection) =
        tokio_postgres::connect(&format!("{url}?application_name=caller"), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    for t in &tenants {
        caller
            .batch_execute(&format!(
                "BEGIN; SELECT herald.publish('{t}', 'a.sql', '{{}}'::jsonb, id => 'sql_kept'); COMMIT;"
            ))
            .await
            .unwrap();
        expect(t, "sql_kept".into(), "a.sql");
        caller
            .batch_execute(&format!(
                "BEGIN; SELECT herald.publish('{t}', 'a.sql', '{{}}'::jsonb, id => 'sql_rolled_back'); ROLLBACK;"
            ))
            .await
            .unwrap();
    }
    // An approval, answered, and its callback.
    let (s, v) = apis[0]
        .post(
            "/v1/approvals",
            json!({"call_id": "c1", "fn": "deploy", "kwargs": {"env": "prod"}, "callback_url": rx.url("/cb"),
                                      "callback_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = apis[0].post("/v1/approvals/c1/respond", json!({"approved": true, "comment": "ok"})).await;
    assert_eq!((s, v["status"]["state"].as_str()), (200, Some("approved")), "{v}");
    let cb = rx.wait_for("/cb", 1, WAIT).await;
    assert_eq!(cb[0].json()["type"], "approval_completed");
    let (s, v) = apis[0].get("/v1/approvals/c1").await;
    assert_eq!((s, v["status"]["comment"].as_str()), (200, Some("ok")), "{v}");
    // t00's approval events went to its endpoints too.
    for kind in ["approval_requested", "approval_completed"] {
        let n = rx.requests("/t00/all").iter().filter(|r| r.json()["type"] == kind).count();
        assert_eq!(n, 1, "{kind} at t00's endpoint");
    }

    // On t01: failures to `failed` and `endpoint.failing`, 410 disabling, rotation overlap, replay.
    let api = &apis[1];
    rx.set("/t01/fail", herald_testkit::Behaviour::Status(500, None));
    rx.set("/t01/gone", herald_testkit::Behaviour::Status(410, None));
    api.endpoint(json!({"url": rx.url("/t01/ops"), "event_types": ["endpoint.*"]})).await;
    let (fail, _) = api.endpoint(json!({"url": rx.url("/t01/fail"), "event_types": ["f"]})).await;
    let (gone, _) = api.endpoint(json!({"url": rx.url("/t01/gone"), "event_types": ["g"]})).await;
    let (rot, old) = api.endpoint(json!({"url": rx.url("/t01/rot"), "event_types": ["r"]})).await;
    let (_, rotated) = api.post(&format!("/v1/endpoints/{rot}/rotate-secret"), json!({})).await;
    let new = rotated["secret"].as_str().unwrap().to_string();
    let f = api.publish(json!({"id": "f1", "type": "f", "data": 1})).await;
    let g = api.publish(json!({"id": "g1", "type": "g", "data": 1})).await;
    api.publish(json!({"id": "r1", "type": "r", "data": 1})).await;
    for (id, kind) in [(&f, "f"), (&g, "g")] {
        expect("t01", id.clone(), kind);
    }
    expect("t01", "r1".into(), "r");
    api.wait_delivery(&f, Some(&fail), "failed", WAIT).await;
    api.wait_delivery(&g, Some(&gone), "failed", WAIT).await;
    let notes = wait_or_explain(&rx, "/t01/ops", 2, &admin, "t01").await;
    let mut kinds: Vec<String> = notes.iter().map(|r| r.json()["type"].as_str().unwrap().to_string()).collect();
    kinds.sort();
    assert_eq!(kinds, ["endpoint.disabled", "endpoint.failing"]);
    let r = &rx.wait_for("/t01/rot", 1, WAIT).await[0];
    for secret in [&old, &new] {
        standardwebhooks::Webhook::new(secret).unwrap().verify(&r.body, &r.headers).expect("both secrets sign");
    }
    // A replay is a job, which the poller runs (its statements are in the log check below).
    let (s, v) = api.post(&format!("/v1/endpoints/{rot}/replay"), json!({"since": "2000-01-01T00:00:00Z"})).await;
    assert_eq!((s, v["state"].as_str()), (202, Some("running")), "{v}");
    let replay = v["id"].as_str().unwrap().to_string();
    let done = eventually("the replay to be done", WAIT, || async {
        let (_, r) = api.get(&format!("/v1/replays/{replay}")).await;
        (r["state"] != "running").then_some(r)
    })
    .await;
    assert_eq!((done["state"].as_str(), done["deliveries_created"].as_i64()), (Some("done"), Some(1)), "{done}");
    rx.wait_for("/t01/rot", 2, WAIT).await;

    // Limits hold across the two workers: 10/s, and at most 2 at once.
    let api = &apis[2];
    rx.set("/t02/narrow", herald_testkit::Behaviour::Slow(Duration::from_millis(200)));
    api.endpoint(json!({"url": rx.url("/t02/limited"), "event_types": ["limited"], "rate_limit_per_s": 10})).await;
    api.endpoint(json!({"url": rx.url("/t02/narrow"), "event_types": ["narrow"], "max_in_flight": 2})).await;
    for (kind, n) in [("limited", 40), ("narrow", 12)] {
        for i in 0..n {
            let id = api.publish(json!({"id": format!("{kind}{i}"), "type": kind, "data": i})).await;
            expect("t02", id, kind);
        }
    }
    let got = rx.wait_for("/t02/limited", 40, WAIT).await;
    rx.wait_for("/t02/narrow", 12, WAIT).await;
    // 10/s with a burst of one second's worth: 40 take about 3 s; two workers each holding
    // their own 10/s would take about 1.5 s.
    let span = got.last().unwrap().at - got[0].at;
    assert!(span >= Duration::from_millis(2400), "the rate limit must hold across workers on Citus: 40 in {span:?}");
    let concurrent = rx.max_concurrent("/t02/narrow");
    assert!(concurrent <= 2, "max_in_flight 2 must hold across workers on Citus, saw {concurrent} at once");

    // A FIFO endpoint: one at a time, in publish order, across the two workers (its head's
    // claim is one more statement the log check below sees).
    api.endpoint(json!({"url": rx.url("/t02/fifo"), "event_types": ["fifo"], "ordering": "fifo"})).await;
    let mut order = Vec::new();
    for i in 0..15 {
        let id = api.publish(json!({"id": format!("fifo{i:02}"), "type": "fifo", "data": i})).await;
        expect("t02", id.clone(), "fifo");
        order.push(id);
    }
    let got: Vec<String> =
        rx.wait_for("/t02/fifo", 15, WAIT).await.iter().map(|r| r.header("webhook-id").unwrap().to_string()).collect();
    assert_eq!(got, order, "a FIFO endpoint on Citus gets its events in publish order");
    assert_eq!(rx.max_concurrent("/t02/fifo"), 1);

    // A later release's migration, on the distributed schema, by `herald migrate`'s own code.
    let done = herald_core::db::migrate_with(&url, &herald_core::clock::system(), false, later()).await.unwrap();
    assert_eq!(done.applied, ["V1000__later"]);
    let shards: i64 = admin
        .query_one("SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'herald.deliveries'::regclass", &[])
        .await
        .unwrap()
        .get(0);
    let indexed: i64 = admin
        .query_one(
            "SELECT sum(result::bigint)::bigint FROM run_command_on_workers(\
               $$SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'deliveries_later_%'$$)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexed, shards, "the new index on every shard of herald.deliveries");
    let api0 = &apis[0];
    let id = api0.publish(json!({"id": "after_ddl", "type": "a.ddl", "data": 1})).await;
    expect("t00", id, "a.ddl");

    // Every hot statement of the worker and the API's reads of deliveries runs on one node:
    // Citus plans it as one task (a statement that reached every shard would have 32).
    let now = chrono::Utc::now();
    let none: Vec<String> = Vec::new();
    let (ints, times): (Vec<i32>, Vec<chrono::DateTime<chrono::Utc>>) = (Vec::new(), Vec::new());
    let t = "t00";
    let claim = herald_core::deliveries::claim_open();
    let checks: Vec<(&str, &str, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>)> = vec![
        ("claim", &claim, vec![&t, &now, &100i64, &now, &"w", &64i32, &none, &ints, &0i64, &none, &times]),
        (
            "record",
            herald_core::deliveries::RECORD,
            vec![
                &t, &none, &now, &ints, &none, &times, &ints, &none, &"w", &none, &none, &none, &times, &ints, &none,
                &none, &none,
            ],
        ),
        ("give back", herald_core::deliveries::GIVE_BACK, vec![&t, &"d", &"w", &now, &1i32]),
        ("manual retry", herald_core::deliveries::RETRY, vec![&t, &"d", &now]),
        ("an event's deliveries", herald_core::deliveries::FOR_EVENT, vec![&t, &"e", &now]),
        ("due for a tenant", herald_core::deliveries::TENANT_HAS_DUE, vec![&t, &now]),
        ("in flight to a target", herald_core::deliveries::IN_FLIGHT, vec![&t, &"ep", &now]),
    ];
    for (name, sql, params) in checks {
        let plan: Vec<String> =
            admin.query(&format!("EXPLAIN {sql}"), &params).await.unwrap().iter().map(|r| r.get(0)).collect();
        let tasks: Vec<&str> = plan.iter().filter_map(|l| l.trim().strip_prefix("Task Count: ")).collect();
        assert!(
            !tasks.is_empty() && tasks.iter().all(|n| *n == "1"),
            "{name} is not routed to one node:\n{}",
            plan.join("\n")
        );
    }

    // A worker node stopped while events are published and delivered, started again: what its
    // tenants published is accepted once it is back (the client retries with the same id), and
    // everything is delivered.
    let node = std::env::var("HERALD_CITUS_NODE").expect("HERALD_CITUS_NODE: run `make test-citus`");
    let (dir, port) = node.split_once(' ').unwrap();
    let pg = |body: &str| {
        let ok = Command::new("bash")
            .arg("-c")
            .arg(format!(". '{}/../../scripts/pg.sh' && pg_find_bin && {body}", env!("CARGO_MANIFEST_DIR")))
            .status()
            .unwrap()
            .success();
        assert!(ok, "{body}");
    };
    pg(&format!("pg_stop '{dir}' fast"));
    let mut waiting = Vec::new();
    for (t, api) in tenants.iter().zip(&apis) {
        let id = format!("node_down_{t}");
        let (s, _) = api.post("/v1/events", json!({"id": id, "type": "a.node", "data": 1})).await;
        if s == 202 {
            expect(t, id, "a.node");
        } else {
            assert_eq!(s, 503, "a tenant on the stopped node is told to retry");
            waiting.push((t.clone(), api, id));
        }
    }
    assert!(!waiting.is_empty(), "no tenant lives on the stopped node: the test proves nothing");
    let on_stopped_node: HashSet<String> = waiting.iter().map(|(t, _, _)| t.clone()).collect();
    // The tenants on the running node go on while the other is down (one node's outage stops
    // only its own tenants): what becomes due with no notification to wake anyone (here a
    // delayed publish; a retry is the same) is found by the poll, which asks every tenant.
    let up = tenants.iter().position(|t| !on_stopped_node.contains(t)).expect("a tenant on the running node");
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let id = apis[up].publish(json!({"id": "node_down_later", "type": "b.later", "deliver_at": soon, "data": 1})).await;
    expect(&tenants[up], id.clone(), "b.later");
    let path = format!("/{}/all", tenants[up]);
    eventually("a delayed event delivered while another node is down", WAIT, || async {
        rx.requests(&path).iter().any(|r| r.header("webhook-id") == Some(id.as_str())).then_some(())
    })
    .await;
    pg(&format!("pg_start '{dir}' {port} -c shared_preload_libraries=citus -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"));
    for (t, api, id) in waiting {
        api.publish_when_accepted(json!({"id": id, "type": "a.node", "data": 1}), WAIT).await;
        expect(&t, id, "a.node");
    }

    let got = || -> Vec<(String, String)> {
        tenants
            .iter()
            .flat_map(|t| [format!("/{t}/all"), format!("/{t}/a")])
            .flat_map(|p| {
                rx.requests(&p).into_iter().map(|r| (r.path.clone(), r.header("webhook-id").unwrap().to_string()))
            })
            .filter(|(_, id)| !id.starts_with("evt_"))
            .collect()
    };
    eventually("every event at every endpoint it selects, on Citus", WAIT, || async {
        let seen: HashSet<_> = got().into_iter().collect();
        want.is_subset(&seen).then_some(())
    })
    .await;
    let all = got();
    let seen: HashSet<_> = all.iter().cloned().collect();
    assert!(
        seen.is_subset(&want),
        "arrived but not published (a rolled-back publish?): {:?}",
        seen.difference(&want).collect::<Vec<_>>()
    );
    // A delivery sent twice is one whose lease expired: one the killed worker held (published
    // before the kill) or one whose result could not be written while its node was stopped.
    let mut counted: HashSet<&(String, String)> = HashSet::new();
    for sent in &all {
        let tenant = sent.0.split('/').nth(1).unwrap_or_default();
        assert!(
            counted.insert(sent) || sent.1.starts_with("h0_") || on_stopped_node.contains(tenant),
            "sent twice with no lease expired: {sent:?}"
        );
    }
    eprintln!(
        "citus: 20 tenants, {} deliveries, {} requests, {} duplicates (leases expired)",
        want.len(),
        all.len(),
        all.len() - seen.len()
    );

    every_statement_ran_on_one_node(&admin).await;

    // The way back: every table onto the coordinator as a plain one, rows included, while
    // Herald runs; then it goes on delivering, and migrates as a single PostgreSQL.
    let (ok, _, err) = herald(&url, &["migrate", "--undistribute"]);
    assert!(ok && err.contains("back on the coordinator as plain tables: herald.events"), "{err}");
    let left: i64 = admin.query_one("SELECT count(*) FROM pg_dist_partition", &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "nothing distributed any more");
    let (fresh, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let placed: Option<String> =
        fresh.query_one("SELECT current_setting('herald.citus', true)", &[]).await.unwrap().get(0);
    assert!(
        placed.as_deref().is_none_or(str::is_empty),
        "herald.publish takes its single-statement form again: {placed:?}"
    );
    let kept: i64 = admin.query_one("SELECT count(*) FROM herald.events", &[]).await.unwrap().get(0);
    assert!(kept >= want.len() as i64 / 2, "the events came back with their tables: {kept}");
    let id = apis[0].publish_when_accepted(json!({"id": "back", "type": "a.back", "data": 1}), WAIT).await;
    eventually("an event published after the way back delivered", WAIT, || async {
        rx.requests("/t00/all").iter().any(|r| r.header("webhook-id") == Some(id.as_str())).then_some(())
    })
    .await;
    let done = herald_core::db::migrate_with(&url, &herald_core::clock::system(), false, later()).await.unwrap();
    assert!(done.applied.is_empty() && done.distributed.is_empty(), "{done:?}");
    assert!(!herald_core::citus::distributed(&admin).await.unwrap(), "a single PostgreSQL again");
}

/// `rx.wait_for`, but a timeout also shows what the database holds of `tenant`'s `endpoint.*`
/// events, its outbox queue, and the deliveries and attempts to the endpoint behind `path`.
async fn wait_or_explain(
    rx: &Receiver,
    path: &str,
    n: usize,
    admin: &tokio_postgres::Client,
    tenant: &str,
) -> Vec<herald_testkit::Received> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = rx.requests(path);
        if got.len() >= n {
            return got;
        }
        if std::time::Instant::now() > deadline {
            let mut said = vec![format!(
                "{} of {n} requests to {path}: {:?}",
                got.len(),
                got.iter().map(|r| r.describe()).collect::<Vec<_>>()
            )];
            for sql in [
                "SELECT 'event', event_id, event_type, created_at::text FROM herald.events \
                  WHERE tenant_id = $1 AND event_type LIKE 'endpoint.%'",
                "SELECT 'pending', event_id, seq::text, '' FROM herald.pending_events WHERE tenant_id = $1",
                "SELECT 'set aside', event_id, error, failed_at::text FROM herald.fanout_failures WHERE tenant_id = $1",
                "SELECT 'delivery', d.delivery_id, \
                        d.state || ' attempts ' || d.attempt_count || ' lost ' || d.lost_leases \
                          || ' owner ' || coalesce(d.lease_owner, '-'), \
                        'next ' || d.next_attempt_at || ' lease ' || coalesce(d.lease_until::text, '-') \
                          || ' error ' || coalesce(d.last_error, '-') \
                   FROM herald.deliveries d \
                   JOIN herald.endpoints e ON e.tenant_id = d.tenant_id AND e.endpoint_id = d.endpoint_id \
                  WHERE d.tenant_id = $1 AND e.url LIKE '%' || $2",
                "SELECT 'endpoint', endpoint_id, status, url FROM herald.endpoints WHERE tenant_id = $1",
                // A stall shows here: what each of Herald's sessions runs or waits for, and who blocks whom.
                "SELECT 'session ' || nodeid || '/' || pid, application_name || ' ' || coalesce(state, '') || ' since ' \
                          || coalesce(state_change::text, ''), \
                        coalesce(wait_event_type, '') || ':' || coalesce(wait_event, ''), \
                        left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 300) \
                   FROM citus_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
                    AND state IS DISTINCT FROM 'idle'",
                "SELECT 'lock wait', waiting_gpid::text || ' waits for ' || blocking_gpid::text, \
                        left(current_statement_in_blocking_process, 200), left(blocked_statement, 200) FROM citus_lock_waits",
            ] {
                let both: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&tenant, &path];
                let params = &both[..[sql.contains("$1"), sql.contains("$2")].iter().filter(|b| **b).count()];
                match admin.query(sql, params).await {
                    Ok(rows) => said.extend(rows.iter().map(|r| {
                        (0..4)
                            .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(" | ")
                    })),
                    Err(e) => said.push(format!("{sql}: {e}")),
                }
            }
            panic!("timed out after {WAIT:?} waiting for {n} requests to {path}:\n{}", said.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A later release's migration: several statements in one file (Citus refuses some of them
/// sent together), a column, an index, a function whose body holds a `;`.
fn later() -> Vec<herald_core::db::Migration> {
    let sql = "ALTER TABLE herald.deliveries ADD COLUMN later_column integer;\n\
               CREATE INDEX deliveries_later ON herald.deliveries (tenant_id, later_column);\n\
               -- a comment; with a semicolon\n\
               CREATE FUNCTION herald.later(n integer) RETURNS integer LANGUAGE sql AS $$ SELECT n + 1; $$;\n\
               COMMENT ON COLUMN herald.deliveries.later_column IS 'later; really';\n";
    vec![herald_core::db::Migration::unapplied("V1000__later", sql).unwrap()]
}

/// `herald migrate --citus` left the attempt months to Citus's time-partition management, and
/// `herald.ensure_partitions` makes later months with it, each distributed like its parent.
async fn attempt_months_are_citus_partitions(admin: &tokio_postgres::Client) {
    let months = |c: &'static str| async move {
        let sql = format!(
            "SELECT count(*) FROM time_partitions tp JOIN pg_dist_partition d ON d.logicalrelid = tp.partition \
              WHERE tp.parent_table = 'herald.attempts'::regclass AND tp.from_value <> '' {c}"
        );
        admin.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0)
    };
    assert_eq!(months("").await, 3, "this month and the next two");
    admin.batch_execute("SELECT herald.ensure_partitions(now() + interval '6 months')").await.unwrap();
    assert_eq!(months("").await, 6, "and three more from six months ahead");
    let far = months("AND tp.from_value::timestamptz > now() + interval '5 months'").await;
    assert!(far >= 2, "{far} months beyond five from now");
}

/// What every statement of Herald's processes (application_name `herald`) and of the caller
/// publishing in its own transaction was sent to, read from the coordinator's log (make
/// test-citus starts it with citus.log_remote_commands and log_statement = all): each statement
/// reached shards of one tenant's group on one node, never every shard, and no transaction
/// wrote on two nodes (its COMMIT would go to both).
async fn every_statement_ran_on_one_node(admin: &tokio_postgres::Client) {
    let path = std::env::var("HERALD_CITUS_LOG").expect("HERALD_CITUS_LOG: run `make test-citus`");
    let log = std::fs::read_to_string(path).unwrap();
    // Shard id -> the hash range it holds (colocated shards of one group share it).
    let groups: std::collections::HashMap<i64, String> = admin
        .query("SELECT shardid, coalesce(shardminvalue, 'reference') FROM pg_dist_shard", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    struct Run {
        pid: String,
        sql: String,
        groups: HashSet<String>,
        nodes: HashSet<String>,
    }
    let mut runs: Vec<Run> = Vec::new();
    let mut current: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut local: HashSet<String> = HashSet::new();
    // One entry a record: a line that does not start with the prefix continues the one before.
    let mut records: Vec<String> = Vec::new();
    for line in log.lines() {
        match records.last_mut() {
            Some(last) if !line.starts_with("@@") => {
                last.push('\n');
                last.push_str(line);
            }
            _ => records.push(line.to_string()),
        }
    }
    for line in &records {
        let Some(rest) = line.strip_prefix("@@") else { continue };
        let Some((who, message)) = rest.split_once("@@ ") else { continue };
        let Some((pid, app)) = who.split_once(' ') else { continue };
        if app != "herald" && app != "caller" {
            continue;
        }
        // Context of the line before: says nothing of its own.
        if message.starts_with("CONTEXT:  ") {
            continue;
        }
        let was_local = local.remove(pid);
        if let Some(sql) = message
            .strip_prefix("LOG:  statement: ")
            .or_else(|| message.strip_prefix("LOG:  execute ").and_then(|m| m.split_once(": ")).map(|(_, sql)| sql))
        {
            // A statement Citus runs on the coordinator itself is logged too: part of the last.
            if !was_local {
                runs.push(Run {
                    pid: pid.to_string(),
                    sql: sql.to_string(),
                    groups: HashSet::new(),
                    nodes: HashSet::new(),
                });
                current.insert(pid.to_string(), runs.len() - 1);
            }
        } else if message.starts_with("NOTICE:  executing the command locally") {
            local.insert(pid.to_string());
        } else if let Some(command) = message.strip_prefix("NOTICE:  issuing ") {
            let Some(&i) = current.get(pid) else { continue };
            for (at, _) in command.match_indices("herald.") {
                let name: String =
                    command[at..].chars().skip(7).take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let shard = name.rsplit_once('_').and_then(|(_, n)| n.parse::<i64>().ok());
                if let Some(group) = shard.and_then(|id| groups.get(&id)).filter(|g| *g != "reference") {
                    runs[i].groups.insert(group.clone());
                }
            }
        } else if let Some(detail) = message.strip_prefix("DETAIL:  on server ") {
            if let Some(&i) = current.get(pid) {
                runs[i].nodes.insert(detail.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    }
    // Statements that must reach every tenant, by design and rarely (docs/scaling.md): dropping
    // the attempt months past retention (every retention interval, one poller).
    let every_tenant = |sql: &str| sql.contains("herald.drop_old_attempts(");
    let wide: Vec<String> = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| (r.groups.len() > 1 || r.nodes.len() > 1) && !every_tenant(&r.sql))
        .map(|(i, r)| {
            // With what came before it in its session (a COMMIT's transaction).
            let before: Vec<String> = runs[..i]
                .iter()
                .rev()
                .filter(|b| b.pid == r.pid)
                .take(6)
                .map(|b| format!("    before, on {:?}: {}", b.nodes, b.sql.chars().take(160).collect::<String>()))
                .collect();
            format!("{} shard groups, {} nodes: {}\n{}", r.groups.len(), r.nodes.len(), r.sql, before.join("\n"))
        })
        .collect();
    assert!(wide.is_empty(), "statements that reached more than one node or shard group:\n{}", wide.join("\n"));
    // The check saw the hot path: publishing (HTTP's group commit, `herald.publish`, an
    // operation), fan-out, claims and results.
    let claim = herald_core::deliveries::claim_open();
    for needle in [
        "INSERT INTO herald.events",
        "herald.publish(",
        "herald.create_operation(",
        "herald.answer_operation(",
        "INSERT INTO herald.deliveries",
        claim.as_str(),
        herald_core::deliveries::RECORD,
    ] {
        assert!(runs.iter().any(|r| r.sql.contains(needle) && !r.nodes.is_empty()), "no statement seen with {needle}");
    }
    let distinct: HashSet<&str> = runs.iter().map(|r| r.sql.as_str()).collect();
    eprintln!(
        "citus: {} statements run by Herald and the caller ({} distinct), each on one node",
        runs.len(),
        distinct.len()
    );
}
