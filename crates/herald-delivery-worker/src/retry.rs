//! What follows an attempt (contract sections 1 and 2): pure functions of the outcome, the
//! schedule, the time and a random source. [`after`] decides the delivery's next state, its
//! next attempt time and what the endpoint's health does; [`next_attempt_at`] is the schedule.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use herald_core::config::RetrySchedule;
use herald_core::deliveries::State;

use crate::attempt::{AttemptOutcome, Claimed};

/// What an attempt does to its endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transition {
    /// A success at an endpoint that was `failing`.
    Recovered,
    /// The delivery's last attempt failed at the receiver.
    Failing,
    /// The receiver answered 410 Gone.
    Disabled,
}

/// A delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    /// Delivered, failed, or pending (with `at` its next attempt time).
    pub state: State,
    pub at: DateTime<Utc>,
    pub transition: Option<Transition>,
}

/// What follows attempt `c` that came to `o`, recorded at `now`; `schedule` is the global one
/// (an endpoint's or callback's own, if it has one, is in `c`).
pub fn after(
    c: &Claimed,
    o: &AttemptOutcome,
    schedule: &RetrySchedule,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Next {
    let endpoint = c.endpoint_id.is_some() && o.reached_endpoint();
    if o.delivered() {
        let transition = (endpoint && c.endpoint_failing).then_some(Transition::Recovered);
        return Next { state: State::Delivered, at: now, transition };
    }
    if o.final_failure() {
        let transition = (endpoint && o.gone()).then_some(Transition::Disabled);
        return Next { state: State::Failed, at: now, transition };
    }
    let ended = o.started_at + chrono::Duration::from_std(o.duration).unwrap_or_default();
    let schedule = c.retry_schedule.as_ref().unwrap_or(schedule);
    match next_attempt_at(schedule, c.round_attempt.max(0) as u32, ended, o.retry_after, rng) {
        Some(at) => Next { state: State::Pending, at, transition: None },
        None => Next { state: State::Failed, at: now, transition: endpoint.then_some(Transition::Failing) },
    }
}

/// The next attempt's time after attempt number `attempt` (from 1, within this round) failed
/// at `ended`, or `None` when the schedule is spent and the delivery has failed.
///
/// Each step gets ±10 % jitter. A Retry-After longer than the step replaces it, capped at the
/// schedule's longest step.
pub fn next_attempt_at(
    schedule: &RetrySchedule,
    attempt: u32,
    ended: DateTime<Utc>,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Option<DateTime<Utc>> {
    let step = schedule.after_attempt(attempt)?;
    let jitter = rng.random_range(0.9..=1.1);
    let mut delay = step.mul_f64(jitter);
    if let Some(after) = retry_after {
        let longest = schedule.longest();
        // Never sooner than the schedule's own step, never later than its longest step.
        delay = delay.max(after.min(longest));
    }
    Some(ended + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
}

/// A Retry-After header: delay-seconds, or an HTTP date (taken relative to `now`).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::id::{DeliveryId, EndpointId};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn contract() -> RetrySchedule {
        RetrySchedule::default()
    }

    #[test]
    fn follows_the_schedule_with_ten_percent_jitter() {
        let mut rng = StdRng::seed_from_u64(7);
        let t0 = Utc::now();
        for attempt in 1..=5 {
            let step = contract().after_attempt(attempt).unwrap();
            for _ in 0..200 {
                let at = next_attempt_at(&contract(), attempt, t0, None, &mut rng).unwrap();
                let d = (at - t0).to_std().unwrap();
                assert!(d >= step.mul_f64(0.9) && d <= step.mul_f64(1.1), "attempt {attempt}: {d:?} vs {step:?}");
            }
        }
        // At most 6 attempts: after the 6th failure there is none.
        assert_eq!(next_attempt_at(&contract(), 6, t0, None, &mut rng), None);
        assert_eq!(next_attempt_at(&contract(), 0, t0, None, &mut rng), None);
    }

    #[test]
    fn jitter_spreads_retries() {
        let mut rng = StdRng::seed_from_u64(1);
        let t0 = Utc::now();
        let times: std::collections::BTreeSet<_> =
            (0..50).map(|_| next_attempt_at(&contract(), 1, t0, None, &mut rng).unwrap()).collect();
        assert!(times.len() > 40, "jitter must spread retries, got {} distinct", times.len());
    }

    #[test]
    fn retry_after_replaces_a_shorter_step_up_to_the_longest() {
        let mut rng = StdRng::seed_from_u64(3);
        let t0 = Utc::now();
        let s = RetrySchedule::parse(&["3s", "6s"]).unwrap();
        let at = next_attempt_at(&s, 1, t0, Some(Duration::from_secs(5)), &mut rng).unwrap();
        assert_eq!(at - t0, chrono::Duration::seconds(5));
        let at = next_attempt_at(&s, 1, t0, Some(Duration::from_secs(3600)), &mut rng).unwrap();
        assert_eq!(at - t0, chrono::Duration::seconds(6), "capped at the longest step");
        let at = next_attempt_at(&s, 1, t0, Some(Duration::from_millis(1)), &mut rng).unwrap();
        assert!(at - t0 >= chrono::Duration::milliseconds(2700), "a shorter Retry-After does not shorten the step");
    }

    fn claimed(endpoint: bool, failing: bool, round: i32) -> Claimed {
        Claimed {
            tenant_id: "t".parse().unwrap(),
            delivery_id: DeliveryId::generate(Utc::now()),
            event_id: "e".parse().unwrap(),
            endpoint_id: endpoint.then(|| EndpointId::generate(Utc::now())),
            url: "https://example.com/".into(),
            attempt: round,
            round_attempt: round,
            event_type: "x".into(),
            created_at: Utc::now(),
            deliver_at: None,
            data: "{}".into(),
            trace: Default::default(),
            signature_scheme: "standard-webhooks".into(),
            secret: None,
            previous_secret: None,
            retry_schedule: None,
            endpoint_failing: failing,
            signature_header: None,
            headers: Default::default(),
            timeout: None,
            payload_format: Default::default(),
            fifo: false,
        }
    }

    fn outcome(status: Option<u16>, error: Option<&'static str>) -> AttemptOutcome {
        AttemptOutcome {
            started_at: Utc::now(),
            duration: Duration::from_millis(5),
            status_code: status,
            error,
            detail: None,
            excerpt: None,
            retry_after: None,
        }
    }

    #[test]
    fn after_an_attempt() {
        let mut rng = StdRng::seed_from_u64(9);
        let now = Utc::now();
        let s = contract();
        let next = |c: Claimed, o: AttemptOutcome| after(&c, &o, &s, now, &mut StdRng::seed_from_u64(9));
        // Delivered: recovery only where the endpoint was failing.
        assert_eq!(next(claimed(true, false, 1), outcome(Some(200), None)).transition, None);
        assert_eq!(next(claimed(true, true, 1), outcome(Some(204), None)).transition, Some(Transition::Recovered));
        assert_eq!(next(claimed(false, true, 1), outcome(Some(200), None)).state, State::Delivered);
        // A failure mid-schedule waits for its step; the last one fails the delivery and the endpoint.
        let n = next(claimed(true, false, 1), outcome(Some(500), Some("http_status")));
        assert_eq!((n.state, n.transition), (State::Pending, None));
        assert!(n.at > now + chrono::Duration::seconds(50));
        let n = next(claimed(true, false, 6), outcome(Some(500), Some("http_status")));
        assert_eq!((n.state, n.transition), (State::Failed, Some(Transition::Failing)));
        // A callback has no endpoint to mark.
        assert_eq!(next(claimed(false, false, 6), outcome(None, Some("timeout"))).transition, None);
        // 410 disables at once; refusals before sending fail at once and say nothing of the receiver.
        let n = next(claimed(true, false, 1), outcome(Some(410), Some("http_status")));
        assert_eq!((n.state, n.transition), (State::Failed, Some(Transition::Disabled)));
        for class in ["invalid_delivery", "abandoned"] {
            let n = next(claimed(true, false, 1), outcome(None, Some(class)));
            assert_eq!((n.state, n.transition), (State::Failed, None), "{class}");
        }
        // A panic in Herald is retried on the schedule, and never blames the endpoint.
        assert_eq!(next(claimed(true, false, 1), outcome(None, Some("internal"))).state, State::Pending);
        assert_eq!(next(claimed(true, false, 6), outcome(None, Some("internal"))).transition, None);
        let _ = &mut rng;
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
