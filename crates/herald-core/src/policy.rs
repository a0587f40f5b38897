//! A tenant's settings, set by the operator (`herald tenant set`), read by the tenant
//! (`GET /v1/tenant`): its URL policy, applied to endpoints and callbacks where they are set and
//! again at every attempt, and whether its callbacks may go unsigned. Also its notice channels
//! (an email address, a Slack-compatible incoming-webhook URL), which the tenant may set itself
//! (`PATCH /v1/tenant`), and the notices an endpoint's health change leaves for them
//! ([`enqueue_notices`]; the outbox-poller's `notices` module sends them).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use url::Url;

use crate::id::TenantId;
use crate::targets::AllowList;
use crate::validate::Invalid;

/// A tenant's settings as stored in `herald.tenants`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantSettings {
    /// Callbacks published without a secret go unsigned (else Herald makes one).
    pub unsigned_callbacks: bool,
    /// Endpoints and callbacks must be `https://`.
    pub require_https: bool,
    /// Hosts endpoints and callbacks may be on: exact names or `*.example.com` (any name below
    /// it, not itself); `None` for any.
    pub allowed_domains: Option<Vec<String>>,
    /// Where failing-endpoint notices go by email; `None`: not by email.
    pub notify_email: Option<String>,
    /// The Slack-compatible incoming-webhook URL failing-endpoint notices are posted to; `None`:
    /// not to Slack.
    pub notify_slack_url: Option<String>,
}

/// A change to a tenant's settings: `None` leaves a setting as it is; for those that may be
/// unset, `Some(None)` unsets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub unsigned_callbacks: Option<bool>,
    pub require_https: Option<bool>,
    pub allowed_domains: Option<Option<Vec<String>>>,
    pub notify_email: Option<Option<String>>,
    pub notify_slack_url: Option<Option<String>>,
}

pub const SELECT: &str = "SELECT unsigned_callbacks, require_https, allowed_domains, notify_email, notify_slack_url \
     FROM herald.tenants WHERE tenant_id = $1";

pub const UPDATE: &str = "UPDATE herald.tenants SET \
       unsigned_callbacks = coalesce($2, unsigned_callbacks), require_https = coalesce($3, require_https), \
       allowed_domains = CASE WHEN $4 THEN $5 ELSE allowed_domains END, \
       notify_email = CASE WHEN $6 THEN $7 ELSE notify_email END, \
       notify_slack_url = CASE WHEN $8 THEN $9 ELSE notify_slack_url END \
     WHERE tenant_id = $1 \
     RETURNING unsigned_callbacks, require_https, allowed_domains, notify_email, notify_slack_url";

