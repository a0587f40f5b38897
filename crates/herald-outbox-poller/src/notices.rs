//! Failing-endpoint notices: tells a tenant, by email (SMTP) and on Slack (an incoming webhook),
//! when one of its endpoints turns `failing`, `disabled` or `recovered`.
//!
//! The delivery-worker leaves one `herald.notices` row per change and channel in the transaction
//! that changes the endpoint (`herald_core::policy::enqueue_notices`); everything else is here,
//! away from the delivery path. The two channels run apart, each at its own
//! `HERALD_NOTICE_INTERVAL` (jittered ±20 %), so that a mail server that hangs never holds up
//! Slack, nor the other way round. At each tick a channel asks each tenant, without locking,
//! whether it has a due notice there; per tenant it first drops the pending notices that a newer
//! one of the same endpoint supersedes (only the latest change matters), then claims the oldest
//! pending notice (one statement naming the tenant, `FOR UPDATE SKIP LOCKED`, which leases it: a
//! sender that dies lets it go again when the lease ends), commits, sends with no transaction
//! open, and records the result (only if it still holds that claim); again until none is due.
//! A channel's notices go in the order they were made, one at a time per tenant.
//!
//! The mail server is one for every tenant: in a tick, emails go one at a time until it has
//! answered once, and after it could not be reached (refused, a timeout, a TLS failure) no other
//! email is tried in that tick; each waits for its next attempt time.
//!
//! An attempt that fails for a reason that may pass (the server is down, answers 4xx temporary
//! or 5xx, a timeout) is retried on `HERALD_NOTICE_RETRY_SCHEDULE` (a Slack 429's Retry-After is
//! honoured), its next time in the row, until the schedule's total has passed since the change
//! (however many attempts that made: a notice that waited behind others is not given another
//! day); then, or when the server refuses it for good (SMTP 5xx, HTTP 3xx or 4xx other than 408
//! and 429, a target the SSRF guard refuses), the notice is `failed`: logged, and counted in
//! `herald_notices_total{result="given_up"}`. A notice is `dropped` when its channel was turned
//! off before it went, when a newer notice of its endpoint and channel supersedes it, and, for
//! email, when this process has no mail server (`HERALD_SMTP_URL`). A sender that dies after the
//! server took a notice but before its result is written sends it again when the lease ends (the
//! email's Message-ID is the same each time, so mail clients show it once).
//!
//! Must not: log an SMTP password or a Slack URL (the URL is the webhook's secret), or connect to
//! an address that `HERALD_ALLOW_PRIVATE_TARGETS` does not allow (Slack: the same guard as the
//! worker's; the SMTP server is the operator's own and is not checked).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use herald_core::clock::SharedClock;
use herald_core::config::RetrySchedule;
use herald_core::id::TenantId;
use herald_core::metrics::Metrics;
use herald_core::policy::TenantSettings;
use herald_core::targets::AllowList;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::Rng;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::PollerError;

mod sql {
    /// Whether tenant `$1` has a notice on channel `$3` due at `$2`, read without locks.
    pub const TENANT_HAS_DUE: &str = "SELECT EXISTS (SELECT 1 FROM herald.notices n \
         WHERE n.tenant_id = $1 AND n.channel = $3 AND n.state = 'pending' AND n.next_attempt_at <= $2 \
           AND (n.lease_until IS NULL OR n.lease_until <= $2))";

    /// Drops tenant `$1`'s pending notices on channel `$2` that a newer pending notice of the same
    /// endpoint supersedes (the newest change is what the tenant needs to know), unless a sender
    /// holds one at `$3` (its result is recorded first; the next round drops it then).
    pub const SUPERSEDE: &str = "UPDATE herald.notices n \
           SET state = 'dropped', lease_until = NULL, \
               last_error = 'superseded: a newer notice of this endpoint was made, and only the latest change is sent' \
         WHERE n.tenant_id = $1 AND n.channel = $2 AND n.state = 'pending' \
           AND (n.lease_until IS NULL OR n.lease_until <= $3) \
           AND EXISTS (SELECT 1 FROM herald.notices o \
                        WHERE o.tenant_id = $1 AND o.channel = $2 AND o.state = 'pending' \
                          AND o.endpoint_id = n.endpoint_id AND o.notice_id > n.notice_id) \
         RETURNING n.notice_id, n.endpoint_id, n.kind, n.attempts";

    /// Leases, until `$4`, the oldest pending notice of tenant `$1` on channel `$2`, if it is due
    /// at `$3` and no other sender holds it (a later one waits for it: a channel's notices go in
    /// order). Each claim counts one attempt; the count names the claim.
    pub const CLAIM: &str = "WITH due AS ( \
           SELECT n.notice_id FROM herald.notices n \
            WHERE n.tenant_id = $1 AND n.channel = $2 AND n.state = 'pending' AND n.next_attempt_at <= $3 \
              AND (n.lease_until IS NULL OR n.lease_until <= $3) \
              AND NOT EXISTS (SELECT 1 FROM herald.notices o \
                               WHERE o.tenant_id = $1 AND o.channel = $2 AND o.state = 'pending' \
                                 AND o.notice_id < n.notice_id) \
            ORDER BY n.notice_id \
            LIMIT 1 \
            FOR UPDATE SKIP LOCKED) \
         UPDATE herald.notices n SET lease_until = $4, attempts = n.attempts + 1 \
           FROM due WHERE n.tenant_id = $1 AND n.notice_id = due.notice_id \
         RETURNING n.notice_id, n.endpoint_id, n.kind, n.channel, n.detail, n.attempts, n.created_at";

