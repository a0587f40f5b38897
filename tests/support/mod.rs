//! Drives the real `herald` binary: a process per test against its own database.

#![allow(dead_code)] // each test file uses a different part of this module

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_testkit::{eventually, TestDb};

pub const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// A free port on 127.0.0.1 (the listener is closed before Herald binds it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `herald <command>` process, killed when dropped.
pub struct Herald {
    pub child: Child,
    pub base: String,
}

impl Herald {
    pub async fn start(db: &TestDb, command: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg(command)
            .env("HERALD_DATABASE_URL", &db.url)
            .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HERALD_ALLOW_PRIVATE_TARGETS", "127.0.0.0/8,::1/128")
            .env("HERALD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("HERALD_TEST_SHOW_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() });
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start herald");
        let herald = Self { child, base: format!("http://127.0.0.1:{port}") };
        let url = format!("{}/readyz", herald.base);
        eventually("herald to be ready", Duration::from_secs(60), || {
            let url = url.clone();
            async move { reqwest::get(&url).await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
        herald
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(std::time::Instant::now() < deadline, "herald did not exit within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `herald` to completion and returns its standard output.
pub fn herald_output(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).env("HERALD_DATABASE_URL", &db.url).output().expect("run herald");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}
