//! The Herald binary's library: the command line (contract section 7) and the wiring of
//! components into processes. `herald all` runs the API, the outbox-poller and the
//! delivery-worker in one process; each also runs alone, and every process serves `/healthz`,
//! `/readyz` and `/metrics`.
//!
//! Must not: hold business rules. Those live in the component crates.

mod cli;
mod client;
mod otel;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use backon::{ExponentialBuilder, Retryable};
use deadpool_postgres::Pool;
use herald_core::clock::{self, SharedClock};
use herald_core::db;
use herald_core::metrics::Metrics;
use herald_delivery_worker::{Worker, WorkerConfig};
use herald_outbox_poller::{Poller, PollerConfig};
use herald_producer::api::{self, AppState};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use cli::Cli;
use cli::{AdminCommand, ApiArgs, Command, DeliveryArgs, PollArgs, TargetArgs, TenantCommand};

/// Logs to standard error at the level `HERALD_LOG` says (`info`); with `HERALD_LOG_FORMAT=json`,
/// one JSON object a line (timestamp, level, target, message, fields), for a log collector.
/// Traces go to an OTLP receiver when the environment names one (`otel`). Must be called from
/// within the runtime; the answer is kept until the end, then shut down (it sends what is left).
pub fn init_logging() -> Telemetry {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let format = std::env::var("HERALD_LOG_FORMAT");
    let fmt = match format.as_deref() {
        Ok("json") => fmt.json().with_current_span(false).with_span_list(false).with_filter(filter).boxed(),
        // Colours only on a terminal: logs sent to a file or a collector stay plain text.
        _ => fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).with_filter(filter).boxed(),
    };
    let (provider, trouble) = match otel::wanted().then(otel::provider).transpose() {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    // Herald's own spans only, whatever HERALD_LOG says; log lines do not become span events.
    let spans = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("herald"))
            .with_filter(tracing_subscriber::filter::filter_fn(|m| m.is_span() && m.name().starts_with("herald.")))
    });
    tracing_subscriber::registry().with(fmt).with(spans).init();
    if let Some(v) = format.ok().filter(|v| v != "text" && v != "json") {
        tracing::warn!(value = v, "HERALD_LOG_FORMAT is text or json; logging text");
    }
    if let Some(e) = trouble {
        tracing::error!(error = %e, "OpenTelemetry traces are off: the exporter could not be made");
    }
    if provider.is_some() {
        herald_core::trace::turn_on();
        tracing::info!("OpenTelemetry traces on (OTLP over HTTP)");
    }
    Telemetry(provider)
}

