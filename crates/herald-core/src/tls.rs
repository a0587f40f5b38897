//! TLS to PostgreSQL as libpq's `sslmode` says, for the pool and the LISTEN connection alike,
//! with rustls (through tokio-postgres-rustls; no OpenSSL to build or link).
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default) | if the server offers it | not checked |
//! | `require` | always | not checked, unless `sslrootcert` is given: then as `verify-ca` |
//! | `verify-ca` | always | signed by `sslrootcert` |
//! | `verify-full` | always | signed by `sslrootcert`, and names the host connected to |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the Mozilla roots
//! (webpki-roots). tokio-postgres knows neither `verify-*` nor `sslrootcert`: they are taken
//! out of the URL here, and the rest is tokio-postgres's to parse.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connection settings and the TLS connector that `url` asks for; an error says how to fix
/// the URL.
pub fn config(url: &str) -> Result<(tokio_postgres::Config, Tls), String> {
    let (rest, mode, root) = take_tls_params(url)?;
    let mut config: tokio_postgres::Config =
        rest.parse().map_err(|e| format!("not a PostgreSQL connection string ({e})"))?;
    let mode = mode.unwrap_or_else(|| match config.get_ssl_mode() {
        SslMode::Disable => "disable".into(),
        SslMode::Require => "require".into(),
        _ => "prefer".into(),
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let verify = |roots: RootCertStore, names: bool| -> Result<Arc<dyn ServerCertVerifier>, String> {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("sslrootcert: {e}"))?;
        Ok(if names { webpki } else { Arc::new(AnyName(webpki)) })
    };
    let (ssl_mode, verifier): (SslMode, Arc<dyn ServerCertVerifier>) = match (mode.as_str(), root) {
        ("disable", _) => (SslMode::Disable, Arc::new(Unchecked(provider.clone()))),
        ("prefer", _) => (SslMode::Prefer, Arc::new(Unchecked(provider.clone()))),
        ("require", None) => (SslMode::Require, Arc::new(Unchecked(provider.clone()))),
        ("require" | "verify-ca", Some(roots)) => (SslMode::Require, verify(roots, false)?),
        ("verify-full", Some(roots)) => (SslMode::Require, verify(roots, true)?),
        ("verify-ca" | "verify-full", None) => {
            return Err(format!(
                "sslmode={mode} needs sslrootcert=/path/to/ca.pem (the CA that signed the server's certificate), or sslrootcert=system"
            ))
        }
        (other, _) => {
            return Err(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            ))
        }
    };
    config.ssl_mode(ssl_mode);
    let tls = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
    Ok((config, Tls(MakeRustlsConnect::new(tls))))
}

/// tokio-postgres-rustls's connector, which also accepts the empty host name tokio-postgres
/// gives for a Unix socket (where it never starts TLS).
#[derive(Clone)]
pub struct Tls(MakeRustlsConnect);

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for Tls
where
    MakeRustlsConnect: tokio_postgres::tls::MakeTlsConnect<S>,
{
    type Stream = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Stream;
    type TlsConnect = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::TlsConnect;
    type Error = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        let domain = if domain.is_empty() { "localhost" } else { domain };
        tokio_postgres::tls::MakeTlsConnect::<S>::make_tls_connect(&mut self.0, domain)
    }
}

/// `url` without `sslmode` and `sslrootcert`, with their values (roots loaded). The query is
/// cut by hand, every other byte of the URL left as it was (a round trip through a URL parser
/// would re-encode `%20` as `+` and refuse several hosts with ports). A connection string in
/// key=value form is left to tokio-postgres whole.
fn take_tls_params(url: &str) -> Result<(String, Option<String>, Option<RootCertStore>), String> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let Some((base, query)) = url.split_once('?').filter(|_| is_url) else {
        return Ok((url.to_string(), None, None));
    };
    let (mut mode, mut root, mut kept) = (None, None, Vec::new());
    for pair in query.split('&') {
        let (key, value) = url::form_urlencoded::parse(pair.as_bytes()).next().unwrap_or_default();
        match &*key {
            "sslmode" => mode = Some(value.to_string()),
            "sslrootcert" => root = Some(value.to_string()),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    let roots = root.map(|path| roots(&path)).transpose()?;
    Ok((rest, mode, roots))
}

fn roots(path: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    if path == "system" {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(store);
    }
    let pem = std::fs::read(path).map_err(|e| format!("sslrootcert {path}: {e}"))?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
        store.add(cert).map_err(|e| format!("sslrootcert {path}: {e}"))?;
    }
    if store.is_empty() {
        return Err(format!("sslrootcert {path}: no certificate in it (a PEM file of CA certificates)"));
    }
    Ok(store)
}

/// `prefer` and `require` without a root: encrypted, the certificate not checked (libpq's
/// meaning). Nor are the handshake's signatures by it: whoever is in the middle could present
/// any certificate anyway, and checking them would mean parsing a certificate rustls refuses
/// (Citus makes its nodes a self-signed X.509 v1 one).
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a given root; the name in the certificate may be any.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::config;

    #[test]
    fn sslmode_and_sslrootcert_are_read_and_the_rest_left_to_tokio_postgres() {
        let (c, _) = config("postgres://u@127.0.0.1:5432/db?sslmode=require&application_name=x").unwrap();
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(c.get_application_name(), Some("x"));
        let (c, _) = config("postgres://u@127.0.0.1:5432/db").unwrap();
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Prefer);
        let (c, _) = config("postgres://u@127.0.0.1/db?sslmode=verify-full&sslrootcert=system").unwrap();
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        let (c, _) = config("host=127.0.0.1 user=u sslmode=disable").unwrap();
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    }

    #[test]
    fn the_rest_of_the_url_is_left_byte_for_byte() {
        let (c, _) =
            config("postgres://u:p%40ss@h1:5432,h2:5433/db?application_name=my%20app&sslmode=require").unwrap();
        assert_eq!(c.get_application_name(), Some("my app"));
        assert_eq!(c.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(c.get_ports(), &[5432, 5433]);
        let (c, _) = config("postgres://u@%2Fvar%2Frun%2Fpostgresql/db?sslmode=disable").unwrap();
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    }

    #[test]
    fn a_url_that_cannot_be_honoured_says_how_to_fix_it() {
        let refused = |url: &str| config(url).err().unwrap_or_else(|| panic!("{url} accepted"));
        let e = refused("postgres://u@h/db?sslmode=verify-full");
        assert!(e.contains("needs sslrootcert="), "{e}");
        let e = refused("postgres://u@h/db?sslmode=allow-ish");
        assert!(e.contains("not one of disable, prefer, require, verify-ca, verify-full"), "{e}");
        let e = refused("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
        assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "{e}");
    }
}
