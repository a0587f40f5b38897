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

fn script(args: &[&str], body: &str) {
    let pg_sh = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg.sh");
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(". '{pg_sh}' && pg_find_bin && {body}"))
        .arg("bash")
        .args(args)
        .status()
        .expect("bash runs");
    assert!(status.success(), "`{body}` failed");
}

impl PrivateCluster {
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
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.to_string_lossy().to_string();
        script(&[&d, &port.to_string(), options], r#"pg_init "$1" && pg_start "$1" "$2" $3"#);
        Self { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), dir, port, options: options.to_string() }
    }

    /// Stops the server (`fast`: disconnects every client, as a restart or failover does).
    pub fn stop(&self) {
        script(&[&self.dir.to_string_lossy()], r#"pg_stop "$1" fast"#);
    }

    /// Starts it again on the same port, with the same data.
    pub fn start_again(&self) {
        script(&[&self.dir.to_string_lossy(), &self.port.to_string(), &self.options], r#"pg_start "$1" "$2" $3"#);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let d = self.dir.to_string_lossy().to_string();
        let pg_sh = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg.sh");
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!(". '{pg_sh}' && pg_find_bin && pg_stop \"$1\" immediate"))
            .arg("bash")
            .arg(&d)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