/// What sends traces, while the process runs.
pub struct Telemetry(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Telemetry {
    /// Sends the spans not sent yet, and stops.
    pub async fn shutdown(self) {
        if let Some(provider) = self.0 {
            // It waits for its export, which runs on this runtime: not on a runtime thread.
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "OpenTelemetry: the last spans could not be sent");
            }
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let clock = clock::system();
    let metrics = Metrics::new();
    match cli.command {
        Command::Migrate(args) if args.undistribute => {
            connect(&args.db.database_url.0).await?;
            let done = db::undistribute(&args.db.database_url.0).await?;
            let done = if done.is_empty() { "none (not distributed)".to_string() } else { done.join(", ") };
            eprintln!("back on the coordinator as plain tables: {done}");
            Ok(())
        }
        Command::Migrate(args) => {
            let done = migrate(&args.db.database_url.0, &clock, args.citus).await?;
            let applied =
                if done.applied.is_empty() { "none (already current)".to_string() } else { done.applied.join(", ") };
            eprintln!("migrations applied: {applied}");
            if args.citus {
                let done = if done.distributed.is_empty() {
                    "none (already distributed)".to_string()
                } else {
                    done.distributed.join(", ")
                };
                eprintln!("distributed by tenant on Citus: {done}");
            }
            Ok(())
        }
        Command::Tenant(TenantCommand::Create(args)) => {
            let mut client = connect(&args.db.database_url.0).await?;
            let token = herald_producer::tenant::create(&mut client, &args.name, clock.now()).await?;
            println!("{token}");
            Ok(())
        }
        Command::Verify(args) => verify::run(args),
        Command::Client(command) => std::process::exit(client::run(command).await.into()),
        Command::Admin(AdminCommand::Token(command)) => admin_token(command, &clock).await,
        Command::Tenant(TenantCommand::Set(args)) => {
            let domains = match args.allowed_domains.as_deref().map(str::trim) {
                None => None,
                Some("") => Some(None),
                Some(list) => Some(Some(
                    list.split(',')
                        .map(herald_core::policy::domain_pattern)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| anyhow::anyhow!("--allowed-domains: {e}"))?,
                )),
            };
            // An empty value unsets a notice channel. The operator may name any host (the
            // sender still connects only where HERALD_ALLOW_PRIVATE_TARGETS lets it).
            let email = args.notify_email.as_deref().map(str::trim).map(|e| match e {
                "" => Ok(None),
                e => herald_core::policy::notify_email(e)
                    .map(Some)
                    .map_err(|e| anyhow::anyhow!("--notify-email: {}", e.message)),
            });
            let slack = args.notify_slack_url.as_deref().map(str::trim).map(|u| match u {
                "" => Ok(None),
                u => herald_core::policy::notify_slack_url(u, &herald_core::targets::AllowList::all())
                    .map(|u| Some(u.to_string()))
                    .map_err(|e| anyhow::anyhow!("--notify-slack-url: {}", e.message)),
            });
            let change = herald_core::policy::SettingsChange {
                unsigned_callbacks: args.unsigned_callbacks,
                require_https: args.require_https,
                allowed_domains: domains,
                notify_email: email.transpose()?,
                notify_slack_url: slack.transpose()?,
            };
            let client = connect(&args.db.database_url.0).await?;
            let settings = herald_core::policy::TenantSettings::update(&client, &args.name, &change)
                .await
                .map_err(|e| anyhow::anyhow!("{}", herald_core::db::describe(&e)))?;
            let Some(settings) = settings else {
                bail!("no tenant {:?}; `herald tenant create {}` creates it", args.name.as_str(), args.name);
            };
            println!("{}", api::tenant::answer(args.name.as_str(), &settings));
            Ok(())
        }
        Command::Tenant(TenantCommand::Token(args)) => {
            let mut client = connect(&args.db.database_url.0).await?;
            let token = herald_producer::tenant::issue_token(&mut client, &args.name, clock.now()).await?;
            println!("{token}");
            Ok(())
        }
        Command::All(args) => {
            let url = args.db.database_url.0.clone();
            let worker_config = worker_config(&args.delivery, &args.targets, &args.poll)?;
            migrate(&url, &clock, false).await?;
            let pool = db::pool(&url, args.db.database_pool_size)?;
            let shutdown = shutdown_signal();
            let mut tasks = JoinSet::new();
            let app =
                api_router(&mut tasks, &url, app_state(&pool, &clock, &metrics, &args.targets, &args.api), &shutdown);
            spawn_http(&mut tasks, &args.listen, app, &url, &clock, &metrics, &shutdown);
            spawn_poller(&mut tasks, &url, &pool, &clock, &metrics, &args.poll, &shutdown);
            spawn_retention(&mut tasks, &pool, &clock, &metrics, &args.retention, &shutdown);
            spawn_replays(&mut tasks, &url, &pool, &clock, &metrics, &args.poll, &shutdown);
            let notices = notice_config(&args.notices, &args.targets, &args.retention);
            spawn_notices(&mut tasks, &pool, &clock, &metrics, notices, &shutdown)?;
            spawn_worker(&mut tasks, &url, &pool, &clock, &metrics, worker_config, &shutdown)?;
            join(tasks, shutdown).await
        }
        Command::Producer(args) => {
            let url = args.db.database_url.0.clone();
            let pool = db::pool(&url, args.db.database_pool_size)?;
            let shutdown = shutdown_signal();
            let mut tasks = JoinSet::new();
            let app =
                api_router(&mut tasks, &url, app_state(&pool, &clock, &metrics, &args.targets, &args.api), &shutdown);
            spawn_http(&mut tasks, &args.listen, app, &url, &clock, &metrics, &shutdown);
            join(tasks, shutdown).await
        }
        Command::Poller(args) => {
            let url = args.db.database_url.0.clone();
            let pool = db::pool(&url, args.db.database_pool_size)?;
            let shutdown = shutdown_signal();
            let mut tasks = JoinSet::new();
            let app = api::ops_only(pool.clone(), metrics.clone());
            spawn_http(&mut tasks, &args.listen, app, &url, &clock, &metrics, &shutdown);
            spawn_poller(&mut tasks, &url, &pool, &clock, &metrics, &args.poll, &shutdown);
            spawn_retention(&mut tasks, &pool, &clock, &metrics, &args.retention, &shutdown);
            spawn_replays(&mut tasks, &url, &pool, &clock, &metrics, &args.poll, &shutdown);
            let notices = notice_config(&args.notices, &args.targets, &args.retention);
            spawn_notices(&mut tasks, &pool, &clock, &metrics, notices, &shutdown)?;
            join(tasks, shutdown).await
        }
        Command::Worker(args) => {
            let url = args.db.database_url.0.clone();
            let worker_config = worker_config(&args.delivery, &args.targets, &args.poll)?;
            let pool = db::pool(&url, args.db.database_pool_size)?;
            let shutdown = shutdown_signal();
            let mut tasks = JoinSet::new();
            let app = api::ops_only(pool.clone(), metrics.clone());
            spawn_http(&mut tasks, &args.listen, app, &url, &clock, &metrics, &shutdown);
            spawn_worker(&mut tasks, &url, &pool, &clock, &metrics, worker_config, &shutdown)?;
            join(tasks, shutdown).await
        }
    }
}

