//! A PostgreSQL cluster of a test's own, for tests that stop and restart the database. Uses the
//! same scripts as `make test` (scripts/pg.sh).

use std::path::PathBuf;
use std::process::Command;

pub struct PrivateCluster {
    dir: PathBuf,
    port: u16,
    options: String,
    /// The `postgres` database of this cluster.
    pub url: String,
}

/// Runs `body` with scripts/pg.sh loaded and `args` as `$1`, `$2`, ...; whether it succeeded.
fn script(args: &[&str], body: &str) -> bool {
    let pg_sh = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg.sh");
    Command::new("bash")
        .arg("-c")
        .arg(format!(". '{pg_sh}' && pg_find_bin && {body}"))
        .arg("bash")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl PrivateCluster {
    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn start() -> Self {
        Self::start_with("-c fsync=off")
    }

    /// Starts a cluster with these server options (e.g. `-c shared_buffers=512MB`).
    pub fn start_with(options: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target"))
            .join(format!("test-pg-private-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let port = crate::free_port();
        let d = dir.to_string_lossy().to_string();
        assert!(
            script(&[&d, &port.to_string(), options], r#"pg_init "$1" && pg_start "$1" "$2" $3"#),
            "start a cluster"
        );
        Self { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), dir, port, options: options.to_string() }
    }

    /// The server's process id (the postmaster), from its `postmaster.pid`.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Stops the server (`fast`: disconnects every client, as a restart or failover does).
    /// Stops it the way an orderly shutdown does (`pg_ctl -m fast`).
    pub fn stop(&self) {
        self.stop_mode("fast");
    }

    /// Stops it as a crash would (`pg_ctl -m immediate`: no checkpoint, recovery at the next start).
    pub fn crash(&self) {
        self.stop_mode("immediate");
    }

    fn stop_mode(&self, mode: &str) {
        assert!(script(&[&self.dir.to_string_lossy(), mode], r#"pg_stop "$1" "$2""#), "stop the cluster ({mode})");
    }

    /// Starts it again on the same port, with the same data.
    pub fn start_again(&self) {
        assert!(
            script(&[&self.dir.to_string_lossy(), &self.port.to_string(), &self.options], r#"pg_start "$1" "$2" $3"#),
            "start the cluster again"
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        script(&[&self.dir.to_string_lossy()], r#"pg_stop "$1" immediate"#);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