impl TenantSettings {
    pub fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            unsigned_callbacks: row.try_get(0)?,
            require_https: row.try_get(1)?,
            allowed_domains: row.try_get(2)?,
            notify_email: row.try_get(3)?,
            notify_slack_url: row.try_get(4)?,
        })
    }

    /// Applies `change` to `tenant`'s settings; the settings as they are then, or `None` if
    /// there is no such tenant.
    pub async fn update(
        client: &impl GenericClient,
        tenant: &TenantId,
        change: &SettingsChange,
    ) -> Result<Option<Self>, tokio_postgres::Error> {
        let row = client
            .query_opt(
                UPDATE,
                &[
                    tenant,
                    &change.unsigned_callbacks,
                    &change.require_https,
                    &change.allowed_domains.is_some(),
                    &change.allowed_domains.clone().flatten(),
                    &change.notify_email.is_some(),
                    &change.notify_email.clone().flatten(),
                    &change.notify_slack_url.is_some(),
                    &change.notify_slack_url.clone().flatten(),
                ],
            )
            .await?;
        row.map(|r| Self::from_row(&r)).transpose()
    }

    /// The tenant's settings; `None` if there is no such tenant.
    pub async fn load(
        client: &tokio_postgres::Client,
        tenant: &TenantId,
    ) -> Result<Option<Self>, tokio_postgres::Error> {
        client.query_opt(SELECT, &[tenant]).await?.map(|r| Self::from_row(&r)).transpose()
    }

    /// Whether the policy lets `url` be sent to; the reason if not (`field` names the URL).
    pub fn permits(&self, field: &str, url: &Url) -> Result<(), Invalid> {
        if self.require_https && url.scheme() != "https" {
            return Err(Invalid::new(
                "url_not_allowed",
                format!("{field}: this tenant accepts https:// URLs only (its operator set require_https)"),
            ));
        }
        if let Some(domains) = &self.allowed_domains {
            let host = url.host_str().unwrap_or("").trim_end_matches('.').to_ascii_lowercase();
            if !domains.iter().any(|d| domain_matches(d, &host)) {
                return Err(Invalid::new(
                    "url_not_allowed",
                    format!("{field}: {host} is not among this tenant's allowed domains ({})", domains.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

fn domain_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => {
            host.len() > parent.len() + 1 && host.ends_with(parent) && host[..host.len() - parent.len()].ends_with('.')
        }
        None => host == pattern,
    }
}

/// An allowed-domain pattern as the operator writes it: a host name, or `*.` and one; kept in
/// lower case.
pub fn domain_pattern(p: &str) -> Result<String, String> {
    let lower = p.trim().trim_end_matches('.').to_ascii_lowercase();
    let name = lower.strip_prefix("*.").unwrap_or(&lower);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("{p:?} is not a domain: write a host name like api.example.com, or *.example.com"));
    }
    Ok(lower)
}

/// The longest notice email address accepted (RFC 5321's limit on a path, less its `<>`).
pub const MAX_EMAIL_LEN: usize = 254;

/// A notice email address: `local@domain`, the local part a dot-atom (letters, digits and
/// ``!#$%&'*+/=?^_`{|}~-``, dots between), the domain a host name; kept as written (white
/// space around it is refused: the command line trims it first). No display name, no quoted
/// local part, no address literal: one plain address.
pub fn notify_email(s: &str) -> Result<String, Invalid> {
    let bad = |why: &str| {
        let shown: String = s.chars().take(64).collect();
        Invalid::new(
            "invalid_notify_email",
            format!(
                "notify_email {shown:?} {why}: give one plain address like ops@example.com (at most {MAX_EMAIL_LEN} characters), or null to stop email notices"
            ),
        )
    };
    if s.is_empty() {
        return Err(bad("is empty"));
    }
    if s.len() > MAX_EMAIL_LEN {
        return Err(bad("is too long"));
    }
    let Some((local, domain)) = s.rsplit_once('@') else { return Err(bad("has no @")) };
    let atom = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b);
    if local.is_empty() || local.len() > 64 || local.split('.').any(|part| part.is_empty() || !part.bytes().all(atom)) {
        return Err(bad("has a local part (before the @) that is not a plain one"));
    }
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(label) {
        return Err(bad("has a domain (after the @) that is not a host name"));
    }
    Ok(s.to_string())
}

/// A Slack-compatible incoming-webhook URL (Slack's `https://hooks.slack.com/services/...`, or
/// Mattermost's, Rocket.Chat's, Discord's `/slack` one): a target like an endpoint's (see
/// [`crate::validate::target_url`]: a literal non-public host is refused unless `allow` permits
/// it), and `https://` unless non-public targets are allowed at all (a receiver on one's own
/// network, a test). The sender checks the addresses it connects to again.
pub fn notify_slack_url(raw: &str, allow: &AllowList) -> Result<Url, Invalid> {
    let url = crate::validate::target_url("notify_slack_url", raw, allow)?;
    if url.scheme() != "https" && *allow == AllowList::none() {
        return Err(Invalid::new(
            "invalid_url",
            "notify_slack_url must start with https:// (an incoming webhook's URL carries its secret); http:// is taken only where HERALD_ALLOW_PRIVATE_TARGETS is set",
        ));
    }
    Ok(url)
}

/// The prefix of a notice's id (a ULID after it: time-ordered, see [`crate::id::new_id`]).
pub const NOTICE_PREFIX: &str = "ntc_";

/// The smallest notice id made at `at`: every notice made before it sorts below (retention
/// finds old notices by the primary key, `(tenant_id, notice_id)`).
pub fn first_notice_id_at(at: DateTime<Utc>) -> String {
    let ms = at.timestamp_millis().max(0) as u64;
    format!("{NOTICE_PREFIX}{}", ulid::Ulid::from_parts(ms, 0))
}

/// Which of the tenant's notice channels are on (read in the delivery-worker's transaction).
pub const NOTICE_CHANNELS: &str =
    "SELECT notify_email IS NOT NULL, notify_slack_url IS NOT NULL FROM herald.tenants WHERE tenant_id = $1";

/// One notice, due at once.
pub const INSERT_NOTICE: &str = "INSERT INTO herald.notices \
       (tenant_id, notice_id, endpoint_id, kind, channel, detail, state, attempts, next_attempt_at, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)";

/// An endpoint's health change, for the tenant's notice channels: `kind` is `failing`,
/// `disabled` or `recovered`; `detail` what the text says (its `url`, `event_id`,
/// `delivery_id`, `last_error`, `reason`). Called in the transaction that changes the
/// endpoint's status, so a change leaves at most one notice per channel; a tenant with no
/// channel on gets none (one read of its row). Answers how many it left.
pub async fn enqueue_notices(
    tx: &impl GenericClient,
    tenant: &TenantId,
    endpoint: &str,
    kind: &str,
    detail: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<usize, tokio_postgres::Error> {
    let Some(row) = tx.query_opt(NOTICE_CHANNELS, &[tenant]).await? else { return Ok(0) };
    let mut n = 0;
    for (on, channel) in [(row.try_get::<_, bool>(0)?, "email"), (row.try_get::<_, bool>(1)?, "slack")] {
        if on {
            let id = crate::id::new_id(NOTICE_PREFIX, now);
            tx.execute(INSERT_NOTICE, &[tenant, &id, &endpoint, &kind, &channel, detail, &now]).await?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn https_and_domains_are_enforced() {
        let open = TenantSettings::default();
        assert!(open.permits("url", &url("http://anything.example/")).is_ok());
        let strict = TenantSettings {
            require_https: true,
            allowed_domains: Some(vec!["hooks.example.com".into(), "*.acme.io".into()]),
            ..Default::default()
        };
        assert!(strict.permits("url", &url("https://hooks.example.com/x")).is_ok());
        assert!(strict.permits("url", &url("https://a.b.acme.io/")).is_ok());
        for bad in ["http://hooks.example.com/", "https://acme.io/", "https://evilacme.io/", "https://example.com/"] {
            let e = strict.permits("url", &url(bad)).unwrap_err();
            assert_eq!(e.code, "url_not_allowed", "{bad}");
        }
    }

    #[test]
    fn notice_channels_are_checked() {
        assert_eq!(notify_email("ops@example.com").unwrap(), "ops@example.com");
        assert!(notify_email(" ops@example.com").is_err(), "white space is not trimmed away");
        for ok in ["a.b+tag@mail.example.co.uk", "x@localhost", "o'neil@example.com"] {
            assert!(notify_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ops",
            "@example.com",
            "ops@",
            "a..b@example.com",
            ".a@example.com",
            "a b@example.com",
            "Ops <ops@example.com>",
            "ops@exa_mple.com",
            "ops@-example.com",
            "ops@example.com.",
            "\"q\"@example.com",
        ] {
            let e = notify_email(bad).unwrap_err();
            assert_eq!(e.code, "invalid_notify_email", "{bad}");
            assert!(e.message.contains("ops@example.com"), "says how to fix it: {}", e.message);
        }
        assert!(notify_email(&format!("{}@example.com", "a".repeat(65))).is_err(), "a local part over 64");
        assert!(notify_email(&format!("ops@{}com", "a.".repeat(125))).is_err(), "over 254 in all");

        let none = AllowList::none();
        assert!(notify_slack_url("https://hooks.slack.com/services/T0/B0/x", &none).is_ok());
        let e = notify_slack_url("http://hooks.slack.com/services/T0/B0/x", &none).unwrap_err();
        assert!(e.message.contains("https://"), "{}", e.message);
        assert_eq!(notify_slack_url("https://127.0.0.1/x", &none).unwrap_err().code, "blocked_target");
        assert_eq!(notify_slack_url("ftp://hooks.slack.com/x", &none).unwrap_err().code, "invalid_url");
        // Where non-public targets are allowed (a test, one's own network), http:// too.
        assert!(notify_slack_url("http://127.0.0.1:9/slack", &AllowList::loopback()).is_ok());
    }

    #[test]
    fn patterns_are_host_names() {
        assert_eq!(domain_pattern("*.Example.COM").unwrap(), "*.example.com");
        assert_eq!(domain_pattern("api.example.com.").unwrap(), "api.example.com");
        for bad in ["", "*.", "a b", "*.*.x", "-a.com", "x_y.com", "https://a.com"] {
            assert!(domain_pattern(bad).is_err(), "{bad}");
        }
    }
}