/// `herald admin token`: operator tokens, straight in the database.
async fn admin_token(command: cli::AdminTokenCommand, clock: &SharedClock) -> anyhow::Result<()> {
    use cli::AdminTokenCommand as C;
    use herald_producer::tenant;
    match command {
        C::Create(args) => {
            let client = connect(&args.db.database_url.0).await?;
            let now = clock.now();
            let expires_at = args
                .expires_in
                .map(|d| chrono::Duration::from_std(d).map(|d| now + d))
                .transpose()
                .map_err(|_| anyhow::anyhow!("--expires-in is too long"))?;
            let issued = tenant::create_operator_token(&client, &args.name, expires_at, now).await?;
            eprintln!("operator token {} ({}): it is shown this once", issued.id.as_str(), issued.new.name);
            println!("{}", issued.token);
        }
        C::List(args) => {
            let client = connect(&args.db.database_url.0).await?;
            for (id, name, created, expires) in tenant::operator_tokens(&client).await? {
                let expires = expires.map_or("never".to_string(), |t| t.to_rfc3339());
                println!("{id}\t{name}\tcreated {}\texpires {expires}", created.to_rfc3339());
            }
        }
        C::Revoke(args) => {
            let client = connect(&args.db.database_url.0).await?;
            if !tenant::revoke_operator_token(&client, &args.id, clock.now()).await? {
                anyhow::bail!("no operator token {} that is not revoked already", args.id.as_str());
            }
            eprintln!("revoked {}", args.id.as_str());
        }
    }
    Ok(())
}

/// The API's routes, and its listener for revoked tokens (see `api::extract::TokenCache`).
fn api_router(tasks: &mut Task, url: &str, state: AppState, shutdown: &CancellationToken) -> axum::Router {
    let watch = state.watch_tokens(url.to_string(), shutdown.clone());
    tasks.spawn(async move {
        watch.await;
        Ok(())
    });
    api::router(state)
}

fn app_state(
    pool: &Pool,
    clock: &SharedClock,
    metrics: &Arc<Metrics>,
    targets: &TargetArgs,
    api: &ApiArgs,
) -> AppState {
    let mut state = AppState::new(
        pool.clone(),
        clock.clone(),
        targets.allow_private_targets.clone(),
        api.max_payload_bytes,
        metrics.clone(),
    );
    state.list_timeout = api.list_timeout;
    state
}

