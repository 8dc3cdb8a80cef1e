//! Optional TLS for the Pub/Sub listener, so clients' TLS path (the real endpoint is
//! `api.pubsub.salesforce.com:7443`, TLS only) can be tested: a throw-away CA and a server
//! certificate for the given host names are generated at start; the CA's PEM is written to a
//! file for clients to trust. The generation lives in [`crate::salesforce::tls`], which the
//! whole org uses to serve REST and Pub/Sub with one CA.

use std::path::Path;

use tonic::transport::ServerTlsConfig;

use crate::salesforce::tls::GeneratedTls;

/// Generates the CA and server certificate, writes the CA PEM to `ca_pem_path`.
pub fn self_signed(hosts: &[String], ca_pem_path: &Path) -> anyhow::Result<ServerTlsConfig> {
    let tls = GeneratedTls::generate(hosts)?;
    tls.write_ca(ca_pem_path)?;
    Ok(tls.tonic_config())
}
