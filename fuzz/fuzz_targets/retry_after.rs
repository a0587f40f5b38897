//! A receiver's Retry-After header, both forms: never a panic.
#![no_main]

use chrono::TimeZone;
use herald_delivery_worker::retry::parse_retry_after;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let now = chrono::Utc.with_ymd_and_hms(2026, 12, 2, 4, 0, 0).unwrap();
    let _ = parse_retry_after(text, now);
});
