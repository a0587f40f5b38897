//! What a receiver gets: any webhook-id, webhook-timestamp and webhook-signature header and any
//! body, through the receiver crate's verifier. Never a panic; nothing unsigned is accepted.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let (id, ts, sig, body) = (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or_default());
    let mut headers = HeaderMap::new();
    for (name, value) in [("webhook-id", id), ("webhook-timestamp", ts), ("webhook-signature", sig)] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.insert(name, v);
        }
    }
    let verifier = herald_receiver::Verifier::new(&[SECRET]).unwrap();
    if verifier.verify_at(1_764_650_000, &headers, body).is_ok() {
        // Only a signature made with the secret passes: the fuzzer cannot forge one.
        let id = std::str::from_utf8(id.unwrap()).unwrap();
        let ts: i64 = std::str::from_utf8(ts.unwrap()).unwrap().trim().parse().unwrap();
        let made = herald_receiver::sign(SECRET, id, ts, body).unwrap();
        assert!(std::str::from_utf8(sig.unwrap()).unwrap().contains(made.trim_start_matches("v1,")));
    }
});