fn worker_config(d: &DeliveryArgs, targets: &TargetArgs, poll: &PollArgs) -> anyhow::Result<WorkerConfig> {
    let lease = d.lease.unwrap_or(d.attempt_timeout + WorkerConfig::LEASE_MARGIN);
    if lease <= d.attempt_timeout {
        bail!(
            "HERALD_LEASE ({lease:?}) must be longer than HERALD_ATTEMPT_TIMEOUT ({:?}), or another worker would take a delivery still being attempted",
            d.attempt_timeout
        );
    }
    if d.worker_concurrency == 0 || d.endpoint_concurrency == 0 {
        bail!("HERALD_WORKER_CONCURRENCY and HERALD_ENDPOINT_CONCURRENCY must be at least 1");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "herald".into());
    let mut c =
        // Containers often share a host name and all run as pid 1: a random part keeps ids apart.
        WorkerConfig::new(d.worker_id.clone().unwrap_or_else(|| {
            let random = herald_core::id::new_id("", clock::system().now()).split_off(18);
            format!("{}-{}-{random}", host.trim(), std::process::id())
        }));
    c.retry_schedule = d.retry_schedule.clone();
    c.lease = lease;
    c.attempt_timeout = d.attempt_timeout;
    c.connect_timeout = d.connect_timeout.min(d.attempt_timeout);
    c.allow = targets.allow_private_targets.clone();
    c.concurrency = d.worker_concurrency;
    c.endpoint_concurrency = d.endpoint_concurrency;
    c.poll_interval = poll.poll_interval;
    c.shutdown_grace = d.shutdown_grace;
    c.fifo_settle = d.fifo_settle;
    Ok(c)
}

type Task = JoinSet<anyhow::Result<()>>;

/// What every Herald process serves: its HTTP routes (with /healthz, /readyz, /metrics), and
/// the queue's gauges for /metrics, counted by one process at a time
/// ([`herald_core::metrics::watch_queue`]).
fn spawn_http(
    tasks: &mut Task,
    listen: &cli::ListenArgs,
    app: axum::Router,
    url: &str,
    clock: &SharedClock,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) {
    tasks.spawn(serve(listen.clone(), app, metrics.clone(), shutdown.clone()));
    let watch = herald_core::metrics::watch_queue(
        url.to_string(),
        metrics.clone(),
        clock.clone(),
        listen.metrics_interval,
        shutdown.clone(),
    );
    tasks.spawn(async move {
        watch.await;
        Ok(())
    });
}

/// Retention, in one poller at a time ([`herald_outbox_poller::retention`]).
fn spawn_retention(
    tasks: &mut Task,
    pool: &Pool,
    clock: &SharedClock,
    metrics: &Arc<Metrics>,
    retention: &cli::RetentionArgs,
    shutdown: &CancellationToken,
) {
    let keep = herald_outbox_poller::retention::RetentionConfig {
        keep: retention.retention.0,
        every: retention.retention_interval,
        ..Default::default()
    };
    let (p, c, m, s) = (pool.clone(), clock.clone(), metrics.clone(), shutdown.clone());
    tasks.spawn(supervise("retention", metrics.clone(), shutdown.clone(), move || {
        let retention = herald_outbox_poller::retention::Retention::new(p.clone(), c.clone(), keep.clone(), m.clone());
        let s = s.clone();
        Ok(async move {
            retention.run(s).await;
            Ok(())
        })
    }));
}

/// The notice sender's settings, from the command line.
fn notice_config(
    args: &cli::NoticeArgs,
    targets: &TargetArgs,
    retention: &cli::RetentionArgs,
) -> herald_outbox_poller::notices::NoticeConfig {
    herald_outbox_poller::notices::NoticeConfig {
        interval: args.notice_interval,
        retry_schedule: args.notice_retry_schedule.clone(),
        smtp_url: args.smtp_url.clone(),
        smtp_from: args.smtp_from.clone(),
        allow: targets.allow_private_targets.clone(),
        timeout: args.notice_timeout,
        keep: retention.retention.0,
    }
}

