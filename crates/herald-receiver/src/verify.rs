//! Standard Webhooks 1.0 verification (contract section 1): the `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` headers, checked against one or more `whsec_`
//! secrets.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use crate::event::{Event, Webhook};

type HmacSha256 = Hmac<Sha256>;

/// Every Herald secret starts with this; the rest is the base64 of the HMAC key.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far `webhook-timestamp` may be from the receiver's clock, either way: 5 minutes, as
/// the Standard Webhooks specification recommends.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The event id; the same on every attempt, retry and replay.
pub const HEADER_ID: &str = "webhook-id";
/// Unix seconds when this attempt was signed.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// `v1,<base64>`, and during a secret rotation a second one after a space.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Why a request is not an authentic Herald webhook. Answer any of them with a 4xx (400 or
/// 401): Herald then retries by its schedule, each attempt freshly timestamped and signed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent, empty, or not visible ASCII.
    #[error("the `{0}` header is missing, empty or not visible ASCII")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not a whole number of Unix seconds.
    #[error("the `webhook-timestamp` header is not a whole number of Unix seconds")]
    BadTimestamp,
    /// The attempt was signed longer ago than the tolerance: a replay, or a slow clock here.
    #[error("`webhook-timestamp` {timestamp} is older than the tolerance allows (now {now})")]
    TooOld { timestamp: i64, now: i64 },
    /// The attempt claims to be signed further in the future than the tolerance allows.
    #[error("`webhook-timestamp` {timestamp} is newer than the tolerance allows (now {now})")]
    TooNew { timestamp: i64, now: i64 },
    /// No `v1` entry of `webhook-signature` matches any of the secrets (a wrong secret or a
    /// changed body).
    #[error("no `v1` signature in `webhook-signature` matches any of the secrets")]
    NoMatchingSignature,
    /// A secret given to [`Verifier::new`] or [`sign`] is not `whsec_` + base64 of a
    /// non-empty key, or no secret was given. The message never contains the secret.
    #[error("{0}")]
    BadSecret(String),
    /// The signature is valid but the body is not a Herald event
    /// (`{"id", "type", "created_at", "data"}`).
    #[error("the signature is valid but the body is not a Herald event: {0}")]
    BadBody(#[source] serde_json::Error),
}

