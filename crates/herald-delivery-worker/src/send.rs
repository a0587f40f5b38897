//! One attempt: build the webhook request (contract section 1), sign it, send it with the
//! shared HTTP client, and turn whatever happened into an [`AttemptOutcome`]. Outcomes are data,
//! not errors.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herald_core::dialect::{self, PayloadFormat};
use herald_core::signing;
use herald_core::targets::AllowList;
use herald_core::trace::TraceContext;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::attempt::{AttemptOutcome, Claimed};

/// At most this much of a response is kept.
pub const EXCERPT_BYTES: usize = 4096;

/// Resolves names through [`herald_core::targets::resolve_allowed`]: every address the
/// allow-list refuses is dropped.
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

/// The one HTTP client of a worker: connection pooling, rustls, no redirects, no proxies
/// (a proxy would connect on Herald's behalf to addresses it never checked).
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow: AllowList,
    timeout: Duration,
    /// An endpoint's own timeout stops short of the lease, so that no other worker takes the
    /// delivery while this one still waits for its answer.
    longest: Duration,
}

/// What an attempt keeps of its lease after its timeout at the least.
const LEASE_SPARE: Duration = Duration::from_secs(5);

impl Sender {
    pub fn new(
        allow: AllowList,
        connect_timeout: Duration,
        timeout: Duration,
        lease: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .dns_resolver(Arc::new(GuardedResolver { allow: allow.clone() }))
            .build()?;
        let longest = lease.saturating_sub(LEASE_SPARE).max(timeout);
        Ok(Self { client, allow, timeout, longest })
    }

    /// The body a receiver gets: `{"id", "type", "created_at", "data"}`, with the data spliced
    /// in as stored (it is valid JSON text; parsing it again would rewrite its numbers), or the
    /// HumanLayer shape when the endpoint asks for it.
    pub fn body(c: &Claimed) -> Vec<u8> {
        if c.payload_format == PayloadFormat::HumanLayer {
            return dialect::humanlayer_body(&c.event_type, &c.data);
        }
        let created_at = c.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let quoted = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let mut body = Vec::with_capacity(c.data.len() + c.event_id.len() + c.event_type.len() + 80);
        body.extend_from_slice(b"{\"id\":");
        body.extend_from_slice(quoted(&c.event_id).as_bytes());
        body.extend_from_slice(b",\"type\":");
        body.extend_from_slice(quoted(&c.event_type).as_bytes());
        body.extend_from_slice(b",\"created_at\":\"");
        body.extend_from_slice(created_at.as_bytes());
        body.extend_from_slice(b"\",\"data\":");
        body.extend_from_slice(c.data.as_bytes());
        body.push(b'}');
        body
    }

