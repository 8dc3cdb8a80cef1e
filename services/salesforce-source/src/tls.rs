//! Which certificate authorities the source trusts: the system's store always, plus the PEM
//! file named by `salesforce_source.tls_ca_file` (a TLS-inspecting proxy's CA, or the
//! sandbox's generated one). Every client the source builds — the OAuth token call, REST
//! (gap recovery, enrichment, backfill) and the Pub/Sub gRPC channel — comes from here, so one
//! key covers every `https://` endpoint.

use std::time::Duration;

use anyhow::Context;
use sfjira_core::config::SalesforceSourceConfig;
use tonic::transport::Channel;

use crate::auth::TokenClient;
use crate::pubsub::{self, PubSubError};

/// The extra CA certificates (PEM), if configured.
pub fn ca_pem(settings: &SalesforceSourceConfig) -> anyhow::Result<Option<Vec<u8>>> {
    settings
        .tls_ca_file
        .as_ref()
        .map(|path| {
            std::fs::read(path).with_context(|| {
                format!(
                    "reading salesforce_source.tls_ca_file {}: give a readable PEM file",
                    path.display()
                )
            })
        })
        .transpose()
}

/// A REST client with `timeout` per request, trusting the configured CA too.
pub fn http_client(
    settings: &SalesforceSourceConfig,
    timeout: Duration,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(pem) = ca_pem(settings)? {
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .context("salesforce_source.tls_ca_file holds no valid PEM certificate")?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}

/// The OAuth client of the configured org, trusting the configured CA too.
pub fn token_client(settings: &SalesforceSourceConfig) -> anyhow::Result<TokenClient> {
    Ok(TokenClient::new(
        &settings.login_url,
        settings.auth.clone(),
        settings.tenant_id.clone(),
    )
    .with_http_client(http_client(settings, Duration::from_secs(30))?))
}

/// The Pub/Sub gRPC channel of the configured endpoint, trusting the configured CA too.
pub async fn pubsub_channel(settings: &SalesforceSourceConfig) -> anyhow::Result<Channel> {
    let ca = ca_pem(settings)?;
    pubsub::connect_with_ca(&settings.pubsub_url, ca.as_deref())
        .await
        .map_err(|e: PubSubError| anyhow::anyhow!(e))
}
