//! When the next attempt goes out (contract section 2): pure functions of the schedule, the
//! attempt that just failed, the time it ended, and the receiver's Retry-After.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// The next attempt's time after attempt number `attempt` (from 1, within this round) failed
/// at `ended`, or `None` when the schedule is spent and the delivery has failed.
///
/// Each step gets ±10 % jitter. A Retry-After longer than the step replaces it, capped at the
/// schedule's longest step.
pub fn next_attempt_at(
    schedule: &[Duration],
    attempt: u32,
    ended: DateTime<Utc>,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Option<DateTime<Utc>> {
    let step = *schedule.get(attempt.checked_sub(1)? as usize)?;
    let jitter = rng.random_range(0.9..=1.1);
    let mut delay = step.mul_f64(jitter);
    if let Some(after) = retry_after {
        let longest = schedule.iter().max().copied().unwrap_or(step);
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
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn contract() -> Vec<Duration> {
        herald_core::config::RetrySchedule::default().0
    }

    #[test]
    fn follows_the_schedule_with_ten_percent_jitter() {
        let mut rng = StdRng::seed_from_u64(7);
        let t0 = Utc::now();
        for (attempt, step) in contract().iter().enumerate() {
            for _ in 0..200 {
                let at = next_attempt_at(&contract(), attempt as u32 + 1, t0, None, &mut rng).unwrap();
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
        let s = vec![Duration::from_secs(3), Duration::from_secs(6)];
        let at = next_attempt_at(&s, 1, t0, Some(Duration::from_secs(5)), &mut rng).unwrap();
        assert_eq!(at - t0, chrono::Duration::seconds(5));
        let at = next_attempt_at(&s, 1, t0, Some(Duration::from_secs(3600)), &mut rng).unwrap();
        assert_eq!(at - t0, chrono::Duration::seconds(6), "capped at the longest step");
        let at = next_attempt_at(&s, 1, t0, Some(Duration::from_millis(1)), &mut rng).unwrap();
        assert!(at - t0 >= chrono::Duration::milliseconds(2700), "a shorter Retry-After does not shorten the step");
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
