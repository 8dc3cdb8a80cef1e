//! Optional TLS for the Pub/Sub listener, so clients' TLS path (the real endpoint is
//! `api.pubsub.salesforce.com:7443`, TLS only) can be tested: a throw-away CA and a server
//! certificate for the given host names are generated at start; the CA's PEM is written to a
//! file for clients to trust.

use std::path::Path;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tonic::transport::{Identity, ServerTlsConfig};

/// Generates the CA and server certificate, writes the CA PEM to `ca_pem_path`.
pub fn self_signed(hosts: &[String], ca_pem_path: &Path) -> anyhow::Result<ServerTlsConfig> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sfjira-sandbox Pub/Sub CA");
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);

    let mut params = CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name.push(
        DnType::CommonName,
        hosts.first().map_or("localhost", String::as_str),
    );
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;

    std::fs::write(ca_pem_path, ca_cert.pem()).with_context(|| {
        format!(
            "writing the Pub/Sub CA certificate to {}",
            ca_pem_path.display()
        )
    })?;
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert.pem(), key.serialize_pem())))
}