    /// A claimed notice's result, if the claim is still the latest: `sent`, `failed`, `dropped`,
    /// or `pending` again with its next attempt time.
    pub const RECORD: &str = "UPDATE herald.notices \
           SET state = $4, next_attempt_at = coalesce($5, next_attempt_at), sent_at = $6, lease_until = NULL, \
               last_error = $7 \
         WHERE tenant_id = $1 AND notice_id = $2 AND attempts = $3 AND state = 'pending'";

    /// Notices that are settled (sent, failed, dropped) and made before the retention cutoff:
    /// `$2` is the smallest notice id of that moment, so the primary key finds them (ids are
    /// time-ordered; there is no index on `created_at`).
    pub const PRUNE: &str = "DELETE FROM herald.notices \
         WHERE tenant_id = $1 AND notice_id < $2 AND state <> 'pending'";
}

/// The two channels.
pub const EMAIL: &str = "email";
pub const SLACK: &str = "slack";

/// `HERALD_SMTP_URL`, which may carry a password: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(pub String);

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpUrl(..)")
    }
}

/// Taken as it is: checked when the sender is made, by [`Notices::new`], whose error never
/// repeats it (a parse error of clap's would print the value, password and all).
impl std::str::FromStr for SmtpUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

#[derive(Debug, Clone)]
pub struct NoticeConfig {
    /// How often each channel looks for due notices (jittered ±20 %).
    pub interval: Duration,
    /// Delays between a notice's attempts; once their total has passed since the change, it is
    /// given up.
    pub retry_schedule: RetrySchedule,
    /// The SMTP server: `smtp://host:25`, `smtp://user:pass@host:587?tls=required` (STARTTLS),
    /// `smtps://user:pass@host:465` (TLS from the start). `None`: no email goes out (email
    /// notices are dropped).
    pub smtp_url: Option<SmtpUrl>,
    /// The emails' From: `Herald <herald@example.com>` or a plain address.
    pub smtp_from: Option<String>,
    /// Non-public addresses a Slack URL may reach (HERALD_ALLOW_PRIVATE_TARGETS).
    pub allow: AllowList,
    /// The longest one attempt may take, email or Slack.
    pub timeout: Duration,
    /// Settled notices older than this go (HERALD_RETENTION); `None`: kept.
    pub keep: Option<Duration>,
}

impl NoticeConfig {
    /// About a day in all before a notice is given up (23 h 21 min 10 s).
    pub const RETRY_SCHEDULE: &'static str = "10s,1m,5m,15m,1h,2h,4h,8h,8h";
    pub const INTERVAL: &'static str = "5s";
    pub const TIMEOUT: &'static str = "20s";

    /// How long a claim holds a notice: the attempt (at most the timeout), and around it the
    /// tenant's settings read and a wait for a pooled connection to record the result (at most
    /// `POOL_TIMEOUT`), each twice over, so that a lease never runs out while its sender is
    /// still at work (another sender would send the notice again).
    pub fn lease(&self) -> Duration {
        2 * self.timeout + 2 * herald_core::db::POOL_TIMEOUT
    }
}

impl Default for NoticeConfig {
    fn default() -> Self {
        Self {
            interval: herald_core::config::default_duration(Self::INTERVAL),
            retry_schedule: Self::RETRY_SCHEDULE.parse().expect("the default notice schedule parses"),
            smtp_url: None,
            smtp_from: None,
            allow: AllowList::none(),
            timeout: herald_core::config::default_duration(Self::TIMEOUT),
            keep: Some(Duration::from_secs(30 * 86_400)),
        }
    }
}

/// Settings the sender cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error("HERALD_SMTP_URL: {0}")]
    SmtpUrl(String),
    #[error("HERALD_SMTP_FROM: {0}")]
    SmtpFrom(String),
    #[error("the HTTP client for Slack notices: {0}")]
    Http(#[from] reqwest::Error),
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Failed for a reason that may pass: tried again on the schedule.
    Retry(String),
    /// Rate-limited (Slack's 429): tried again on the schedule, and not before this long.
    RetryAfter(String, Duration),
    /// The mail server could not be reached or used (refused, a timeout, TLS): tried again on the
    /// schedule, and no other email is tried in this tick.
    Unreachable(String),
    /// Refused for good: not tried again.
    GiveUp(String),
    /// The channel was turned off, or is not set up in this process, before the notice went.
    Dropped(String),
}

/// The schedule's delays, one after another.
fn steps(schedule: &RetrySchedule) -> impl Iterator<Item = Duration> + '_ {
    (1..).map_while(|n| schedule.after_attempt(n))
}

/// How long after its change a notice may still be retried: the schedule's total.
pub fn give_up_after(schedule: &RetrySchedule) -> Duration {
    steps(schedule).sum()
}

