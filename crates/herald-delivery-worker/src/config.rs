use std::time::Duration;

use herald_core::config::RetrySchedule;
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

    pub fn new(worker_id: String) -> Self {
        Self {
            worker_id,
            retry_schedule: RetrySchedule::default(),
            lease: Duration::from_secs(45),
            attempt_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            allow: AllowList::none(),
            concurrency: Self::CONCURRENCY,
            endpoint_concurrency: Self::ENDPOINT_CONCURRENCY,
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}