/// Failing-endpoint notices by email and Slack ([`herald_outbox_poller::notices`]), in every
/// process that runs a poller. Settings it cannot start with (a bad HERALD_SMTP_URL) stop the
/// process at start.
fn spawn_notices(
    tasks: &mut Task,
    pool: &Pool,
    clock: &SharedClock,
    metrics: &Arc<Metrics>,
    config: herald_outbox_poller::notices::NoticeConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    use herald_outbox_poller::notices::Notices;
    let (p, c, m) = (pool.clone(), clock.clone(), metrics.clone());
    let make = move || Notices::new(p.clone(), c.clone(), config.clone(), m.clone());
    // The first is built here, so that settings that do not work stop the process at start;
    // the supervisor builds another only after a panic.
    let mut first = Some(make()?);
    let s = shutdown.clone();
    tasks.spawn(supervise("notices", metrics.clone(), shutdown.clone(), move || {
        let notices = match first.take() {
            Some(n) => n,
            None => make()?,
        };
        let s = s.clone();
        Ok(async move {
            notices.run(s).await;
            Ok(())
        })
    }));
    Ok(())
}

fn spawn_poller(
    tasks: &mut Task,
    url: &str,
    pool: &Pool,
    clock: &SharedClock,
    metrics: &Arc<Metrics>,
    poll: &PollArgs,
    shutdown: &CancellationToken,
) {
    let config = PollerConfig { batch: poll.poller_batch, poll_interval: poll.poll_interval };
    let wake = herald_core::listen::Wake::new();
    tasks.spawn(listen(url, "herald_outbox", wake.clone(), metrics, shutdown));
    let (pool, clock, m, s) = (pool.clone(), clock.clone(), metrics.clone(), shutdown.clone());
    tasks.spawn(supervise("poller", metrics.clone(), shutdown.clone(), move || {
        let poller = Poller::new(pool.clone(), clock.clone(), config.clone(), m.clone()).woken_by(wake.clone());
        let s = s.clone();
        Ok(async move {
            poller.run(s).await;
            Ok(())
        })
    }));
}

/// The replay runner ([`herald_outbox_poller::replay`]), woken by `herald_replays` (the API sends
/// it when a replay is asked for) and polling at HERALD_POLL_INTERVAL.
fn spawn_replays(
    tasks: &mut Task,
    url: &str,
    pool: &Pool,
    clock: &SharedClock,
    metrics: &Arc<Metrics>,
    poll: &PollArgs,
    shutdown: &CancellationToken,
) {
    use herald_outbox_poller::replay::{ReplayConfig, Replayer, CHANNEL};
    let config = ReplayConfig { poll_interval: poll.poll_interval, ..Default::default() };
    let wake = herald_core::listen::Wake::new();
    tasks.spawn(listen(url, CHANNEL, wake.clone(), metrics, shutdown));
    let (pool, clock, s) = (pool.clone(), clock.clone(), shutdown.clone());
    tasks.spawn(supervise("replay", metrics.clone(), shutdown.clone(), move || {
        let replayer = Replayer::new(pool.clone(), clock.clone(), config.clone()).woken_by(wake.clone());
        let s = s.clone();
        Ok(async move {
            replayer.run(s).await;
            Ok(())
        })
    }));
}

fn spawn_worker(
    tasks: &mut Task,
    url: &str,
    pool: &Pool,
    clock: &SharedClock,
    metrics: &Arc<Metrics>,
    config: WorkerConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let wake = herald_core::listen::Wake::new();
    // The first is built here, so that a client that cannot be built stops the process at
    // start; the supervisor builds another only after a panic.
    let mut first = Some(
        Worker::new(pool.clone(), clock.clone(), config.clone(), metrics.clone())
            .context("building the HTTP client")?
            .woken_by(wake.clone()),
    );
    tasks.spawn(listen(url, "herald_deliveries", wake.clone(), metrics, shutdown));
    let (pool, clock, m, s) = (pool.clone(), clock.clone(), metrics.clone(), shutdown.clone());
    tasks.spawn(supervise("worker", metrics.clone(), shutdown.clone(), move || {
        let worker = match first.take() {
            Some(worker) => worker,
            None => Worker::new(pool.clone(), clock.clone(), config.clone(), m.clone())
                .context("building the HTTP client")?
                .woken_by(wake.clone()),
        };
        let s = s.clone();
        Ok(async move { worker.run(s).await.map_err(anyhow::Error::from) })
    }));
    Ok(())
}

