//! TLS to PostgreSQL: a throwaway cluster started with `ssl=on` and a certificate made at test
//! time (openssl), for `localhost`, signed by a CA made alongside. `sslmode` in
//! HERALD_DATABASE_URL is honoured by the pool and the LISTEN connection alike.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use herald_testkit::{eventually, PrivateCluster, Receiver};
use serde_json::json;
use support::{Api, Herald};

const WAIT: Duration = Duration::from_secs(60);

/// A directory under target/ with a CA (`ca.pem`), a server certificate for `localhost` signed
/// by it (`server.pem`, `server.key`, readable by the cluster's owner) and a second CA that
/// signed nothing (`other-ca.pem`); removed when dropped.
struct Certs(PathBuf);

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &str) {
    let ok = Command::new("sh").arg("-c").arg(format!("openssl {args}")).current_dir(dir).output().unwrap();
    assert!(ok.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&ok.stderr));
}

fn certs() -> Certs {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let certs = Certs(dir.clone());
    for ca in ["ca", "other-ca"] {
        openssl(&dir, &format!("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {ca}.key -out {ca}.pem -days 2 -subj '/CN=herald test {ca}'"));
    }
    openssl(
        &dir,
        "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=localhost",
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        &dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext",
    );
    // PostgreSQL reads the key as the cluster's owner (`postgres` when the tests run as root)
    // and refuses a key others can read.
    let key = dir.join("server.key");
    let mut owner = "chmod 600 server.key".to_string();
    if running_as_root() {
        owner = format!("chown postgres server.key server.pem && {owner} && chmod o+x {}", dir.display());
        let mut p = dir.clone();
        while p.pop() {
            let _ = Command::new("chmod").arg("o+x").arg(&p).status();
        }
    }
    let ok = Command::new("sh").arg("-c").arg(owner).current_dir(&dir).status().unwrap();
    assert!(ok.success() && key.exists());
    certs
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether the connection `url` makes (through Herald's own code) is encrypted.
async fn encrypted(url: &str) -> Result<bool, String> {
    let client = herald_core::db::connect(url).await.map_err(|e| e.to_string())?;
    let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    Ok(row.get(0))
}

#[tokio::test]
async fn sslmode_is_honoured_from_require_to_verify_full() {
    let certs = certs();
    let d = certs.0.display();
    let pg = PrivateCluster::start_with(&format!(
        "-c ssl=on -c ssl_cert_file={d}/server.pem -c ssl_key_file={d}/server.key"
    ));
    let port = pg.url.rsplit_once(':').unwrap().1.split('/').next().unwrap().to_string();
    let url = |host: &str, params: &str| format!("postgres://postgres@{host}:{port}/postgres?{params}");

    assert_eq!(encrypted(&url("127.0.0.1", "sslmode=disable")).await, Ok(false));
    assert_eq!(encrypted(&url("127.0.0.1", "")).await, Ok(true), "prefer (the default) takes TLS when offered");
    assert_eq!(encrypted(&url("127.0.0.1", "sslmode=require")).await, Ok(true));
    let ca = format!("sslrootcert={d}/ca.pem");
    assert_eq!(encrypted(&url("127.0.0.1", &format!("sslmode=verify-ca&{ca}"))).await, Ok(true));
    assert_eq!(encrypted(&url("localhost", &format!("sslmode=verify-full&{ca}"))).await, Ok(true));
    // The certificate names localhost, not 127.0.0.1.
    let e = encrypted(&url("127.0.0.1", &format!("sslmode=verify-full&{ca}"))).await.unwrap_err();
    assert!(e.contains("certificate") && e.contains("not valid for name"), "{e}");
    // Signed by a CA this client was not given.
    let other = format!("sslrootcert={d}/other-ca.pem");
    let e = encrypted(&url("localhost", &format!("sslmode=verify-full&{other}"))).await.unwrap_err();
    assert!(e.contains("certificate") && e.contains("UnknownIssuer"), "{e}");
    let e = encrypted(&url("127.0.0.1", &format!("sslmode=verify-ca&{other}"))).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");

    // Herald itself, over verify-full: every connection it makes (the pool's, LISTEN's) is
    // encrypted, and an event goes through.
    let herald_url = url("localhost", &format!("sslmode=verify-full&{ca}"));
    let run = |args: &[&str]| {
        let out = Command::new(support::BIN).args(args).env("HERALD_DATABASE_URL", &herald_url).output().unwrap();
        assert!(out.status.success(), "herald {args:?} over verify-full: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run(&["migrate"]);
    let token = run(&["tenant", "create", "acme"]);
    let herald = Herald::start_url(&herald_url, "all", &support::fast_with(&[]), true).await;
    let api = Api::new(&herald.base, &token);
    let rx = Receiver::start().await;
    let (endpoint, _) = api.endpoint(json!({"url": rx.url("/tls")})).await;
    let id = api.publish(json!({"type": "t", "data": 1})).await;
    api.wait_delivery(&id, Some(&endpoint), "delivered", WAIT).await;
    let (admin, connection) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let (plain, listening): (i64, i64) = eventually("Herald's LISTEN connections", WAIT, || async {
        let row = admin
            .query_one(
                "SELECT count(*) FILTER (WHERE NOT s.ssl), \
                        count(*) FILTER (WHERE a.query ILIKE 'LISTEN%' AND s.ssl) \
                   FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                  WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        let (plain, listening): (i64, i64) = (row.get(0), row.get(1));
        (listening >= 2).then_some((plain, listening))
    })
    .await;
    assert_eq!(plain, 0, "every connection Herald makes is encrypted ({listening} LISTEN)");
}

#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    let db = herald_testkit::TestDb::new().await;
    // (The test database's connection string is in key=value form.)
    let e = encrypted(&format!("{} sslmode=require", db.url)).await.unwrap_err();
    assert!(e.contains("does not support TLS"), "{e}");
}
