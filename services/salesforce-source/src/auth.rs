//! OAuth 2.0 against `<login_url>/services/oauth2/token` (reference §3): client credentials or
//! JWT bearer (RS256 assertion signed with the connected app's key). The token is fetched at
//! start and again whenever Salesforce says it is no longer valid (`UNAUTHENTICATED` /
//! `service.auth.error` on gRPC, 401 `INVALID_SESSION_ID` on REST) — Salesforce tokens carry no
//! expiry, so refresh-on-rejection is the only reliable rule.
//!
//! The access token and the private key are never logged: [`Session`]'s `Debug` leaves the
//! token out, and error texts carry Salesforce's `error`/`error_description`, never a request.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde::Deserialize;
use sfjira_core::config::{AuthKind, SalesforceAuth};

/// A logged-in session: what the Pub/Sub metadata needs.
#[derive(Clone)]
pub struct Session {
    pub access_token: String,
    pub instance_url: String,
    /// The org Id (`tenantid`).
    pub tenant_id: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("instance_url", &self.instance_url)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Salesforce refused the login ({status}): {error}: {description}")]
    Refused {
        status: u16,
        error: String,
        description: String,
    },
    #[error("cannot reach the Salesforce token endpoint {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the private key for JWT bearer is not a PKCS#8 RSA PEM: {0}")]
    BadKey(String),
    #[error("the token response has no org Id (no `id` URL); set salesforce_source.tenant_id")]
    NoTenant,
}

impl AuthError {
    /// Worth trying again later (the server or the network, not the credentials).
    pub fn is_transient(&self) -> bool {
        match self {
            AuthError::Unreachable { .. } => true,
            AuthError::Refused { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Logs in with the configured grant.
pub struct TokenClient {
    http: reqwest::Client,
    token_url: String,
    grant: SalesforceAuth,
    tenant_override: Option<String>,
}

impl TokenClient {
    pub fn new(login_url: &str, grant: SalesforceAuth, tenant_id: Option<String>) -> Self {
        TokenClient {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("a default reqwest client builds"),
            token_url: format!("{}/services/oauth2/token", login_url.trim_end_matches('/')),
            grant,
            tenant_override: tenant_id,
        }
    }

    /// Uses `http` for the token calls (e.g. a client trusting a custom CA; see
    /// `crate::tls::token_client`). Its timeout applies to each login.
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Runs the grant and returns a fresh session. A transient failure (5xx, 429, no answer)
    /// is retried with backoff and jitter for up to 30 s: Salesforce's token endpoint has its
    /// bad moments too, and a 503 there must not read as "credentials refused" and stop the
    /// service. Refusals (4xx) return at once.
    pub async fn login(&self) -> Result<Session, AuthError> {
        let policy = sfjira_core::retry::RetryPolicy {
            initial_delay_ms: 250,
            max_delay_ms: 5_000,
            max_attempts: 8,
            max_elapsed_ms: 30_000,
        };
        sfjira_core::retry::retry(
            &policy,
            || self.login_once(),
            |e: &AuthError| {
                if e.is_transient() {
                    sfjira_core::retry::RetryDecision::Retry { hint: None }
                } else {
                    sfjira_core::retry::RetryDecision::Fail
                }
            },
        )
        .await
        .map_err(|e| e.error)
    }

    async fn login_once(&self) -> Result<Session, AuthError> {
        let g = &self.grant;
        let form: Vec<(&str, String)> = match g.kind {
            AuthKind::ClientCredentials => vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", g.client_id.clone()),
                (
                    "client_secret",
                    g.client_secret
                        .as_ref()
                        .map(|s| s.expose().to_string())
                        .unwrap_or_default(),
                ),
            ],
            AuthKind::JwtBearer => vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ),
                (
                    "assertion",
                    jwt_assertion(
                        &g.client_id,
                        g.username.as_deref().unwrap_or_default(),
                        &g.audience,
                        g.private_key.as_ref().map_or("", |k| k.expose()),
                    )?,
                ),
            ],
        };
        let unreachable = |source| AuthError::Unreachable {
            url: self.token_url.clone(),
            source,
        };
        let resp = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status();
        if !status.is_success() {
            let body: ErrorBody = resp.json().await.unwrap_or_default();
            return Err(AuthError::Refused {
                status: status.as_u16(),
                error: body.error,
                description: body.error_description,
            });
        }
        let token: TokenResponse = resp.json().await.map_err(unreachable)?;
        let tenant_id = match &self.tenant_override {
            Some(t) => t.clone(),
            None => org_id(token.id.as_deref(), &token.access_token).ok_or(AuthError::NoTenant)?,
        };
        tracing::info!(instance_url = %token.instance_url, %tenant_id, "logged in to Salesforce");
        Ok(Session {
            access_token: token.access_token,
            instance_url: token.instance_url,
            tenant_id,
        })
    }
}

/// The org Id from the identity URL (`…/id/<orgId>/<userId>`), or else the token's prefix
/// before `!` (reference §1.2).
fn org_id(id_url: Option<&str>, token: &str) -> Option<String> {
    if let Some(url) = id_url {
        let parts: Vec<&str> = url.trim_end_matches('/').rsplit('/').collect();
        if parts.len() >= 3 && parts[2] == "id" {
            return Some(parts[1].to_string());
        }
    }
    token
        .split_once('!')
        .map(|(org, _)| org.to_string())
        .filter(|o| o.starts_with("00D"))
}

/// A signed RS256 JWT-bearer assertion (`iss` consumer key, `sub` username, `aud`, `exp` now +
/// 300 s, as the official samples do).
pub fn jwt_assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    private_key_pem: &str,
) -> Result<String, AuthError> {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_key_pem)
        .map_err(|e| AuthError::BadKey(e.to_string()))?;
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 300;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims =
        serde_json::json!({"iss": client_id, "sub": username, "aud": audience, "exp": exp});
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let signer = SigningKey::<sha2::Sha256>::new(key);
    let signature = signer.sign(signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_id_from_identity_url_or_token() {
        assert_eq!(
            org_id(
                Some("https://login.salesforce.com/id/00DDn0000000001AAA/005xx000001Sv6eAAC"),
                "x"
            )
            .as_deref(),
            Some("00DDn0000000001AAA")
        );
        assert_eq!(
            org_id(None, "00DDn0000000001!AQ4AQ.token").as_deref(),
            Some("00DDn0000000001")
        );
        assert_eq!(org_id(None, "opaque"), None);
    }

    #[test]
    fn session_debug_hides_the_token() {
        let s = Session {
            access_token: "00D!supersecret".into(),
            instance_url: "https://x".into(),
            tenant_id: "00D".into(),
        };
        assert!(!format!("{s:?}").contains("supersecret"));
    }

    #[test]
    fn bad_key_is_reported_without_echoing_it() {
        let err =
            jwt_assertion("c", "u", "a", "-----BEGIN PRIVATE KEY-----\nnotakey\n").unwrap_err();
        assert!(matches!(err, AuthError::BadKey(_)));
        assert!(!err.to_string().contains("notakey"));
    }
}
