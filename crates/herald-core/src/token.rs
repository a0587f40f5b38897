//! API tokens: `hrld_<tenant>.<43 characters of base64url>`. The tenant in the token lets the
//! lookup name one tenant (shared/scale-out.md, rule 2); only the SHA-256 of the token is stored.
//! Each has a [`Scope`]. Operator tokens (`hrldop_<43 characters>`) reach `/v1/admin` only.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "hrld_";
const OPERATOR_PREFIX: &str = "hrldop_";

/// What a tenant's token may do (docs/api.md, "Tokens").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything the tenant may do.
    Full,
    /// Publish events and operations, and read events and operations.
    Publish,
    /// Read everything, change nothing.
    Read,
    /// Answer operations (approvals, human contacts), and read them.
    Respond,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Full, Scope::Publish, Scope::Read, Scope::Respond];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Publish => "publish",
            Scope::Read => "read",
            Scope::Respond => "respond",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether a token of this scope may call `method` on `route` (the route's pattern, as
    /// `/v1/events/{id}`). Every `/v1` route not named here is `full` only for changes and open
    /// to `read` for GET.
    pub fn allows(self, method: &str, route: &str) -> bool {
        let read = matches!(method, "GET" | "HEAD");
        let operations = matches!(
            route,
            "/v1/approvals" | "/v1/approvals/{call_id}" | "/v1/human_contacts" | "/v1/human_contacts/{call_id}"
        );
        let tokens = route == "/v1/tokens" || route.starts_with("/v1/tokens/");
        if matches!(route, "/v1/sessions" | "/v1/sessions/current") {
            // A link's session itself: open to every caller (it answers for its cookie only).
            return true;
        }
        match self {
            Scope::Full => true,
            Scope::Read => read && !tokens,
            Scope::Publish => {
                let events = route == "/v1/events" || route.starts_with("/v1/events/");
                (events && (read || (method == "POST" && route == "/v1/events")))
                    || (operations && (read || method == "POST"))
                    || (read && route == "/v1/tenant")
            }
            Scope::Respond => {
                (operations && read)
                    || (method == "POST"
                        && matches!(route, "/v1/approvals/{call_id}/respond" | "/v1/human_contacts/{call_id}/respond"))
                    || (read && route == "/v1/tenant")
            }
        }
    }

    /// What the scope may do, for the 403 message.
    pub fn describe(self) -> &'static str {
        match self {
            Scope::Full => "everything",
            Scope::Publish => "publish events and operations and read them",
            Scope::Read => "read, never change",
            Scope::Respond => "answer approvals and human contacts, and read them",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a link opens (docs/api.md, "Links"), and so what its session may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// `/inbox`: list, read and answer operations, as the link's responder.
    Inbox,
    /// `/portal`: manage endpoints (those of the link's consumer), and read and retry their
    /// deliveries.
    Portal,
}

impl LinkKind {
    pub const ALL: [LinkKind; 2] = [LinkKind::Inbox, LinkKind::Portal];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Inbox => "inbox",
            LinkKind::Portal => "portal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether a session of this kind of link may call `method` on `route` (its pattern). Both
    /// reach their own session. Narrower than any token: an inbox's session not even the
    /// tenant's settings, a portal's nothing but endpoints and what hangs off them.
    pub fn allows(self, method: &str, route: &str) -> bool {
        let read = matches!(method, "GET" | "HEAD");
        if route == "/v1/sessions/current" {
            return true;
        }
        match self {
            LinkKind::Inbox => {
                let operations = matches!(
                    route,
                    "/v1/approvals" | "/v1/approvals/{call_id}" | "/v1/human_contacts" | "/v1/human_contacts/{call_id}"
                );
                (operations && read)
                    || (method == "POST"
                        && matches!(route, "/v1/approvals/{call_id}/respond" | "/v1/human_contacts/{call_id}/respond"))
            }
            LinkKind::Portal => match route {
                "/v1/endpoints" => read || method == "POST",
                "/v1/endpoints/{id}" => read || matches!(method, "PATCH" | "DELETE"),
                "/v1/endpoints/{id}/deliveries"
                | "/v1/endpoints/{id}/attempts"
                | "/v1/endpoints/{id}/stats"
                | "/v1/deliveries/{id}"
                | "/v1/deliveries/{id}/attempts"
                | "/v1/replays"
                | "/v1/replays/{id}" => read,
                "/v1/endpoints/{id}/rotate-secret"
                | "/v1/endpoints/{id}/test"
                | "/v1/endpoints/{id}/enable"
                | "/v1/endpoints/{id}/disable"
                | "/v1/endpoints/{id}/replay"
                | "/v1/deliveries/{id}/retry" => method == "POST",
                _ => false,
            },
        }
    }

    /// What a session of this kind may do, for the 403 message.
    pub fn describe(self) -> &'static str {
        match self {
            LinkKind::Inbox => "an inbox link answers approvals and human contacts only",
            LinkKind::Portal => "a portal link manages endpoints and their deliveries only",
        }
    }
}

