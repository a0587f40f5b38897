//! Settings shared by Herald's components. Every setting is a flag with an `HERALD_*` environment
//! variable (contract section 7); the binary composes these structs per command, and each value
//! is parsed and checked once, at start.

use std::time::Duration;

use crate::targets::AllowList;
use crate::validate;

/// `1m,5m,30m,2h,12h`: the delays between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl RetrySchedule {
    pub const DEFAULT: &'static str = "1m,5m,30m,2h,12h";

    pub fn parse(s: &str) -> Result<Self, String> {
        let steps: Vec<&str> = s.split(',').map(str::trim).collect();
        validate::retry_schedule(&steps).map(Self).map_err(|e| e.message)
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::parse(Self::DEFAULT).expect("the default schedule parses")
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
        s.parse::<tokio_postgres::Config>().map_err(|e| {
            format!("not a PostgreSQL connection string ({e}); e.g. postgres://user@127.0.0.1:5432/herald")
        })?;
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
        let d = RetrySchedule::default().0;
        let mins: Vec<u64> = d.iter().map(|d| d.as_secs() / 60).collect();
        assert_eq!(mins, vec![1, 5, 30, 120, 720]);
        assert_eq!(RetrySchedule::parse("200ms, 1s").unwrap().0[0], Duration::from_millis(200));
        assert!(RetrySchedule::parse("1m,,2m").is_err());
    }
}
