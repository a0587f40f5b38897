//! Settings shared by Herald's components. Every setting is a flag with an `HERALD_*` environment
//! variable (contract section 7); the binary composes these structs per command, and each value
//! is parsed and checked once, at start.

use std::time::Duration;

use crate::targets::AllowList;
use crate::validate::{self, Invalid};

/// The delays between a delivery's attempts, in milliseconds from where it enters (a flag, an
/// API body, a stored row) to where the next attempt is timed. `1m,5m,30m,2h,12h` by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<u32>);

impl RetrySchedule {
    pub const DEFAULT: &'static str = "1m,5m,30m,2h,12h";
    pub const MAX_STEPS: usize = 20;
    /// 7 days: every step fits a `u32` of milliseconds.
    pub const MAX_STEP: Duration = Duration::from_secs(7 * 86_400);

    /// A schedule written as durations (`["3s", "6s"]`), checked: 1 to 20 steps, each from
    /// 1 ms to 7 days.
    pub fn parse<S: AsRef<str>>(steps: &[S]) -> Result<Self, Invalid> {
        let bad = |why: String| {
            Invalid::new(
                "invalid_retry_schedule",
                format!(
                    "{why}: a retry schedule is 1 to {} delays like \"200ms\", \"3s\", \"1m\", \"2h\", each above 0 and at most 7 days",
                    Self::MAX_STEPS
                ),
            )
        };
        if steps.is_empty() || steps.len() > Self::MAX_STEPS {
            return Err(bad(format!("{} steps given", steps.len())));
        }
        let ms = steps
            .iter()
            .map(|s| {
                let s = s.as_ref().trim();
                let shown = || s.chars().take(64).collect::<String>();
                let d = humantime::parse_duration(s).map_err(|_| bad(format!("{:?} is not a duration", shown())))?;
                if d < Duration::from_millis(1) || d > Self::MAX_STEP {
                    return Err(bad(format!("{:?} is out of range", shown())));
                }
                Ok(d.as_millis() as u32)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(ms))
    }

    /// A schedule as Herald stored it (`retry_schedule_ms`); trusted, as Herald wrote it.
    pub fn from_stored(ms: &[i64]) -> Self {
        Self(ms.iter().map(|&m| m.clamp(1, Self::MAX_STEP.as_millis() as i64) as u32).collect())
    }

    /// The schedule as it is stored: milliseconds per step.
    pub fn stored(&self) -> Vec<i64> {
        self.0.iter().map(|&m| i64::from(m)).collect()
    }

    /// The delay after attempt `n` of a round (from 1), if the schedule has one.
    pub fn after_attempt(&self, n: u32) -> Option<Duration> {
        let i = n.checked_sub(1)? as usize;
        self.0.get(i).map(|&m| Duration::from_millis(u64::from(m)))
    }

    pub fn longest(&self) -> Duration {
        Duration::from_millis(u64::from(self.0.iter().copied().max().unwrap_or(0)))
    }

    /// The steps written back as a person would write them: `1m`, `2h`, `200ms`.
    pub fn written(&self) -> Vec<String> {
        self.0.iter().map(|&m| validate::format_duration(Duration::from_millis(u64::from(m)))).collect()
    }
}

impl std::str::FromStr for RetrySchedule {
    type Err = String;
    /// The flag's form: `1m,5m,30m`.
    fn from_str(s: &str) -> Result<Self, String> {
        let steps: Vec<&str> = s.split(',').collect();
        Self::parse(&steps).map_err(|e| e.message)
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::DEFAULT.parse().expect("the default schedule parses")
    }
}

/// How often a loop looks for work when no notification woke it (HERALD_POLL_INTERVAL).
pub const POLL_INTERVAL: &str = "1s";

/// One of Herald's written defaults, as a duration.
pub fn default_duration(s: &'static str) -> Duration {
    parse_duration(s).expect("Herald's defaults are durations (a unit test reads each)")
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration like 500ms, 15s or 2m: {e}"))
}

pub fn parse_allow_list(s: &str) -> Result<AllowList, String> {
    s.parse()
}

/// The database connection string, kept out of logs (it may carry a password).
#[derive(Clone)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::tls::config(s)
            .map_err(|e| format!("{e}; e.g. postgres://user@127.0.0.1:5432/herald?sslmode=require"))?;
        Ok(Self(s.to_string()))
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// PostgreSQL connection string (URL or key=value form).
    #[arg(long, env = "HERALD_DATABASE_URL", value_name = "URL")]
    pub database_url: DatabaseUrl,

    /// Largest number of database connections this process opens.
    #[arg(long, env = "HERALD_DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_is_the_contracts() {
        let d = RetrySchedule::default();
        assert_eq!(d.stored(), vec![60_000, 300_000, 1_800_000, 7_200_000, 43_200_000]);
        assert_eq!(d.written(), ["1m", "5m", "30m", "2h", "12h"]);
        assert_eq!(d.after_attempt(1), Some(Duration::from_secs(60)));
        assert_eq!(d.after_attempt(6), None);
        assert_eq!(d.after_attempt(0), None);
        assert_eq!(d.longest(), Duration::from_secs(12 * 3600));
        let s: RetrySchedule = "200ms, 1s".parse().unwrap();
        assert_eq!(s.after_attempt(1), Some(Duration::from_millis(200)));
        assert!("1m,,2m".parse::<RetrySchedule>().is_err());
    }

    #[test]
    fn schedules_are_checked() {
        assert!(RetrySchedule::parse::<&str>(&[]).is_err());
        assert!(RetrySchedule::parse(&["0s"]).is_err());
        assert!(RetrySchedule::parse(&["500us"]).is_err(), "below a millisecond");
        assert!(RetrySchedule::parse(&["7d"]).is_ok());
        assert!(RetrySchedule::parse(&["8d"]).is_err());
        let e = RetrySchedule::parse(&["soon"]).unwrap_err();
        assert_eq!(e.code, "invalid_retry_schedule");
        assert!(e.message.contains("\"soon\" is not a duration"), "{}", e.message);
        assert!(RetrySchedule::parse(&vec!["1s"; 21]).is_err());
        let s = RetrySchedule::from_stored(&[200, 3000]);
        assert_eq!(s.written(), ["200ms", "3s"]);
    }
}
