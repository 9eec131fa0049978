//! TLS for the load generator (`-S`) and the sink (`sink -S`): rustls with the
//! ring provider, configured once from PEM files and shared by every client.
//!
//! Like emqtt_bench, `-S` without `--cacertfile` does not verify the server:
//! [`AcceptAnyServerCert`] takes any certificate (it still checks the
//! handshake signatures, so the session keys belong to the certificate that
//! was shown). That is for benchmarking a server with a self-signed
//! certificate only; with `--cacertfile` the chain and the host name (`-h`,
//! an IP address or a DNS name) are verified as any TLS client would.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", path.display()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PRIVATE KEY in the file", path.display()))
}

fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The client side of `-S`: verify against `cacert` when given (else accept
/// any server certificate), and present `cert`/`key` when given (mutual TLS).
pub fn client_config(
    cacert: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match cacert {
        Some(path) => builder.with_root_certificates(load_roots(path)?),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider))),
    };
    let config = match (cert, key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| format!("{}: {e}", cert.display()))?,
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err("--certfile needs --keyfile".into()),
        (None, Some(_)) => return Err("--keyfile needs --certfile".into()),
    };
    Ok(Arc::new(config))
}

/// The name the client checks the server certificate against: `-h` as an IP
/// address or a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("-h {host}: not a valid TLS server name: {e}"))
}

/// The sink's side: `cert`/`key` as its certificate; with `client_ca`, a
/// client certificate signed by it is required (mutual TLS).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, String> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match client_ca {
        Some(path) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(load_roots(path)?), provider)
                    .build()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))?;
    Ok(Arc::new(config))
}

/// Bench-only server certificate "verifier" for `-S` without `--cacertfile`
/// (emqtt_bench does not verify either): any certificate and name pass; the
/// handshake signatures are still checked against the certificate shown.
/// Never use this where the peer matters.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("certs")
            .join(name)
    }

    #[test]
    fn loads_the_test_certificates() {
        assert!(client_config(None, None, None).is_ok());
        assert!(client_config(Some(&certs("ca.pem")), None, None).is_ok());
        assert!(
            client_config(
                Some(&certs("ca.pem")),
                Some(&certs("client.pem")),
                Some(&certs("client.key"))
            )
            .is_ok()
        );
        assert!(server_config(&certs("server.pem"), &certs("server.key"), None).is_ok());
        assert!(
            server_config(
                &certs("server.pem"),
                &certs("server.key"),
                Some(&certs("ca.pem"))
            )
            .is_ok()
        );
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let missing = client_config(Some(Path::new("/nonexistent/ca.pem")), None, None);
        assert!(missing.unwrap_err().contains("/nonexistent/ca.pem"));
        // A key file holds no certificate.
        let e = client_config(Some(&certs("server.key")), None, None).unwrap_err();
        assert!(e.contains("no CERTIFICATE"), "{e}");
        let e = client_config(None, Some(&certs("client.pem")), None).unwrap_err();
        assert!(e.contains("--keyfile"), "{e}");
        let e = server_config(&certs("server.pem"), &certs("server.pem"), None).unwrap_err();
        assert!(e.contains("no PRIVATE KEY"), "{e}");
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("localhost").is_ok());
        assert!(server_name("bad name!").is_err());
    }
}