/// Where a notice goes next, from what its attempt came to: (state, next attempt time, error).
///
/// A retry waits the schedule's step for this attempt (its last step once past it; ±10 %), or
/// a longer Retry-After, but never past the notice's deadline, `created_at` plus the schedule's
/// total: the last attempt is at the deadline, and one that fails at or after it gives up. So a
/// notice is given up by its age, not its attempt count: one that waited behind others (a
/// channel sends its notices one at a time) does not start a day of retries of its own.
pub fn settle(
    outcome: &Outcome,
    attempts: i32,
    created_at: DateTime<Utc>,
    schedule: &RetrySchedule,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> (&'static str, Option<DateTime<Utc>>, Option<String>) {
    let (why, retry_after) = match outcome {
        Outcome::Sent => return ("sent", None, None),
        Outcome::Dropped(why) => return ("dropped", None, Some(why.clone())),
        Outcome::GiveUp(why) => return ("failed", None, Some(why.clone())),
        Outcome::Retry(why) | Outcome::Unreachable(why) => (why, None),
        Outcome::RetryAfter(why, after) => (why, Some(*after)),
    };
    let total = give_up_after(schedule);
    let deadline = created_at + chrono::Duration::from_std(total).unwrap_or(chrono::Duration::MAX);
    if now >= deadline {
        let total = herald_core::validate::format_duration(total);
        return (
            "failed",
            None,
            Some(format!("{why} (given up: not sent within {total} of the change, after {attempts} attempts)")),
        );
    }
    let step = schedule.after_attempt(attempts.max(1) as u32).or_else(|| steps(schedule).last()).unwrap_or_default();
    // ±10 %, so that notices that failed together are not all retried together.
    let step = step.mul_f64(rng.random_range(0.9..=1.1));
    let mut at = now + chrono::Duration::from_std(step).unwrap_or(chrono::Duration::MAX);
    if let Some(after) = retry_after {
        let earliest = now + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        if earliest > deadline {
            let after = herald_core::validate::format_duration(after);
            return (
                "failed",
                None,
                Some(format!("{why} (given up: asked to wait {after}, past the notice's deadline)")),
            );
        }
        at = at.max(earliest);
    }
    ("pending", Some(at.min(deadline)), Some(why.clone()))
}

/// A Retry-After value: delay-seconds, or an HTTP date (taken relative to `now`).
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A claimed notice.
#[derive(Debug, Clone)]
pub struct Notice {
    pub tenant: TenantId,
    pub id: String,
    pub endpoint_id: String,
    pub kind: String,
    pub channel: String,
    pub detail: Value,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

impl Notice {
    fn from_row(tenant: &TenantId, r: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            tenant: tenant.clone(),
            id: r.try_get(0)?,
            endpoint_id: r.try_get(1)?,
            kind: r.try_get(2)?,
            channel: r.try_get(3)?,
            detail: r.try_get(4)?,
            attempts: r.try_get(5)?,
            created_at: r.try_get(6)?,
        })
    }

    fn field(&self, name: &str) -> Option<String> {
        match self.detail.get(name)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            v => Some(v.to_string()),
        }
    }

    /// "is failing", "was disabled", "has recovered".
    fn verb(&self) -> &'static str {
        match self.kind.as_str() {
            "failing" => "is failing",
            "disabled" => "was disabled",
            "recovered" => "has recovered",
            _ => "changed",
        }
    }

    fn when(&self) -> String {
        self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// What to do about it, in a sentence or two.
    fn advice(&self) -> String {
        let ep = &self.endpoint_id;
        match self.kind.as_str() {
            "failing" => {
                let mut t = "A delivery used up its retries at this endpoint. Herald keeps sending new events to it; \
                             the first one that succeeds makes it healthy again (you will be told)."
                    .to_string();
                if let (Some(evt), Some(dlv)) = (self.field("event_id"), self.field("delivery_id")) {
                    t.push_str(&format!(
                        " The attempts: GET /v1/events/{evt}/attempts; once the receiver is fixed, POST \
                         /v1/deliveries/{dlv}/retry sends it again."
                    ));
                }
                t
            }
            "disabled" => format!(
                "Nothing is sent to it until it is enabled again (POST /v1/endpoints/{ep}/enable); its deliveries wait."
            ),
            "recovered" => "A delivery to it succeeded: it is healthy again.".to_string(),
            _ => String::new(),
        }
    }

    /// The email's subject.
    pub fn subject(&self) -> String {
        format!("[Herald] {}: endpoint {} {}", self.tenant, self.endpoint_id, self.verb())
    }

    /// The email's body: plain text.
    pub fn email_text(&self) -> String {
        let mut t =
            format!("Endpoint {} of tenant {} {} ({}).\n\n", self.endpoint_id, self.tenant, self.verb(), self.when());
        t.push_str(&format!("URL:        {}\n", shown_url(self.field("url").as_deref())));
        if let Some(reason) = self.field("reason") {
            t.push_str(&format!("Reason:     {reason}\n"));
        }
        if self.kind != "recovered" {
            if let Some(e) = self.field("last_error") {
                t.push_str(&format!("Last error: {e}\n"));
            }
        }
        if let Some(evt) = self.field("event_id") {
            t.push_str(&format!("Event:      {evt}"));
            if let Some(d) = self.field("delivery_id") {
                t.push_str(&format!(" (delivery {d})"));
            }
            t.push('\n');
        }
        t.push_str(&format!("\n{}\n\n-- \nHerald, notice {}\n", wrap(&self.advice(), 72), self.id));
        t
    }

    /// The Slack message's text (Slack's mrkdwn; `&`, `<`, `>` escaped as Slack asks).
    pub fn slack_text(&self) -> String {
        let icon = match self.kind.as_str() {
            "failing" => ":warning:",
            "disabled" => ":no_entry:",
            "recovered" => ":white_check_mark:",
            _ => ":information_source:",
        };
        let mut t = format!(
            "{icon} Herald: endpoint `{}` of tenant `{}` {} ({})\nURL: {}",
            esc(&self.endpoint_id),
            esc(self.tenant.as_str()),
            self.verb(),
            self.when(),
            esc(&shown_url(self.field("url").as_deref()))
        );
        if let Some(reason) = self.field("reason") {
            t.push_str(&format!("\nReason: {}", esc(&reason)));
        }
        if self.kind != "recovered" {
            if let Some(e) = self.field("last_error") {
                t.push_str(&format!("\nLast error: {}", esc(&e)));
            }
        }
        if let Some(evt) = self.field("event_id") {
            t.push_str(&format!("\nEvent: `{}`", esc(&evt)));
            if let Some(d) = self.field("delivery_id") {
                t.push_str(&format!(" (delivery `{}`)", esc(&d)));
            }
        }
        t.push('\n');
        t.push_str(&esc(&self.advice()));
        t
    }
}

