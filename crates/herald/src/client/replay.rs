//! `herald replay`: a time window's events delivered to an endpoint again. The API makes it a
//! background job (202 `{id: "rpl_...", state: "running"}`); this follows the job with
//! `GET /v1/replays/{id}` until it ends, with a progress bar on a terminal and plain lines
//! otherwise. A Herald that still replays within the request (200 `{"scheduled": N}`) is
//! understood too.
//!
//! The job is run by a process of the outbox-poller's (`herald poller`, `herald all`); with none
//! alive it stays `running` without moving. The CLI says so when the job has not moved for
//! `--stalled-after`, and stops waiting after `--timeout` (exit 3: the job goes on in Herald).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use super::http::{Answer, Api, Failure, Result};
use super::{output, time_or_ago, Conn, Output};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The endpoint's id (ep_...).
    endpoint_id: String,
    /// Start of the window, included: an RFC 3339 time, or a duration ago (2h, 7d).
    #[arg(long, value_name = "TIME")]
    since: String,
    /// End of the window, excluded (default: now): an RFC 3339 time, or a duration ago.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Print the job as it starts and exit, without following it.
    #[arg(long)]
    no_wait: bool,
    /// How often to ask for the job's progress.
    #[arg(long, default_value = "500ms", value_name = "DURATION", value_parser = herald_core::config::parse_duration)]
    interval: Duration,
    /// Stop waiting for the job after this long: exit 3, the job goes on in Herald
    /// (`GET /v1/replays/{id}` follows it).
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = herald_core::config::parse_duration)]
    timeout: Duration,
    /// Say so when the job has not moved (its `updated_at`, `reached` and counts) for this long:
    /// no process that runs replays (`herald poller`, `herald all`) may be alive. A job whose
    /// runner died is taken up again after its lease (60 s).
    #[arg(long, default_value = "1m", value_name = "DURATION", value_parser = herald_core::config::parse_duration)]
    stalled_after: Duration,
    // Last: its help heading would otherwise take the flags after it.
    #[command(flatten)]
    conn: Conn,
}

/// How long the job may stay out of sight (Herald unreachable or failing) before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

const FIELDS: &[&str] = &[
    "id",
    "endpoint_id",
    "state",
    "error",
    "since",
    "until",
    "reached",
    "events_scanned",
    "events_matched",
    "deliveries_created",
    "created_at",
    "finished_at",
];

pub async fn run(a: ReplayArgs) -> Result<()> {
    let api = Api::new(&a.conn)?;
    let out = api.output;
    let mut body = json!({ "since": time_or_ago("--since", &a.since)? });
    if let Some(until) = &a.until {
        body["until"] = Value::String(time_or_ago("--until", until)?);
    }
    let started = api.post_json(&["endpoints", &a.endpoint_id, "replay"], &body).await?;
    if started.json.get("state").is_none() {
        // A Herald that replays within the request.
        let Some(n) = started.json["scheduled"].as_i64() else {
            return Err(unexpected(&started));
        };
        match out {
            Output::Json => output::json(&started),
            Output::Table => outln!("replayed: {n} deliveries made due"),
        }
        return Ok(());
    }
    let Some(id) = started.json["id"].as_str().map(String::from) else { return Err(unexpected(&started)) };
    if a.no_wait {
        output::object(&started, out, FIELDS);
        if out == Output::Table {
            eprintln!("running in the background; its progress: GET /v1/replays/{id}");
        }
        return Ok(());
    }
    let limits = Limits { interval: a.interval, timeout: a.timeout, stalled_after: a.stalled_after };
    let done = match follow(&api, &id, started, limits).await? {
        Followed::Ended(done) => done,
        Followed::TimedOut { job, stalled_since } => {
            // The job as last seen, for a script to follow up on; then why the CLI stopped.
            output::object(&job, out, FIELDS);
            let stalled = match stalled_since {
                Some(at) => format!(
                    ", and has not moved since {at}: is a process that runs replays (`herald poller` or \
                     `herald all`) running against this database?"
                ),
                None => ".".to_string(),
            };
            return Err(Failure::Uncertain(format!(
                "replay {id} is still running after --timeout {}{stalled} It goes on in Herald: follow it \
                 with GET /v1/replays/{id}",
                herald_core::validate::format_duration(a.timeout)
            )));
        }
    };
    output::object(&done, out, FIELDS);
    match done.json["state"].as_str() {
        Some("done") => Ok(()),
        Some("failed") => Err(Failure::JobFailed(format!(
            "replay {id} failed: {}",
            done.json["error"].as_str().unwrap_or("(no reason given)")
        ))),
        _ => Err(unexpected(&done)),
    }
}

fn unexpected(answer: &Answer) -> Failure {
    let excerpt: String = answer.text.chars().take(200).collect();
    Failure::Server {
        status: Some(answer.status),
        code: "unexpected_answer".into(),
        message: format!("the replay's answer is not one Herald gives: {excerpt}"),
    }
}

/// How `follow` asks, and how long it waits.
#[derive(Debug, Clone, Copy)]
struct Limits {
    interval: Duration,
    timeout: Duration,
    stalled_after: Duration,
}

/// How following a job ended.
enum Followed {
    /// It is no longer `running`: its last state.
    Ended(Answer),
    /// `--timeout` ran out: the job as last seen, and its `updated_at` when it had not moved for
    /// `--stalled-after` by then.
    TimedOut { job: Answer, stalled_since: Option<String> },
}

