//! Webhook signatures (contract section 1): Standard Webhooks 1.0 and the GitHub-style
//! `hmac-sha256-hex` scheme, and the `whsec_` secrets both use.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SECRET_PREFIX: &str = "whsec_";

/// A secret that never prints itself: `{:?}` shows `Secret(..)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A new random secret of 32 bytes.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
    }

    /// Checks a client-given secret: `whsec_` + base64 of 24 to 64 bytes.
    pub fn parse(s: &str) -> Result<Self, String> {
        let key = decode_key(s).ok_or_else(|| {
            "a secret is `whsec_` followed by the base64 of 24 to 64 random bytes; omit it to let Herald generate one".to_string()
        })?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!(
                "the secret's key is {} bytes; use 24 to 64 random bytes, base64-encoded after `whsec_`",
                key.len()
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn key(&self) -> Vec<u8> {
        decode_key(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn decode_key(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s.strip_prefix(SECRET_PREFIX)?).ok()
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn standard_webhooks(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(&secret.key()).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// `sha256=<hex HMAC-SHA256(key, body)>`.
pub fn hmac_sha256_hex(secret: &Secret, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(&secret.key()).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        // The vector from the Standard Webhooks reference libraries.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = standard_webhooks(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_checked_and_never_printed() {
        let s = Secret::generate();
        assert!(Secret::parse(s.expose()).is_ok());
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert!(Secret::parse("whsec_c2hvcnQ=").is_err());
        assert!(Secret::parse("nope").is_err());
        assert!(Secret::parse("whsec_!!!").is_err());
    }

    #[test]
    fn hex_scheme_is_github_style() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = hmac_sha256_hex(&secret, b"{}");
        assert!(sig.starts_with("sha256=") && sig.len() == 71);
    }
}