/// Checks webhooks against one or more secrets. Several secrets are for a rotation: during
/// Herald's 24-hour overlap it sends a signature for the new and for the old secret, and a
/// receiver that knows either one accepts the request.
///
/// Cheap to share: put one in your application state and call [`Verifier::verify`] from every
/// request; it holds no lock. `{:?}` never prints the keys.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<Vec<u8>>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier for these `whsec_<base64>` secrets, with [`DEFAULT_TOLERANCE`]. Takes
    /// `&[&str]` as well as `&[String]`.
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Result<Self, VerifyError> {
        if secrets.is_empty() {
            return Err(VerifyError::BadSecret("no secret given; pass the endpoint's `whsec_` secret".into()));
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                decode_key(s.as_ref()).ok_or_else(|| {
                    VerifyError::BadSecret(format!(
                        "secret {} of {} is not `whsec_` followed by the base64 of a non-empty key",
                        i + 1,
                        secrets.len()
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys, tolerance: DEFAULT_TOLERANCE })
    }

    /// The same verifier with another tolerance for `webhook-timestamp` (both directions).
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Verifies a request against the system clock and reads its body as a Herald event.
    /// `body` must be the raw bytes received, not a re-serialised object.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Webhook, VerifyError> {
        self.verify_at(chrono::Utc::now().timestamp(), headers, body)
    }

    /// [`Verifier::verify`] with "now" given as Unix seconds, for tests.
    pub fn verify_at(&self, now_unix_secs: i64, headers: &HeaderMap, body: &[u8]) -> Result<Webhook, VerifyError> {
        let (id, timestamp) = self.check(now_unix_secs, headers, body)?;
        // The body is parsed only after the signature passed: nothing unauthenticated is read.
        let event: Event = serde_json::from_slice(body).map_err(VerifyError::BadBody)?;
        Ok(Webhook { id, timestamp, event })
    }

    /// The headers, the timestamp and the signature, in the order the reference libraries
    /// check them; answers the webhook id and timestamp.
    fn check(&self, now: i64, headers: &HeaderMap, body: &[u8]) -> Result<(String, i64), VerifyError> {
        let id = header(headers, HEADER_ID)?;
        let timestamp = header(headers, HEADER_TIMESTAMP)?;
        let signatures = header(headers, HEADER_SIGNATURE)?;

        let timestamp = parse_timestamp(timestamp)?;
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        if timestamp < now.saturating_sub(tolerance) {
            return Err(VerifyError::TooOld { timestamp, now });
        }
        if timestamp > now.saturating_add(tolerance) {
            return Err(VerifyError::TooNew { timestamp, now });
        }

        // One MAC per secret over the signed content; each candidate signature is checked
        // against a clone, and `verify_slice` compares in constant time.
        let macs: Vec<HmacSha256> = self.keys.iter().map(|key| signed_content(key, id, timestamp, body)).collect();
        for entry in signatures.split_ascii_whitespace() {
            // Other versions (e.g. `v1a`, asymmetric) are skipped, as the specification says.
            let Some(("v1", encoded)) = entry.split_once(',') else { continue };
            let Ok(signature) = STANDARD.decode(encoded) else { continue };
            if macs.iter().any(|mac| mac.clone().verify_slice(&signature).is_ok()) {
                return Ok((id.to_string(), timestamp));
            }
        }
        Err(VerifyError::NoMatchingSignature)
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("secrets", &self.keys.len()).field("tolerance", &self.tolerance).finish()
    }
}

/// The `webhook-signature` value Herald sends for this secret, id, timestamp and body:
/// `v1,<base64>`. For tests of a receiver that need a correctly signed request.
pub fn sign(secret: &str, webhook_id: &str, timestamp: i64, body: &[u8]) -> Result<String, VerifyError> {
    let key = decode_key(secret).ok_or_else(|| {
        VerifyError::BadSecret("the secret is not `whsec_` followed by the base64 of a non-empty key".into())
    })?;
    let mac = signed_content(&key, webhook_id, timestamp, body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// HMAC-SHA256(key, "{id}.{timestamp}.{body}"), not yet finalised.
fn signed_content(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn decode_key(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    (!key.is_empty()).then_some(key)
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(VerifyError::MissingHeader(name))
}

/// Digits only: `+5`, `-5` and `1.5` are refused rather than read loosely.
fn parse_timestamp(s: &str) -> Result<i64, VerifyError> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::BadTimestamp);
    }
    s.parse().map_err(|_| VerifyError::BadTimestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vector from the Standard Webhooks reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const OTHER_SECRET: &str = "whsec_j+mfrfuBF7PO6FvyUN8lubVR2kO1M2kZofT2+tk+2Ps=";
    const EVENT: &[u8] =
        br#"{"created_at":"2026-11-22T10:00:00.123456Z","data":{"order_id":42},"id":"order-42:paid","type":"order.paid"}"#;

    fn headers(id: &str, ts: &str, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_ID, id.parse().unwrap());
        h.insert(HEADER_TIMESTAMP, ts.parse().unwrap());
        h.insert(HEADER_SIGNATURE, signature.parse().unwrap());
        h
    }

    fn signed_event(secrets: &[&str], ts: i64) -> HeaderMap {
        let sigs: Vec<String> = secrets.iter().map(|s| sign(s, "order-42:paid", ts, EVENT).unwrap()).collect();
        headers("order-42:paid", &ts.to_string(), &sigs.join(" "))
    }

    #[test]
    fn passes_the_standard_webhooks_reference_vector() {
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), SIGNATURE);
        let verifier = Verifier::new(&[SECRET]).unwrap();
        let h = headers(ID, &TS.to_string(), SIGNATURE);
        assert_eq!(verifier.check(TS, &h, BODY).unwrap(), (ID.to_string(), TS));
        // The vector's body is not a Herald event: the signature passes, the body does not.
        assert!(matches!(verifier.verify_at(TS, &h, BODY), Err(VerifyError::BadBody(_))));
    }

    #[test]
    fn verifies_and_reads_a_herald_event() {
        let verifier = Verifier::new(&[OTHER_SECRET]).unwrap();
        let webhook = verifier.verify_at(TS, &signed_event(&[OTHER_SECRET], TS), EVENT).unwrap();
        assert_eq!(webhook.id, "order-42:paid");
        assert_eq!(webhook.timestamp, TS);
        assert_eq!(webhook.event.event_type, "order.paid");
        assert_eq!(webhook.event.data["order_id"], 42);
        assert_eq!(webhook.event.created_at.to_rfc3339(), "2026-11-22T10:00:00.123456+00:00");
    }

    #[test]
    fn a_tampered_body_or_id_fails() {
        let verifier = Verifier::new(&[SECRET]).unwrap();
        let h = headers(ID, &TS.to_string(), SIGNATURE);
        let tampered = br#"{"test": 2432232315}"#;
        assert!(matches!(verifier.verify_at(TS, &h, tampered), Err(VerifyError::NoMatchingSignature)));
        let other_id = headers("msg_other", &TS.to_string(), SIGNATURE);
        assert!(matches!(verifier.verify_at(TS, &other_id, BODY), Err(VerifyError::NoMatchingSignature)));
        let wrong_secret = Verifier::new(&[OTHER_SECRET]).unwrap();
        assert!(matches!(wrong_secret.verify_at(TS, &h, BODY), Err(VerifyError::NoMatchingSignature)));
    }

    #[test]
    fn old_and_new_timestamps_fail_at_the_tolerance_edge() {
        let verifier = Verifier::new(&[SECRET]).unwrap();
        let h = headers(ID, &TS.to_string(), SIGNATURE);
        let tol = 300;
        // Exactly at the edge passes, one second further fails, in both directions.
        assert!(verifier.check(TS + tol, &h, BODY).is_ok());
        assert!(verifier.check(TS - tol, &h, BODY).is_ok());
        assert!(matches!(verifier.check(TS + tol + 1, &h, BODY), Err(VerifyError::TooOld { .. })));
        assert!(matches!(verifier.check(TS - tol - 1, &h, BODY), Err(VerifyError::TooNew { .. })));

        let strict = verifier.with_tolerance(Duration::from_secs(10));
        assert!(matches!(strict.check(TS + 11, &h, BODY), Err(VerifyError::TooOld { .. })));
        assert!(strict.check(TS + 10, &h, BODY).is_ok());
    }

    #[test]
    fn rotation_accepts_either_secret_and_either_signature() {
        let both = signed_event(&[OTHER_SECRET, SECRET], TS);
        // A receiver that knows only the old or only the new secret, or both in any order.
        for secrets in [&[SECRET][..], &[OTHER_SECRET], &[SECRET, OTHER_SECRET], &[OTHER_SECRET, SECRET]] {
            let verifier = Verifier::new(secrets).unwrap();
            assert!(verifier.verify_at(TS, &both, EVENT).is_ok(), "{secrets:?}");
        }
        // A receiver that already moved to the new secret, with a sender still on the old one.
        let old_only = signed_event(&[SECRET], TS);
        assert!(Verifier::new(&[OTHER_SECRET]).unwrap().verify_at(TS, &old_only, EVENT).is_err());
        assert!(Verifier::new(&[OTHER_SECRET, SECRET]).unwrap().verify_at(TS, &old_only, EVENT).is_ok());
    }

    #[test]
    fn malformed_headers_and_secrets_are_refused() {
        let verifier = Verifier::new(&[SECRET]).unwrap();
        let mut h = headers(ID, &TS.to_string(), SIGNATURE);
        h.remove(HEADER_SIGNATURE);
        assert!(matches!(verifier.verify_at(TS, &h, BODY), Err(VerifyError::MissingHeader("webhook-signature"))));
        for ts in ["", "abc", "+1614265330", "-1", "1614265330.5", "99999999999999999999"] {
            let h = headers(ID, if ts.is_empty() { " " } else { ts }, SIGNATURE);
            let err = verifier.verify_at(TS, &h, BODY).unwrap_err();
            assert!(matches!(err, VerifyError::BadTimestamp | VerifyError::MissingHeader(_)), "{ts}: {err:?}");
        }
        // Unknown versions and broken entries are skipped, not fatal.
        let noisy = headers(ID, &TS.to_string(), &format!("v1a,xyz v1,!!! v2,abc {SIGNATURE}"));
        assert!(verifier.check(TS, &noisy, BODY).is_ok());
        let only_noise = headers(ID, &TS.to_string(), "v1a,xyz v1,!!! nocomma");
        assert!(matches!(verifier.check(TS, &only_noise, BODY), Err(VerifyError::NoMatchingSignature)));

        assert!(matches!(Verifier::new::<&str>(&[]), Err(VerifyError::BadSecret(_))));
        assert!(Verifier::new(&[SECRET.to_string(), OTHER_SECRET.to_string()]).is_ok());
        assert!(matches!(Verifier::new(&["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]), Err(VerifyError::BadSecret(_))));
        assert!(matches!(Verifier::new(&[SECRET, "whsec_!!!"]), Err(VerifyError::BadSecret(_))));
        assert!(matches!(Verifier::new(&["whsec_"]), Err(VerifyError::BadSecret(_))));
        assert!(!format!("{verifier:?}").contains("MfKQ"));
    }
}