impl std::fmt::Display for LinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new token for `tenant`, to be printed once.
pub fn generate(tenant: &str) -> String {
    generate_with(PREFIX, tenant)
}

/// A link's credential (`hrldl_<tenant>.<43>`, in a link's fragment) or a session's
/// (`hrlds_<tenant>.<43>`, in an HttpOnly cookie): like a tenant token, with another prefix.
pub fn generate_with(prefix: &str, tenant: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{tenant}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The tenant a link or session credential names, if it has that shape.
pub fn tenant_of_with<'a>(prefix: &str, credential: &'a str) -> Option<&'a str> {
    let rest = credential.strip_prefix(prefix)?;
    let (tenant, secret) = rest.rsplit_once('.')?;
    (!tenant.is_empty() && secret.len() == 43).then_some(tenant)
}

pub const LINK_PREFIX: &str = "hrldl_";
pub const SESSION_PREFIX: &str = "hrlds_";

/// A new operator token, to be printed once.
pub fn generate_operator() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{OPERATOR_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `token` has an operator token's shape.
pub fn is_operator(token: &str) -> bool {
    token.strip_prefix(OPERATOR_PREFIX).is_some_and(|s| s.len() == 43)
}

/// What is stored: the SHA-256 of the whole token. A token has 256 random bits, so a plain
/// hash (no salt, no slow KDF) is enough, as for GitHub's and Stripe's keys.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The tenant a token claims to belong to, if it has the token's shape at all.
pub fn tenant_of(token: &str) -> Option<&str> {
    tenant_of_with(PREFIX, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_tenant() {
        let t = generate("acme-1");
        assert_eq!(tenant_of(&t), Some("acme-1"));
        assert_eq!(hash(&t).len(), 32);
        assert_ne!(generate("acme-1"), t);
        assert_eq!(tenant_of("hrld_acme"), None);
        assert_eq!(tenant_of("Bearer x"), None);
        let op = generate_operator();
        assert!(is_operator(&op) && tenant_of(&op).is_none() && !is_operator(&t));
    }

    #[test]
    fn scopes_allow_what_docs_say() {
        use Scope::*;
        let may = |s: Scope, m: &str, r: &str| s.allows(m, r);
        assert!(may(Publish, "POST", "/v1/events") && may(Publish, "GET", "/v1/events/{id}"));
        assert!(!may(Publish, "POST", "/v1/endpoints") && !may(Publish, "POST", "/v1/approvals/{call_id}/respond"));
        assert!(may(Read, "GET", "/v1/endpoints") && !may(Read, "POST", "/v1/events"));
        assert!(!may(Read, "GET", "/v1/tokens") && may(Full, "DELETE", "/v1/tokens/{id}"));
        assert!(may(Respond, "POST", "/v1/human_contacts/{call_id}/respond") && may(Respond, "GET", "/v1/approvals"));
        assert!(!may(Respond, "POST", "/v1/approvals") && !may(Respond, "GET", "/v1/events"));
        assert_eq!(Scope::ALL.map(|s| Scope::parse(s.as_str())), Scope::ALL.map(Some));
    }
}