    /// Sends one attempt. `now` is the signing time.
    pub async fn send(&self, c: &Claimed, trace: &TraceContext, now: DateTime<Utc>) -> AttemptOutcome {
        let started = Instant::now();
        let mut outcome = AttemptOutcome {
            started_at: now,
            duration: Duration::ZERO,
            status_code: None,
            error: None,
            detail: None,
            excerpt: None,
            retry_after: None,
        };
        let fail = |mut o: AttemptOutcome, class: &'static str, detail: String| {
            o.error = Some(class);
            o.detail = Some(format!("{class}: {detail}"));
            o.duration = started.elapsed();
            o
        };
        // A literal address never reaches the resolver: check it here. (The URL parsed when
        // the delivery was prepared.)
        if let Ok(url) = reqwest::Url::parse(&c.url) {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if let Some(ip) = literal.filter(|ip| !self.allow.permits(*ip)) {
                return fail(
                    outcome,
                    "blocked_target",
                    format!("{ip} is not a public address (allow it with HERALD_ALLOW_PRIVATE_TARGETS)"),
                );
            }
        }
        let body = Self::body(c);
        let ts = now.timestamp();
        let timeout = c.timeout.map_or(self.timeout, |t| t.min(self.longest));
        let mut req = self
            .client
            .post(&c.url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("webhook-id", c.event_id.as_str())
            .header("webhook-timestamp", ts.to_string());
        // The receiver's own (checked when set: never one of Herald's).
        for (name, value) in &c.headers.0 {
            req = req.header(name, value);
        }
        if let Some(secret) = &c.secret {
            if c.signature_scheme == "hmac-sha256-hex" {
                // One signature, the current secret's, even while a rotated-out one overlaps:
                // the header has room for one (docs/receiving.md).
                let header = c.signature_header.as_deref().unwrap_or(dialect::SIGNATURE_HEADER);
                req = req.header(header, signing::hmac_sha256_hex(secret, &body));
            } else {
                let mut sig = signing::standard_webhooks(secret, &c.event_id, ts, &body);
                if let Some(prev) = &c.previous_secret {
                    sig.push(' ');
                    sig.push_str(&signing::standard_webhooks(prev, &c.event_id, ts, &body));
                }
                req = req.header("webhook-signature", sig);
            }
        }
        // The attempt's span as parent (when Herald makes spans), the publisher's trace.
        if let Some(tp) = &trace.traceparent {
            req = req.header("traceparent", tp);
            if let Some(ts) = &trace.tracestate {
                req = req.header("tracestate", ts);
            }
        }
        let mut response = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                // The URL may carry a token in its query: keep it out of the error text.
                let (class, detail) = classify(&e.without_url(), timeout);
                return fail(outcome, class, detail);
            }
        };
        let status = response.status();
        outcome.status_code = Some(status.as_u16());
        if matches!(status.as_u16(), 429 | 503) {
            outcome.retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| crate::retry::parse_retry_after(v, now));
        }
        // Keep the first 4 KiB; the rest is not read (the connection is then not reused).
        let mut kept = Vec::new();
        let mut read_error = None;
        while kept.len() < EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(EXCERPT_BYTES - kept.len())]),
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        // PostgreSQL text cannot hold NUL: a receiver's answer must never stop results being stored.
        outcome.excerpt = Some(String::from_utf8_lossy(&kept).replace('\0', "\u{FFFD}"));
        outcome.duration = started.elapsed();
        if !status.is_success() {
            outcome.error = Some("http_status");
            outcome.detail = Some(format!("http_status: the receiver answered {status}"));
        } else if let Some(e) = read_error {
            // The status counts: a 2xx is delivered even if the rest of its body broke off.
            tracing::debug!(error = %e, delivery = %c.delivery_id, "response body broke off after a 2xx");
        }
        outcome
    }
}

/// The span of one attempt, in the event's trace (a child of its publisher's context), when
/// Herald makes spans. The URL's host only: a path or query may carry a receiver's token.
pub fn attempt_span(c: &Claimed) -> tracing::Span {
    if !herald_core::trace::on() {
        return tracing::Span::none();
    }
    let host = url::Url::parse(&c.url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    let span = tracing::info_span!("herald.attempt", otel.kind = "client", http.request.method = "POST",
        server.address = host, herald.tenant = %c.tenant_id, herald.delivery_id = %c.delivery_id,
        herald.event_id = %c.event_id, herald.event_type = %c.event_type, herald.attempt = c.attempt,
        http.response.status_code = tracing::field::Empty, error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty);
    c.trace.parent_of(&span);
    span
}

/// What the attempt came to, on its span.
pub fn record(span: &tracing::Span, outcome: &AttemptOutcome) {
    if let Some(code) = outcome.status_code {
        span.record("http.response.status_code", code);
    }
    if let Some(class) = outcome.error {
        span.record("error.type", class);
        span.record("otel.status_code", "ERROR");
    }
}

/// The error class and a sentence for a request that got no answer.
fn classify(e: &reqwest::Error, timeout: Duration) -> (&'static str, String) {
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(b) = s.downcast_ref::<herald_core::targets::BlockedTarget>() {
            return ("blocked_target", b.to_string());
        }
        chain.push_str(&s.to_string());
        chain.push_str(": ");
        source = s.source();
    }
    let chain = chain.trim_end_matches(": ").replace('\0', "\u{FFFD}");
    if e.is_timeout() {
        return ("timeout", format!("no answer within {}", herald_core::validate::format_duration(timeout)));
    }
    let lower = chain.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        return ("tls", chain);
    }
    if e.is_connect() {
        return ("connect", chain);
    }
    ("request", chain)
}
