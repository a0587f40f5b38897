//! A tenant's settings, set by the operator (`herald tenant set`), read by the tenant
//! (`GET /v1/tenant`): its URL policy, applied to endpoints and callbacks where they are set and
//! again at every attempt, and whether its callbacks may go unsigned.

use url::Url;

use crate::id::TenantId;
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
}

pub const SELECT: &str =
    "SELECT unsigned_callbacks, require_https, allowed_domains FROM herald.tenants WHERE tenant_id = $1";

pub const UPDATE: &str = "UPDATE herald.tenants SET \
       unsigned_callbacks = coalesce($2, unsigned_callbacks), require_https = coalesce($3, require_https), \
       allowed_domains = CASE WHEN $4 THEN $5 ELSE allowed_domains END \
     WHERE tenant_id = $1 RETURNING unsigned_callbacks, require_https, allowed_domains";

impl TenantSettings {
    pub fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            unsigned_callbacks: row.try_get(0)?,
            require_https: row.try_get(1)?,
            allowed_domains: row.try_get(2)?,
        })
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
    fn patterns_are_host_names() {
        assert_eq!(domain_pattern("*.Example.COM").unwrap(), "*.example.com");
        assert_eq!(domain_pattern("api.example.com.").unwrap(), "api.example.com");
        for bad in ["", "*.", "a b", "*.*.x", "-a.com", "x_y.com", "https://a.com"] {
            assert!(domain_pattern(bad).is_err(), "{bad}");
        }
    }
}
