//! TLS for both listeners of the org (issue #3: "The gRPC and HTTPS endpoints can also be served
//! over TLS with a certificate generated at start (its CA written to a file), so clients' TLS
//! path is tested too"). The real endpoints are TLS only (`https://<domain>.my.salesforce.com`,
//! `api.pubsub.salesforce.com:7443`, reference §1.2).
//!
//! [`GeneratedTls::generate`] makes one throw-away CA and one server certificate for the given
//! host names (IP literals become IP SANs); the OAuth/REST listener ([`TlsListener`], rustls
//! with the `ring` provider) and the Pub/Sub server ([`GeneratedTls::tonic_config`]) present the
//! same certificate, so a client trusts one CA file for both.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

/// Host names the certificate is valid for when none are configured.
pub const DEFAULT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A generated CA and the server certificate it signed.
pub struct GeneratedTls {
    /// The CA certificate (PEM): what clients trust.
    pub ca_pem: String,
    /// The server certificate (PEM and DER) and its PKCS#8 private key.
    pub cert_pem: String,
    cert_der: Vec<u8>,
    pub key_pem: String,
    key_der: Vec<u8>,
    /// The names in the certificate's subjectAltName.
    pub hosts: Vec<String>,
}

impl std::fmt::Debug for GeneratedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedTls")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl GeneratedTls {
    /// A fresh CA and a server certificate for `hosts` (deduplicated, order kept).
    pub fn generate(hosts: &[String]) -> anyhow::Result<Self> {
        let mut names: Vec<String> = Vec::new();
        for h in hosts {
            let h = h.trim().trim_start_matches('[').trim_end_matches(']');
            if !h.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(h)) {
                names.push(h.to_string());
            }
        }
        anyhow::ensure!(!names.is_empty(), "TLS needs at least one host name");

        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "sfjira-sandbox CA");
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::from_params(&ca_params, &ca_key);

        let mut params = CertificateParams::new(names.clone())
            .with_context(|| format!("invalid TLS host name among {names:?}"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(GeneratedTls {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            hosts: names,
        })
    }

    /// Writes the CA PEM to `path` atomically (a temporary file renamed into place), so a
    /// client waiting for the file never reads half of it.
    pub fn write_ca(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating {} for the CA certificate", dir.display()))?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, &self.ca_pem)
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("writing the sandbox CA certificate to {}", path.display()))
    }

    /// The Pub/Sub (tonic) server's TLS settings.
    pub fn tonic_config(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            &self.cert_pem,
            &self.key_pem,
        ))
    }

    /// The OAuth/REST listener's rustls settings (ring provider, TLS 1.2 and 1.3, ALPN
    /// `http/1.1`: the axum server is built without HTTP/2).
    pub fn rustls_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(self.cert_der.clone())], key)
            .context("loading the generated server certificate")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The names a certificate for these listeners needs: the configured ones (default
/// [`DEFAULT_HOSTS`]), each listen address's IP unless it is a wildcard, and the host of the
/// configured `instance_url`.
pub fn certificate_hosts(
    configured: &[String],
    listen: &[SocketAddr],
    instance_url: Option<&str>,
) -> Vec<String> {
    let mut hosts: Vec<String> = if configured.is_empty() {
        DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect()
    } else {
        configured.to_vec()
    };
    for a in listen {
        if !a.ip().is_unspecified() {
            hosts.push(a.ip().to_string());
        }
    }
    if let Some(host) = instance_url.and_then(url_host) {
        hosts.push(host);
    }
    hosts
}

/// `https://host:port/path` → `host` (`[::1]` → `::1`).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP listener that hands out TLS streams to `axum::serve`. Handshakes run in their own
/// tasks, so a slow or broken client does not hold up the others; failed handshakes are logged
/// at debug level and dropped. Dropping the listener (the server stopping) ends the accept task
/// and closes the port.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    r = tcp.accept() => match r {
                        Ok(c) => c,
                        Err(e) => {
                            // Like axum's own listener: e.g. too many open files; back off.
                            tracing::warn!(error = %e, "accepting a TLS connection failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = tx.closed() => return,
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task only ends once this listener is gone; never reached.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_cover_listen_addresses_and_instance_url() {
        let hosts = certificate_hosts(
            &[],
            &["0.0.0.0:1".parse().unwrap(), "192.0.2.7:2".parse().unwrap()],
            Some("https://org.example.test:8443/x"),
        );
        assert_eq!(
            hosts,
            [
                "localhost",
                "127.0.0.1",
                "::1",
                "192.0.2.7",
                "org.example.test"
            ]
        );
        assert_eq!(url_host("https://[::1]:443").as_deref(), Some("::1"));
    }

    #[test]
    fn generates_a_usable_identity() {
        let tls =
            GeneratedTls::generate(&["localhost".into(), "127.0.0.1".into(), "localhost".into()])
                .unwrap();
        assert_eq!(tls.hosts, ["localhost", "127.0.0.1"]);
        assert!(tls.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        tls.rustls_config().unwrap();
    }
}
