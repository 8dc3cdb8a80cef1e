//! The `salesforce:` section of the sandbox's YAML file: who may log in and how, which users
//! exist, the API allocation, session timeout and snapshot file. Every key has a default so
//! the org starts with no file at all; `sandbox/README.md` documents each key.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SalesforceConfig {
    /// The org Id (`00D…`, 15 or 18 characters). Default: a fixed sandbox org Id.
    pub org_id: Option<String>,
    /// Base URL clients are told to use (`instance_url`). Default: `http://<listen address>`.
    pub instance_url: Option<String>,
    /// The login host, used in the identity URL (`id`) and accepted as JWT `aud`.
    /// Default: `https://login.salesforce.com`.
    pub login_url: String,
    /// The connected app the connector authenticates as.
    pub connected_app: ConnectedAppConfig,
    /// Users of the org besides the built-in ones (see [`UserConfig`]).
    pub users: Vec<UserConfig>,
    /// Username that client-credentials tokens run as. Default: the integration user.
    pub client_credentials_user: Option<String>,
    /// Daily API request allocation (`DailyApiRequests.Max`).
    pub daily_api_limit: u64,
    /// A session expires after this many sandbox seconds without a call (org default 2 h).
    pub token_idle_timeout_secs: u64,
    /// If set, the org's records are loaded from and saved to this JSON file.
    pub snapshot_path: Option<PathBuf>,
    /// Lowest and highest accepted REST API versions (`55.0`, `66.0`).
    pub min_api_version: f64,
    pub max_api_version: f64,
    /// Serve OAuth/REST/admin (HTTPS) and the Pub/Sub API (gRPC over TLS) with a certificate
    /// generated at start; `instance_url` then defaults to `https://<listen address>`.
    pub tls: Option<TlsConfig>,
}

/// `tls:`: one throw-away CA, generated at start, signs the certificate both listeners present.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Where the CA certificate (PEM) is written for clients to trust (replaced at each start).
    pub ca_pem_path: PathBuf,
    /// Names the server certificate is valid for (IP literals become IP SANs). Default
    /// `localhost`, `127.0.0.1`, `::1`; the listen addresses' IPs and the `instance_url` host
    /// are always added.
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectedAppConfig {
    /// The consumer key: JWT `iss` and client-credentials `client_id`.
    pub consumer_key: String,
    /// The consumer secret (client credentials; also keys the response `signature`).
    pub consumer_secret: String,
    /// PEM file with the X.509 certificate (or a `PUBLIC KEY`) uploaded to the connected app;
    /// JWT assertions must be RS256-signed by its private key. No file: JWT bearer is refused.
    pub certificate_path: Option<PathBuf>,
    /// The same PEM inline (tests); wins over `certificate_path`.
    pub certificate_pem: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name, e.g. `alice@sfjira.sandbox`.
    pub username: String,
    /// Display name, e.g. `Alice Martin`.
    pub name: String,
    /// Whether this is an API-only integration user.
    #[serde(default)]
    pub integration: bool,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        SalesforceConfig {
            org_id: None,
            instance_url: None,
            login_url: "https://login.salesforce.com".into(),
            connected_app: ConnectedAppConfig::default(),
            users: Vec::new(),
            client_credentials_user: None,
            daily_api_limit: 100_000,
            token_idle_timeout_secs: 2 * 3600,
            snapshot_path: None,
            min_api_version: 55.0,
            max_api_version: 66.0,
            tls: None,
        }
    }
}

impl Default for ConnectedAppConfig {
    fn default() -> Self {
        ConnectedAppConfig {
            consumer_key: "sfjira-sandbox-consumer-key".into(),
            consumer_secret: "sfjira-sandbox-consumer-secret".into(),
            certificate_path: None,
            certificate_pem: None,
        }
    }
}

impl SalesforceConfig {
    /// Reads the `salesforce:` section of `path` (the whole file may hold other sections).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading sandbox config {}", path.display()))?;
        Self::from_yaml(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn from_yaml(text: &str) -> anyhow::Result<Self> {
        let doc: serde_yaml::Value = serde_yaml::from_str(text).context("not valid YAML")?;
        match doc.get("salesforce") {
            None | Some(serde_yaml::Value::Null) => Ok(Self::default()),
            Some(section) => {
                serde_yaml::from_value(section.clone()).context("invalid `salesforce:` section")
            }
        }
    }

    /// The certificate PEM, inline or from its file.
    pub fn certificate_pem(&self) -> anyhow::Result<Option<String>> {
        if let Some(pem) = &self.connected_app.certificate_pem {
            return Ok(Some(pem.clone()));
        }
        match &self.connected_app.certificate_path {
            None => Ok(None),
            Some(p) => std::fs::read_to_string(p)
                .map(Some)
                .with_context(|| format!("reading connected app certificate {}", p.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_is_optional_and_strict() {
        let c = SalesforceConfig::from_yaml("jira: {}\n").unwrap();
        assert_eq!(c.daily_api_limit, 100_000);
        let c = SalesforceConfig::from_yaml(
            "salesforce:\n  daily_api_limit: 5\n  users:\n    - {username: bob@x, name: Bob}\n",
        )
        .unwrap();
        assert_eq!(c.daily_api_limit, 5);
        assert_eq!(c.users[0].name, "Bob");
        assert!(SalesforceConfig::from_yaml("salesforce:\n  bogus: 1\n").is_err());
        let c = SalesforceConfig::from_yaml(
            "salesforce:\n  tls: { ca_pem_path: /tmp/ca.pem, hosts: [127.0.0.1, localhost] }\n",
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.ca_pem_path, PathBuf::from("/tmp/ca.pem"));
        assert_eq!(tls.hosts, ["127.0.0.1", "localhost"]);
        assert!(SalesforceConfig::from_yaml("salesforce:\n  tls: { hosts: [x] }\n").is_err());
    }
}