/// Runs the future that `start` makes, and again each time it panics (after a pause that
/// doubles up to 30 s), so that a bug one input hits costs that component a restart, not the
/// process its life. The panic is logged and counted (`herald_panics_total`). Returns what
/// the component returns when it stops on its own.
async fn supervise<F, Fut>(
    component: &'static str,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    mut start: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> anyhow::Result<Fut>,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    const FIRST_PAUSE: Duration = Duration::from_millis(100);
    let mut pause = FIRST_PAUSE;
    loop {
        let started = tokio::time::Instant::now();
        match tokio::spawn(start()?).await {
            Ok(result) => return result,
            Err(e) if e.is_panic() => {
                metrics.panicked(component);
                if started.elapsed() > Duration::from_secs(60) {
                    pause = FIRST_PAUSE; // a panic now and then, not a loop
                }
                let said = herald_core::panic::message(&*e.into_panic());
                tracing::error!(component, panic = %said, ?pause, "a component panicked; starting it again");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn listen(
    url: &str,
    channel: &str,
    wake: Arc<herald_core::listen::Wake>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> impl std::future::Future<Output = anyhow::Result<()>> {
    let fut = herald_core::listen::listen(
        url.to_string(),
        vec![channel.to_string()],
        wake,
        metrics.clone(),
        shutdown.clone(),
    );
    async move {
        fut.await;
        Ok(())
    }
}

/// Waits for every task; the first that fails stops the others.
async fn join(mut tasks: Task, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let r = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = r {
            if result.is_ok() {
                result = Err(e);
            }
            shutdown.cancel();
        }
    }
    result
}

/// A connection, retried with backoff while the database is starting or restarting.
async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let attempt = || async { db::connect(url).await };
    attempt
        .retry(ExponentialBuilder::default().with_max_times(8).with_max_delay(Duration::from_secs(5)))
        .notify(|e, wait| tracing::warn!(error = %e, ?wait, "database not reachable yet; retrying"))
        .await
        .context("connecting to HERALD_DATABASE_URL")
}

async fn migrate(url: &str, clock: &SharedClock, citus: bool) -> anyhow::Result<db::Migrated> {
    connect(url).await?;
    db::migrate(url, clock, citus).await.context("migrating the database")
}

/// Cancelled on SIGINT or SIGTERM.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

/// Serves `app` on `listen` until `shutdown`, then lets the requests in progress finish.
///
/// Hyper's HTTP/1 server directly rather than `axum::serve`, which sets no timer: without one,
/// a client that sends its headers a byte at a time, or opens connections and sends nothing,
/// holds them for ever. Here headers must arrive within `http_read_timeout` (which also closes
/// idle keep-alive connections), and a whole request, body included, within `request_timeout`.
async fn serve(
    listen: cli::ListenArgs,
    app: axum::Router,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listen.listen;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
    tracing::info!(%addr, "Herald listening");
    let app = app
        .layer(axum::middleware::from_fn_with_state(listen.request_timeout, request_timeout))
        .layer(axum::middleware::from_fn_with_state(metrics, api::observe));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(listen.http_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(listen.request_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running at shutdown were cut off");
    }
    Ok(())
}

/// Answers 408 in the contract's shape when a request (reading its body included) takes longer
/// than `limit`. What it had already committed stays committed: a client that retries an event
/// with its id gets `duplicate`.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => herald_producer::api::error::ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request took longer than {} (HERALD_REQUEST_TIMEOUT); send the body at once, and retry with the same event id if unsure",
                herald_core::validate::format_duration(limit)
            ),
        )
        .into_response(),
    }
}
