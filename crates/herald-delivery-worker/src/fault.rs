//! Faults on purpose, for the tests that prove a worker survives them: a panic in an attempt,
//! a panic in the claim loop, or the process aborting there (as a crash would), each for the
//! deliveries of one event type. Set by `HERALD_DEBUG_FAULT=<fault>:<event type>` with `<fault>`
//! one of `panic-attempt`, `panic-claim`, `abort-claim`. Debug builds only: a release build
//! never reads the variable.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    PanicAttempt,
    PanicClaim,
    AbortClaim,
}

fn configured() -> Option<&'static (Fault, String)> {
    static FAULT: OnceLock<Option<(Fault, String)>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            if !cfg!(debug_assertions) {
                return None;
            }
            let v = std::env::var("HERALD_DEBUG_FAULT").ok()?;
            let (fault, event_type) = v.split_once(':')?;
            let fault = match fault {
                "panic-attempt" => Fault::PanicAttempt,
                "panic-claim" => Fault::PanicClaim,
                "abort-claim" => Fault::AbortClaim,
                _ => return None,
            };
            tracing::warn!(?fault, event_type, "HERALD_DEBUG_FAULT is set: this worker fails on purpose");
            Some((fault, event_type.to_string()))
        })
        .as_ref()
}

/// Fails here, on purpose, if `fault` is configured for `event_type`.
pub fn at(fault: Fault, event_type: &str) {
    let Some((f, t)) = configured() else { return };
    if *f == fault && t == event_type {
        match fault {
            Fault::AbortClaim => std::process::abort(),
            _ => panic!("HERALD_DEBUG_FAULT: {fault:?} for {event_type}"),
        }
    }
}
