//! API tokens: `hrld_<tenant>.<43 characters of base64url>`. The tenant in the token lets the
//! lookup name one tenant (shared/scale-out.md, rule 2); only the SHA-256 of the token is stored.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "hrld_";

/// A new token for `tenant`, to be printed once.
pub fn generate(tenant: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!("{PREFIX}{tenant}.{secret}")
}

/// What is stored: the SHA-256 of the whole token. A token has 256 random bits, so a plain
/// hash (no salt, no slow KDF) is enough, as for GitHub's and Stripe's keys.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The tenant a token claims to belong to, if it has the token's shape at all.
pub fn tenant_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    let (tenant, secret) = rest.rsplit_once('.')?;
    (!tenant.is_empty() && secret.len() == 43).then_some(tenant)
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
    }
}