/// `text` with its words on lines of at most `width` characters (a longer word on its own).
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        let n = word.chars().count();
        if line > 0 && line + 1 + n > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += n;
    }
    out
}

/// Slack's three escapes.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// An endpoint URL as a notice shows it: without its query (it may carry the receiver's token;
/// `?…` says there was one), fragment, user or password.
fn shown_url(raw: Option<&str>) -> String {
    let Some(mut url) = raw.and_then(|r| url::Url::parse(r).ok()) else {
        return "(not known)".to_string();
    };
    let had_query = url.query().is_some();
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let mut s = url.to_string();
    if had_query {
        s.push_str("?…");
    }
    s
}

/// Resolves the Slack URL's host through the worker's guard
/// ([`herald_core::targets::resolve_allowed`]): every address the allow-list refuses is dropped.
#[derive(Debug)]
struct GuardedResolver {
    allow: AllowList,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let allowed = herald_core::targets::resolve_allowed(name.as_str(), &allow).await?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for logs (never the URL: it may carry a password).
    server: String,
}

/// The notice sender of one poller process.
pub struct Notices {
    pool: Pool,
    clock: SharedClock,
    config: NoticeConfig,
    metrics: Arc<Metrics>,
    mailer: Option<Mailer>,
    http: reqwest::Client,
}

/// Tenants whose notices of one channel are sent at the same time.
const TENANTS_AT_ONCE: usize = 8;
/// Notices per tenant and channel in one tick.
const ROUNDS: usize = 100;

/// The mail server's state within one tick of the email channel: until it has answered once,
/// emails go one at a time (`probe` held); once it could not be reached, none goes.
#[derive(Default)]
struct MailGate {
    /// Set once the mail server was refused, timed out or failed: no email more this tick.
    down: AtomicBool,
    /// True once the mail server has answered in this tick (then sends need not hold it).
    probe: tokio::sync::Mutex<bool>,
}

impl Notices {
    /// Checks the SMTP settings and builds the clients; an error names the setting to fix and
    /// never repeats the SMTP URL.
    pub fn new(
        pool: Pool,
        clock: SharedClock,
        config: NoticeConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, NoticeError> {
        let mailer = match (&config.smtp_url, &config.smtp_from) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(NoticeError::SmtpFrom(
                    "not set, while HERALD_SMTP_URL is: set it to the address notices come from, e.g. `Herald <herald@example.com>`"
                        .into(),
                ))
            }
            (Some(url), Some(from)) => Some(mailer(url, from, config.timeout)?),
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .dns_resolver(Arc::new(GuardedResolver { allow: config.allow.clone() }))
            .build()?;
        Ok(Self { pool, clock, config, metrics, mailer, http })
    }

    /// Runs until `shutdown`: each channel sends what is due at its own interval, and once an
    /// hour settled notices past retention are removed. Sends under way when `shutdown` comes
    /// are finished (each within the timeout), so that none is left half-recorded.
    pub async fn run(self, shutdown: CancellationToken) {
        match &self.mailer {
            Some(m) => tracing::info!(server = %m.server, "notice sender started (email and Slack)"),
            None => tracing::info!(
                "notice sender started (Slack only: HERALD_SMTP_URL is not set, so email notices are dropped)"
            ),
        }
        tokio::join!(self.channel(EMAIL, &shutdown), self.channel(SLACK, &shutdown), self.pruner(&shutdown));
        tracing::info!("notice sender stopped");
    }

