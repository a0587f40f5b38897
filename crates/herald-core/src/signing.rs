//! Webhook signatures (contract section 1): Standard Webhooks 1.0, keyed with the base64 key of
//! a `whsec_` secret, and the GitHub-style `hmac-sha256-hex` scheme, keyed with the secret's own
//! bytes (GitHub's `X-Hub-Signature-256`, HumanConnection's `X-HumanConnection-Signature`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SECRET_PREFIX: &str = "whsec_";

/// How an endpoint's webhooks are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `webhook-signature: v1,<base64>` over `{id}.{timestamp}.{body}` (the default).
    StandardWebhooks,
    /// `<header>: sha256=<hex>` over the body, keyed with the secret's bytes.
    HmacSha256Hex,
}

impl Scheme {
    pub const NAMES: [&'static str; 2] = ["standard-webhooks", "hmac-sha256-hex"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard-webhooks" => Some(Self::StandardWebhooks),
            "hmac-sha256-hex" => Some(Self::HmacSha256Hex),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::StandardWebhooks => Self::NAMES[0],
            Self::HmacSha256Hex => Self::NAMES[1],
        }
    }

    /// Checks a client-given secret for this scheme: `whsec_` + base64 for Standard Webhooks;
    /// for the hex scheme any 16 to 256 printable ASCII characters (a generated `whsec_` one too).
    pub fn secret(self, s: &str) -> Result<Secret, String> {
        match self {
            Self::StandardWebhooks => Secret::parse(s),
            Self::HmacSha256Hex => Secret::parse_raw(s),
        }
    }
}

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

    /// Checks a secret used as it is written (the hex scheme's): 16 to 256 printable ASCII
    /// characters, spaces included.
    pub fn parse_raw(s: &str) -> Result<Self, String> {
        if !(16..=256).contains(&s.len()) || !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(format!(
                "a secret for hmac-sha256-hex is 16 to 256 printable ASCII characters (this one: {} characters{}); omit it to let Herald generate one",
                s.chars().count(),
                if s.bytes().all(|b| (0x20..0x7f).contains(&b)) { "" } else { ", not all printable ASCII" }
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

/// `sha256=<hex HMAC-SHA256(secret, body)>`, keyed with the secret's bytes as written.
pub fn hmac_sha256_hex(secret: &Secret, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.0.as_bytes()).expect("HMAC takes any key length");
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
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let secret = Scheme::HmacSha256Hex.secret("It's a Secret to Everybody").unwrap();
        assert_eq!(
            hmac_sha256_hex(&secret, b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        // A whsec_ secret is keyed as written too, not base64-decoded.
        let w = Scheme::HmacSha256Hex.secret("whsec_your_signing_secret").unwrap();
        assert_ne!(hmac_sha256_hex(&w, b"{}"), hmac_sha256_hex(&Secret::generate(), b"{}"));
        assert!(Scheme::HmacSha256Hex.secret("short").is_err());
        assert!(Scheme::HmacSha256Hex.secret("sixteen-chars-ok").is_ok());
        assert!(Scheme::HmacSha256Hex.secret("line\nbreak-is-not-ok").is_err());
        assert!(Scheme::HmacSha256Hex.secret(&"x".repeat(257)).is_err());
        assert!(Scheme::StandardWebhooks.secret("whsec_your_signing_secret").is_err());
    }
}
