use std::time::Duration;

use herald_core::config::{default_duration, RetrySchedule, POLL_INTERVAL};
use herald_core::targets::AllowList;

/// A worker's settings; the binary fills them from flags and `HERALD_*` variables.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this worker's leases (`lease_owner`).
    pub worker_id: String,
    /// The global retry schedule (HERALD_RETRY_SCHEDULE).
    pub retry_schedule: RetrySchedule,
    /// How long a claimed delivery stays leased (HERALD_LEASE); longer than `attempt_timeout`.
    pub lease: Duration,
    /// Total time for one HTTP attempt (HERALD_ATTEMPT_TIMEOUT).
    pub attempt_timeout: Duration,
    pub connect_timeout: Duration,
    pub allow: AllowList,
    /// Attempts in flight in this worker at most.
    pub concurrency: usize,
    /// Attempts in flight in this worker to one endpoint at most, so that one slow endpoint
    /// cannot take every slot.
    pub endpoint_concurrency: usize,
    /// The fallback poll when no NOTIFY arrives (jittered ±20 %).
    pub poll_interval: Duration,
    /// How long SIGTERM waits for attempts in flight before giving their leases back.
    pub shutdown_grace: Duration,
    /// A FIFO endpoint's head waits until it was published this long ago (HERALD_FIFO_SETTLE):
    /// a publish of an earlier event still committing then comes before it.
    pub fifo_settle: Duration,
}

impl WorkerConfig {
    /// Attempts in flight per worker. Large enough that claims and result batches are large
    /// (each costs the database about as much for 30 rows as for 3: `make bench` measured
    /// 1,600 deliveries/s at 64 and 16, 3,100 at 256 and 64, on 2 cores); an attempt in flight
    /// costs a few KiB.
    pub const CONCURRENCY: usize = 256;
    /// Attempts in flight per worker to one endpoint: a quarter of the slots, so that a hanging
    /// endpoint holds at most that many while the others keep three quarters.
    pub const ENDPOINT_CONCURRENCY: usize = 64;
    /// HERALD_ATTEMPT_TIMEOUT.
    pub const ATTEMPT_TIMEOUT: &'static str = "15s";
    /// HERALD_CONNECT_TIMEOUT.
    pub const CONNECT_TIMEOUT: &'static str = "5s";
    /// HERALD_SHUTDOWN_GRACE.
    pub const SHUTDOWN_GRACE: &'static str = "20s";
    /// HERALD_FIFO_SETTLE.
    pub const FIFO_SETTLE: &'static str = "1s";
    /// Without HERALD_LEASE, a lease lasts the attempt timeout and this much more.
    pub const LEASE_MARGIN: Duration = Duration::from_secs(30);

    pub fn new(worker_id: String) -> Self {
        let attempt_timeout = default_duration(Self::ATTEMPT_TIMEOUT);
        Self {
            worker_id,
            retry_schedule: RetrySchedule::default(),
            lease: attempt_timeout + Self::LEASE_MARGIN,
            attempt_timeout,
            connect_timeout: default_duration(Self::CONNECT_TIMEOUT),
            allow: AllowList::none(),
            concurrency: Self::CONCURRENCY,
            endpoint_concurrency: Self::ENDPOINT_CONCURRENCY,
            poll_interval: default_duration(POLL_INTERVAL),
            shutdown_grace: default_duration(Self::SHUTDOWN_GRACE),
            fifo_settle: default_duration(Self::FIFO_SETTLE),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_written_defaults_are_durations() {
        let c = super::WorkerConfig::new("w".into());
        assert!(c.lease > c.attempt_timeout && c.connect_timeout <= c.attempt_timeout);
    }
}