    /// One channel's loop: a tick, then a jittered wait.
    async fn channel(&self, channel: &'static str, shutdown: &CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(e) = self.tick_channel(channel, shutdown).await {
                tracing::warn!(error = %e, channel, "sending notices failed; retrying at the next interval");
            }
            let wait = self.config.interval.mul_f64(rand::rng().random_range(0.8..=1.2));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Removes settled notices past retention once an hour (again at the next interval after a
    /// failure).
    async fn pruner(&self, shutdown: &CancellationToken) {
        let Some(keep) = self.config.keep else { return };
        while !shutdown.is_cancelled() {
            let wait = match self.prune(self.clock.now(), keep).await {
                Ok(_) => Duration::from_secs(3600),
                Err(e) => {
                    tracing::warn!(error = %e, "removing old notices failed; will retry");
                    self.config.interval
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends every notice due now on both channels, side by side; the number settled (sent,
    /// retried later, given up or dropped).
    pub async fn tick(&self, shutdown: &CancellationToken) -> Result<usize, PollerError> {
        let (email, slack) = tokio::join!(self.tick_channel(EMAIL, shutdown), self.tick_channel(SLACK, shutdown));
        Ok(email? + slack?)
    }

    /// Sends every notice due now on `channel`, tenant by tenant (a few at a time).
    async fn tick_channel(&self, channel: &'static str, shutdown: &CancellationToken) -> Result<usize, PollerError> {
        let now = self.clock.now();
        let tenants = {
            let client = self.pool.get().await?;
            herald_core::db::tenants_where(&client, sql::TENANT_HAS_DUE, &[&now, &channel]).await?
        };
        let gate = MailGate::default();
        let gate = &gate;
        let results: Vec<usize> = futures_util::stream::iter(tenants)
            .map(|tenant| async move {
                match self.tenant(&tenant, channel, gate, shutdown).await {
                    Ok(n) => n,
                    // One tenant's trouble must not hold up the others.
                    Err(e) => {
                        tracing::warn!(error = %e, %tenant, channel, "sending this tenant's notices failed; the others go on");
                        0
                    }
                }
            })
            .buffer_unordered(TENANTS_AT_ONCE)
            .collect()
            .await;
        Ok(results.into_iter().sum())
    }

    /// Sends `tenant`'s due notices on `channel`: drop what a newer notice supersedes, claim the
    /// oldest, send, record; again until none is due.
    async fn tenant(
        &self,
        tenant: &TenantId,
        channel: &'static str,
        gate: &MailGate,
        shutdown: &CancellationToken,
    ) -> Result<usize, PollerError> {
        let email = channel == EMAIL;
        let mut n = 0;
        for _ in 0..ROUNDS {
            if shutdown.is_cancelled() || (email && gate.down.load(Ordering::Relaxed)) {
                break;
            }
            // Until the mail server has answered in this tick, one email at a time.
            let mut probe = if email { Some(gate.probe.lock().await).filter(|answered| !**answered) } else { None };
            if email && gate.down.load(Ordering::Relaxed) {
                break;
            }
            let now = self.clock.now();
            let lease_until = now + chrono::Duration::from_std(self.config.lease()).unwrap_or_default();
            let (notice, settings) = {
                let client = self.pool.get().await?;
                for r in client.query(sql::SUPERSEDE, &[tenant, &channel, &now]).await? {
                    let (id, endpoint, kind, attempts): (String, String, String, i32) =
                        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
                    self.metrics.notice(channel, "dropped");
                    tracing::info!(%tenant, endpoint, channel, notice = id, kind, attempts, "notice dropped: a newer notice of its endpoint supersedes it");
                    n += 1;
                }
                let Some(row) = client.query_opt(sql::CLAIM, &[tenant, &channel, &now, &lease_until]).await? else {
                    break;
                };
                let notice = Notice::from_row(tenant, &row)?;
                // The channels as they are now: one turned off since drops its notices.
                let settings = TenantSettings::load(&client, tenant).await?.unwrap_or_default();
                (notice, settings)
            };
            // No transaction and no pooled connection held while sending.
            let outcome = self.send(&notice, &settings).await;
            match &outcome {
                Outcome::Unreachable(_) => gate.down.store(true, Ordering::Relaxed),
                Outcome::Sent | Outcome::Retry(_) | Outcome::RetryAfter(..) | Outcome::GiveUp(_) => {
                    if let Some(answered) = probe.as_deref_mut() {
                        *answered = true;
                    }
                }
                Outcome::Dropped(_) => {}
            }
            drop(probe);
            // Each result on its own: one that cannot be written is logged, and its notice goes
            // again once the lease ends.
            match self.record(&notice, &outcome).await {
                Ok(true) => n += 1,
                Ok(false) => {} // another sender took it over after this one's lease ran out
                Err(e) => {
                    let (id, endpoint) = (&notice.id, &notice.endpoint_id);
                    tracing::warn!(error = %e, %tenant, endpoint, channel, notice = id, ?outcome, "a notice's result could not be recorded; it goes again when its lease ends");
                }
            }
        }
        Ok(n)
    }

    /// Writes a claimed notice's result, if its claim is still the latest (`false`: it is not).
    async fn record(&self, notice: &Notice, outcome: &Outcome) -> Result<bool, PollerError> {
        let now = self.clock.now();
        let (state, next_at, error) = {
            let mut rng = rand::rng();
            settle(outcome, notice.attempts, notice.created_at, &self.config.retry_schedule, now, &mut rng)
        };
        let sent_at = (state == "sent").then_some(now);
        let client = self.pool.get().await?;
        let landed = client
            .execute(sql::RECORD, &[&notice.tenant, &notice.id, &notice.attempts, &state, &next_at, &sent_at, &error])
            .await?;
        if landed == 0 {
            return Ok(false);
        }
        self.report(notice, state, error.as_deref());
        Ok(true)
    }

    /// Logs and counts a recorded result.
    fn report(&self, notice: &Notice, state: &str, error: Option<&str>) {
        let (tenant, endpoint, channel, id) = (&notice.tenant, &notice.endpoint_id, &notice.channel, &notice.id);
        let error = error.unwrap_or("");
        match state {
            "sent" => {
                self.metrics.notice(channel, "sent");
                tracing::info!(%tenant, endpoint, channel, notice = id, kind = notice.kind, "notice sent");
            }
            "pending" => {
                self.metrics.notice(channel, "failed");
                tracing::warn!(%tenant, endpoint, channel, notice = id, attempt = notice.attempts, error, "a notice could not be sent; it is retried");
            }
            "dropped" => {
                self.metrics.notice(channel, "dropped");
                tracing::info!(%tenant, endpoint, channel, notice = id, error, "notice dropped");
            }
            _ => {
                self.metrics.notice(channel, "given_up");
                tracing::error!(%tenant, endpoint, channel, notice = id, attempts = notice.attempts, error, "a notice could not be sent and is given up");
            }
        }
    }

    /// One attempt, within the timeout.
    async fn send(&self, notice: &Notice, settings: &TenantSettings) -> Outcome {
        let attempt = async {
            match notice.channel.as_str() {
                EMAIL => match &settings.notify_email {
                    Some(to) => self.email(notice, to).await,
                    None => Outcome::Dropped("the tenant's notify_email was unset before the notice went".into()),
                },
                SLACK => match &settings.notify_slack_url {
                    Some(url) => self.slack(notice, url).await,
                    None => Outcome::Dropped("the tenant's notify_slack_url was unset before the notice went".into()),
                },
                other => Outcome::GiveUp(format!("unknown channel {other:?}")),
            }
        };
        match tokio::time::timeout(self.config.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let why = format!(
                    "timeout: no answer within {}",
                    herald_core::validate::format_duration(self.config.timeout)
                );
                match (notice.channel.as_str(), &self.mailer) {
                    (EMAIL, Some(m)) => Outcome::Unreachable(format!("smtp {}: {why}", m.server)),
                    _ => Outcome::Retry(why),
                }
            }
        }
    }

    async fn email(&self, notice: &Notice, to: &str) -> Outcome {
        let Some(mailer) = &self.mailer else {
            // As the start-up log says: without a mail server, email notices are dropped (they
            // would never go; retrying them for a day would only pile them up).
            return Outcome::Dropped("no mail server is set up for Herald's poller (HERALD_SMTP_URL)".into());
        };
        let to = match to.parse::<lettre::Address>() {
            Ok(a) => Mailbox::new(None, a),
            Err(e) => return Outcome::GiveUp(format!("notify_email is not an address a mail server takes: {e}")),
        };
        // The same each time this notice is sent: a mail client shows a repeat once.
        let message_id = format!("<{}.{}@{}>", notice.id, notice.tenant, mailer.from.email.domain());
        let message = Message::builder()
            .from(mailer.from.clone())
            .to(to)
            .subject(notice.subject())
            .message_id(Some(message_id))
            .date(std::time::SystemTime::from(self.clock.now()))
            .header(ContentType::TEXT_PLAIN)
            .body(notice.email_text());
        let message = match message {
            Ok(m) => m,
            Err(e) => return Outcome::GiveUp(format!("the email could not be made: {e}")),
        };
        match mailer.transport.send(message).await {
            Ok(_) => Outcome::Sent,
            Err(e) if e.is_permanent() => Outcome::GiveUp(format!("the mail server refused it: {e}")),
            // A 4xx about this message; 421 is the server closing the session (it is unavailable).
            Err(e) if e.is_transient() && e.status().map(u16::from) != Some(421) => {
                Outcome::Retry(format!("smtp {}: {}", mailer.server, smtp_error(&e)))
            }
            // Refused, a timeout, TLS, a session it could not hold: no email goes this tick.
            Err(e) => Outcome::Unreachable(format!("smtp {}: {}", mailer.server, smtp_error(&e))),
        }
    }

    async fn slack(&self, notice: &Notice, raw: &str) -> Outcome {
        let url = match url::Url::parse(raw) {
            Ok(u) => u,
            Err(e) => return Outcome::GiveUp(format!("notify_slack_url does not parse: {e}")),
        };
        let host = url.host_str().unwrap_or("").to_string();
        // A literal address never reaches the resolver: checked here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| !self.config.allow.permits(*ip)) {
            return Outcome::GiveUp(format!(
                "blocked_target: {ip} is not a public address (allow it with HERALD_ALLOW_PRIVATE_TARGETS)"
            ));
        }
        let body = serde_json::json!({ "text": notice.slack_text() });
        match self.http.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => Outcome::Sent,
            Ok(r) => {
                let status = r.status();
                let why = format!("{host} answered {status}");
                match status.as_u16() {
                    // Redirects are not followed (the URL would be sent on elsewhere): a URL
                    // that redirects never works.
                    300..=399 => Outcome::GiveUp(format!(
                        "{why}, a redirect, which Herald does not follow: set notify_slack_url to the webhook's own URL"
                    )),
                    429 => match r.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()) {
                        Some(v) => match retry_after(v, self.clock.now()) {
                            Some(after) => Outcome::RetryAfter(why, after),
                            None => Outcome::Retry(why),
                        },
                        None => Outcome::Retry(why),
                    },
                    408 => Outcome::Retry(why),
                    400..=499 => Outcome::GiveUp(why),
                    _ => Outcome::Retry(why),
                }
            }
            Err(e) => {
                // The URL is the webhook's secret: never in the text.
                let e = e.without_url();
                if blocked(&e) {
                    Outcome::GiveUp(format!("blocked_target: {host} {}", chain(&e)))
                } else {
                    Outcome::Retry(format!("{host}: {}", chain(&e)))
                }
            }
        }
    }

    /// Removes settled notices made before `now - keep`, tenant by tenant.
    async fn prune(&self, now: DateTime<Utc>, keep: Duration) -> Result<u64, PollerError> {
        let cutoff = now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        let first = herald_core::policy::first_notice_id_at(cutoff);
        let client = self.pool.get().await?;
        let mut n = 0;
        for tenant in herald_core::db::tenants(&client).await? {
            n += client.execute(sql::PRUNE, &[&tenant, &first]).await?;
        }
        Ok(n)
    }
}

/// The SMTP transport from `HERALD_SMTP_URL` and `HERALD_SMTP_FROM`.
fn mailer(url: &SmtpUrl, from: &str, timeout: Duration) -> Result<Mailer, NoticeError> {
    let how = "write smtp://host:25, smtp://user:password@host:587?tls=required (STARTTLS) or \
               smtps://user:password@host:465 (TLS), with the user and password percent-encoded";
    let parsed = url::Url::parse(&url.0).map_err(|e| NoticeError::SmtpUrl(format!("not a URL ({e}); {how}")))?;
    let server =
        format!("{}:{}", parsed.host_str().unwrap_or(""), parsed.port().map_or("default".into(), |p| p.to_string()));
    let plain = parsed.scheme() == "smtp" && !parsed.query_pairs().any(|(k, v)| k == "tls" && v == "required");
    if plain && parsed.password().is_some() {
        tracing::warn!(%server, "HERALD_SMTP_URL sends a password without TLS (or only if the server offers it); add ?tls=required or use smtps://");
    }
    // lettre's errors here name the scheme or the part that is wrong, never the URL itself.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url.0)
        .map_err(|e| NoticeError::SmtpUrl(format!("{e}; {how}")))?
        .timeout(Some(timeout))
        .build();
    let from = from.trim().parse::<Mailbox>().map_err(|e| {
        NoticeError::SmtpFrom(format!(
            "{from:?} is not a mailbox ({e}): write `Herald <herald@example.com>` or herald@example.com"
        ))
    })?;
    Ok(Mailer { transport, from, server })
}

/// An SMTP error with its causes (a refused connection says so only in its source).
fn smtp_error(e: &lettre::transport::smtp::Error) -> String {
    chain(e)
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !s.contains(&more) {
            s.push_str(": ");
            s.push_str(&more);
        }
        source = inner.source();
    }
    s
}

/// Whether the SSRF guard refused the connection.
fn blocked(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(inner) = source {
        if inner.downcast_ref::<herald_core::targets::BlockedTarget>().is_some() {
            return true;
        }
        source = inner.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: &str) -> Notice {
        Notice {
            tenant: "acme".parse().unwrap(),
            id: "ntc_01J00000000000000000000000".into(),
            endpoint_id: "ep_01J00000000000000000000000".into(),
            kind: kind.into(),
            channel: "email".into(),
            detail: serde_json::json!({
                "url": "https://hooks.example.com/in?token=s3cret",
                "event_id": "evt_1", "delivery_id": "dlv_1",
                "last_error": "http_status: the receiver answered 500 <Internal> & more",
                "reason": null,
            }),
            attempts: 1,
            created_at: "2025-03-01T12:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn the_text_names_the_endpoint_its_url_the_change_the_error_and_when() {
        let n = notice("failing");
        assert_eq!(n.subject(), "[Herald] acme: endpoint ep_01J00000000000000000000000 is failing");
        let text = n.email_text();
        for part in [
            "ep_01J00000000000000000000000",
            "is failing",
            "https://hooks.example.com/in?…",
            "the receiver answered 500",
            "2025-03-01T12:00:00Z",
            "evt_1",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        assert!(!text.contains("s3cret"), "the URL's query is left out: {text}");
        let slack = n.slack_text();
        assert!(slack.contains("`ep_01J00000000000000000000000`") && slack.contains("is failing"), "{slack}");
        assert!(slack.contains("500 &lt;Internal&gt; &amp; more"), "Slack's escapes: {slack}");
        assert!(!slack.contains("s3cret"));

        let r = notice("recovered");
        assert!(r.subject().ends_with("has recovered"));
        assert!(!r.email_text().contains("Last error"), "a recovery has no error to show");
        assert!(notice("disabled").email_text().contains("/enable"));
        assert_eq!(wrap("a bb ccc", 4), "a bb\nccc");
    }

    #[test]
    fn retries_follow_the_schedule_until_its_total_has_passed_since_the_change() {
        let schedule: RetrySchedule = "10s,1m".parse().unwrap();
        let made: DateTime<Utc> = "2025-03-01T12:00:00Z".parse().unwrap();
        let at = |secs: i64| made + chrono::Duration::seconds(secs);
        let mut rng = rand::rng();
        let retry = Outcome::Retry("connection refused".into());
        let (state, next, err) = settle(&retry, 1, made, &schedule, at(1), &mut rng);
        assert_eq!(state, "pending");
        let wait = next.unwrap() - at(1);
        assert!(wait >= chrono::Duration::seconds(9) && wait <= chrono::Duration::seconds(11), "{wait}");
        assert_eq!(err.as_deref(), Some("connection refused"));
        let (state, next, _) = settle(&retry, 2, made, &schedule, at(12), &mut rng);
        assert!(state == "pending" && next.unwrap() - at(12) >= chrono::Duration::seconds(54));
        // Never past the deadline (made + 70 s): the last attempt is at it.
        let (state, next, _) = settle(&retry, 2, made, &schedule, at(40), &mut rng);
        assert_eq!((state, next), ("pending", Some(at(70))));
        // Past the schedule's steps but before the deadline: its last step, up to the deadline.
        let (state, next, _) = settle(&retry, 5, made, &schedule, at(30), &mut rng);
        assert_eq!((state, next), ("pending", Some(at(70))));
        let (state, next, err) = settle(&retry, 3, made, &schedule, at(70), &mut rng);
        assert_eq!((state, next), ("failed", None));
        assert!(err.unwrap().contains("given up: not sent within 1m10s"), "by age");
        // A notice that waited behind others for longer than the schedule gives up at its
        // first failed attempt: its age counts, not its attempts.
        let (state, _, err) = settle(&retry, 1, made, &schedule, at(3600), &mut rng);
        assert_eq!(state, "failed");
        assert!(err.unwrap().contains("after 1 attempts"));
        let unreachable = Outcome::Unreachable("smtp 127.0.0.1:25: connection refused".into());
        assert_eq!(settle(&unreachable, 1, made, &schedule, at(1), &mut rng).0, "pending");
        assert_eq!(settle(&Outcome::GiveUp("550".into()), 1, made, &schedule, at(1), &mut rng).0, "failed");
        assert_eq!(settle(&Outcome::Sent, 1, made, &schedule, at(1), &mut rng), ("sent", None, None));
        assert_eq!(settle(&Outcome::Dropped("off".into()), 1, made, &schedule, at(1), &mut rng).0, "dropped");
    }

    #[test]
    fn a_retry_after_is_honoured_up_to_the_deadline() {
        let schedule: RetrySchedule = "10s,1m".parse().unwrap();
        let made: DateTime<Utc> = "2025-03-01T12:00:00Z".parse().unwrap();
        let mut rng = rand::rng();
        let limited = |s| Outcome::RetryAfter("hooks.slack.com answered 429".into(), Duration::from_secs(s));
        // Longer than the step: it is waited for.
        let (state, next, _) = settle(&limited(30), 1, made, &schedule, made, &mut rng);
        assert_eq!((state, next), ("pending", Some(made + chrono::Duration::seconds(30))));
        // Shorter: the step stands.
        let (_, next, _) = settle(&limited(1), 1, made, &schedule, made, &mut rng);
        assert!(next.unwrap() - made >= chrono::Duration::seconds(9));
        // Past the deadline: given up now rather than sent too soon or too late.
        let (state, _, err) = settle(&limited(3600), 1, made, &schedule, made, &mut rng);
        assert_eq!(state, "failed");
        assert!(err.unwrap().contains("asked to wait 1h"));
        assert_eq!(retry_after("120", made), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("Sat, 01 Mar 2025 12:01:00 GMT", made), Some(Duration::from_secs(60)));
        assert_eq!(retry_after("soon", made), None);
    }

    #[test]
    fn the_default_schedule_gives_up_within_a_day() {
        let total = give_up_after(&NoticeConfig::default().retry_schedule).as_secs();
        assert_eq!(total, 23 * 3600 + 21 * 60 + 10);
        // A claim outlasts an attempt and the waits around it.
        let c = NoticeConfig::default();
        assert!(c.lease() >= c.timeout + 2 * herald_core::db::POOL_TIMEOUT, "{:?}", c.lease());
    }

    #[test]
    fn prune_finds_old_notices_by_their_ids() {
        let t: DateTime<Utc> = "2025-03-01T12:00:00Z".parse().unwrap();
        let first = herald_core::policy::first_notice_id_at(t);
        let before = herald_core::id::new_id(herald_core::policy::NOTICE_PREFIX, t - chrono::Duration::milliseconds(1));
        let at = herald_core::id::new_id(herald_core::policy::NOTICE_PREFIX, t);
        assert!(before < first && first <= at, "{before} < {first} <= {at}");
    }

    #[test]
    fn smtp_settings_are_checked_without_repeating_the_password() {
        let config = |url: &str| SmtpUrl(url.to_string());
        let t = Duration::from_secs(5);
        assert!(mailer(&config("smtp://127.0.0.1:2525"), "Herald <herald@example.com>", t).is_ok());
        assert!(mailer(&config("smtps://u:p%40ss@smtp.example.com:465"), "herald@example.com", t).is_ok());
        assert!(mailer(&config("smtp://smtp.example.com:587?tls=required"), "herald@example.com", t).is_ok());
        for bad in ["imap://u:hunter2@mail.example.com", "smtp://u:hunter2@mail.example.com?tls=sometimes", "hunter2"] {
            let Err(e) = mailer(&config(bad), "herald@example.com", t) else { panic!("{bad} was taken") };
            let said = e.to_string();
            assert!(said.starts_with("HERALD_SMTP_URL") && !said.contains("hunter2"), "{said}");
        }
        let Err(e) = mailer(&config("smtp://127.0.0.1:2525"), "not a mailbox", t) else { panic!() };
        assert!(e.to_string().starts_with("HERALD_SMTP_FROM"), "{e}");
        assert_eq!(format!("{:?}", config("smtps://u:hunter2@h")), "SmtpUrl(..)");
    }
}