/// What moves while a job runs: when it last moved, how far, and its counts.
fn mark(job: &Value) -> [Value; 5] {
    ["state", "updated_at", "reached", "events_scanned", "deliveries_created"].map(|k| job[k].clone())
}

/// Asks for the job until it is no longer `running`, or `limits.timeout` has passed.
async fn follow(api: &Api, id: &str, mut job: Answer, limits: Limits) -> Result<Followed> {
    let mut progress = Progress::new(id);
    let mut trouble: Option<Instant> = None;
    let started = Instant::now();
    let (mut seen, mut moved_at, mut stalled) = (mark(&job.json), Instant::now(), false);
    // A short job ends in a moment: ask soon, then every `interval`.
    let interval = limits.interval.max(Duration::from_millis(20));
    let mut wait = interval.min(Duration::from_millis(50));
    loop {
        progress.show(&job.json);
        if job.json["state"] != "running" {
            progress.end();
            return Ok(Followed::Ended(job));
        }
        if mark(&job.json) != seen {
            (seen, moved_at) = (mark(&job.json), Instant::now());
            if stalled {
                stalled = false;
                progress.note(&format!("replay {id} moves again"));
            }
        } else if !stalled && moved_at.elapsed() >= limits.stalled_after {
            stalled = true;
            progress.note(&format!(
                "replay {id} has not moved for {} (last at {}): is a process that runs replays (`herald \
                 poller` or `herald all`) running? Waiting up to --timeout {}",
                herald_core::validate::format_duration(round(moved_at.elapsed())),
                output::cell(&job.json["updated_at"]),
                herald_core::validate::format_duration(limits.timeout)
            ));
        }
        let Some(left) = limits.timeout.checked_sub(started.elapsed()).filter(|l| !l.is_zero()) else {
            progress.end();
            let stalled_since = stalled.then(|| output::cell(&job.json["updated_at"]));
            return Ok(Followed::TimedOut { job, stalled_since });
        };
        tokio::time::sleep(wait.min(left)).await;
        wait = (wait * 2).min(interval);
        if started.elapsed() >= limits.timeout {
            continue;
        }
        match api.get(&["replays", id], &[]).await {
            Ok(answer) => {
                trouble = None;
                job = answer;
            }
            // Herald restarting, or a moment's failure: the job goes on without us; ask again.
            Err(e @ (Failure::Unreachable(_) | Failure::Server { .. } | Failure::Uncertain(_))) => {
                if trouble.get_or_insert_with(Instant::now).elapsed() > PATIENCE {
                    progress.end();
                    // The job was made: whatever stopped the asking, this is not "nothing done".
                    return Err(Failure::Uncertain(format!(
                        "replay {id} was started, but its progress could not be read for {}: {}. It may go \
                         on in Herald: follow it with GET /v1/replays/{id}",
                        herald_core::validate::format_duration(PATIENCE),
                        e.report().trim_start_matches("error: ")
                    )));
                }
                progress.note(&format!("{} (asking again)", e.report()));
            }
            Err(e) => {
                progress.end();
                return Err(e);
            }
        }
    }
}

/// A duration to the second, for people.
fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().max(1))
}

/// How far the job is: a bar on a terminal, else a line now and then on standard error.
enum Progress {
    Bar(ProgressBar),
    Lines { id: String, said: String, at: Option<Instant> },
}

/// The window's length and how much of it is done, in milliseconds, when the job says.
fn fraction(job: &Value) -> Option<(u64, u64)> {
    let time = |k: &str| job[k].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    let (since, until, reached) = (time("since")?, time("until")?, time("reached")?);
    let total = (until - since).num_milliseconds().max(1) as u64;
    let done = (reached - since).num_milliseconds().clamp(0, total as i64) as u64;
    Some((total, done))
}

fn counts(job: &Value) -> String {
    let n = |k: &str| job[k].as_i64().unwrap_or(0);
    format!(
        "{} events scanned, {} matched, {} deliveries created or made due",
        n("events_scanned"),
        n("events_matched"),
        n("deliveries_created")
    )
}

impl Progress {
    fn new(id: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines { id: id.to_string(), said: String::new(), at: None };
        }
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template("{spinner} replay {prefix} [{bar:30}] {percent:>3}% {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(id.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress::Bar(bar)
    }

    fn show(&mut self, job: &Value) {
        match self {
            Progress::Bar(bar) => {
                if let Some((total, done)) = fraction(job) {
                    bar.set_length(total);
                    bar.set_position(done);
                }
                bar.set_message(counts(job));
            }
            Progress::Lines { id, said, at } => {
                let state = job["state"].as_str().unwrap_or("?");
                let percent = fraction(job).map(|(t, d)| format!(" {}%", d * 100 / t)).unwrap_or_default();
                let line = format!("replay {id}: {state}{percent}, {}", counts(job));
                // A line when something changed, at most one a second (the last always).
                let due = at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) || state != "running";
                if line != *said && due {
                    eprintln!("{line}");
                    *said = line;
                    *at = Some(Instant::now());
                }
            }
        }
    }

    fn note(&self, what: &str) {
        match self {
            Progress::Bar(bar) => bar.println(what),
            Progress::Lines { .. } => eprintln!("{what}"),
        }
    }

    fn end(&mut self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
