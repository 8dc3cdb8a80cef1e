//! OAuth 2.0 (3LO) as `auth.atlassian.com` does it (reference §2): `POST /oauth/token` with a
//! JSON body for the `authorization_code` and `refresh_token` grants, access tokens valid 3600 s
//! of sandbox time, and **rotating refresh tokens**: each refresh returns a new refresh token
//! and supersedes the old one; a superseded token still works for a 10-minute leeway, and reuse
//! after that "invalidates all refresh tokens, and requires the user to re-consent"
//! (https://community.developer.atlassian.com/t/updated-31-january-2022-action-required-deprecating-persistent-refresh-tokens/54172).
//! Refresh tokens also lapse after 90 days unused and 365 days after consent. Failures are
//! 403 `invalid_grant`. Browser consent is replaced by `POST /__admin/jira/oauth/code`.
//!
//! Error descriptions are Auth0's (Atlassian's identity provider) as seen in forum posts [S].

use std::collections::HashMap;

use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::config::OAuthClient;

pub const ACCESS_TOKEN_SECONDS: i64 = 3600;
const REUSE_LEEWAY: TimeDelta = TimeDelta::minutes(10);
const INACTIVITY_EXPIRY: TimeDelta = TimeDelta::days(90);
const ABSOLUTE_EXPIRY: TimeDelta = TimeDelta::days(365);
/// [U] Auth0 codes are short-lived; Atlassian does not publish the figure.
const CODE_LIFETIME: TimeDelta = TimeDelta::minutes(10);

/// The token endpoint's request body.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub code: Option<String>,
    pub refresh_token: Option<String>,
    pub redirect_uri: Option<String>,
}

/// An OAuth error answer (`{"error","error_description"}`).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn invalid_grant(description: &str) -> Self {
        OAuthError {
            status: StatusCode::FORBIDDEN,
            error: "invalid_grant",
            description: description.into(),
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": self.error, "error_description": self.description})
    }
}

#[derive(Debug, Clone)]
struct PendingCode {
    client_id: String,
    account_id: String,
    scope: String,
    redirect_uri: Option<String>,
    expires_at: DateTime<Utc>,
}

/// One user's consent to one app; all its tokens die together.
#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    account_id: String,
    scope: String,
    consented_at: DateTime<Utc>,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct RefreshToken {
    grant: u64,
    last_used: DateTime<Utc>,
    superseded_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct AccessToken {
    grant: u64,
    expires_at: DateTime<Utc>,
}

/// The authorization server's state.
#[derive(Debug, Default)]
pub struct OAuthStore {
    clients: Vec<OAuthClient>,
    codes: HashMap<String, PendingCode>,
    grants: HashMap<u64, Grant>,
    next_grant: u64,
    refresh: HashMap<String, RefreshToken>,
    access: HashMap<String, AccessToken>,
}

fn random_token(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl OAuthStore {
    pub fn new(clients: Vec<OAuthClient>) -> Self {
        OAuthStore {
            clients,
            ..Default::default()
        }
    }

    /// Stands in for the consent screen: an authorization code for `account_id`.
    pub fn mint_code(
        &mut self,
        client_id: &str,
        account_id: &str,
        scope: &str,
        redirect_uri: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<String, String> {
        if !self.clients.iter().any(|c| c.client_id == client_id) {
            return Err(format!("unknown client_id {client_id:?}"));
        }
        let code = random_token("");
        self.codes.insert(
            code.clone(),
            PendingCode {
                client_id: client_id.into(),
                account_id: account_id.into(),
                scope: scope.into(),
                redirect_uri,
                expires_at: now + CODE_LIFETIME,
            },
        );
        Ok(code)
    }

    /// `POST /oauth/token`.
    pub fn token(&mut self, req: &TokenRequest, now: DateTime<Utc>) -> Result<Value, OAuthError> {
        let client = self
            .clients
            .iter()
            .find(|c| Some(&c.client_id) == req.client_id.as_ref());
        if client.is_none_or(|c| Some(&c.client_secret) != req.client_secret.as_ref()) {
            return Err(OAuthError {
                status: StatusCode::UNAUTHORIZED,
                error: "access_denied",
                description: "Unauthorized".into(),
            });
        }
        let client_id = req.client_id.clone().unwrap_or_default();
        let grant_id = match req.grant_type.as_deref() {
            Some("authorization_code") => self.redeem_code(req, &client_id, now)?,
            Some("refresh_token") => self.rotate(req, &client_id, now)?,
            other => {
                return Err(OAuthError {
                    status: StatusCode::FORBIDDEN,
                    error: "unsupported_grant_type",
                    description: format!("Unsupported grant type: {}", other.unwrap_or("")), // [U]
                });
            }
        };
        Ok(self.issue_tokens(grant_id, now))
    }

    fn redeem_code(
        &mut self,
        req: &TokenRequest,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, OAuthError> {
        // A code is single-use: removed whether or not it is accepted.
        let code = req.code.as_deref().and_then(|c| self.codes.remove(c));
        let Some(code) = code.filter(|c| c.client_id == client_id && c.expires_at > now) else {
            return Err(OAuthError::invalid_grant("Invalid authorization code"));
        };
        if code.redirect_uri.is_some() && code.redirect_uri != req.redirect_uri {
            return Err(OAuthError::invalid_grant("Invalid redirect_uri")); // [U]
        }
        let id = self.next_grant;
        self.next_grant += 1;
        self.grants.insert(
            id,
            Grant {
                client_id: client_id.into(),
                account_id: code.account_id,
                scope: code.scope,
                consented_at: now,
                revoked: false,
            },
        );
        Ok(id)
    }

    fn rotate(
        &mut self,
        req: &TokenRequest,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, OAuthError> {
        let unknown = || OAuthError::invalid_grant("Unknown or invalid refresh token.");
        let token = req.refresh_token.as_deref().ok_or_else(unknown)?;
        let rt = self.refresh.get(token).cloned().ok_or_else(unknown)?;
        let grant = self.grants.get(&rt.grant).cloned().ok_or_else(unknown)?;
        if grant.revoked || grant.client_id != client_id {
            return Err(unknown());
        }
        if now - rt.last_used > INACTIVITY_EXPIRY || now - grant.consented_at > ABSOLUTE_EXPIRY {
            return Err(unknown());
        }
        if let Some(superseded) = rt.superseded_at
            && now - superseded > REUSE_LEEWAY
        {
            // Reuse outside the leeway: a leaked token; kill the whole family.
            self.revoke_grant(rt.grant);
            return Err(unknown());
        }
        // Rotation: every live refresh token of the grant is superseded by the new one.
        for other in self
            .refresh
            .values_mut()
            .filter(|o| o.grant == rt.grant && o.superseded_at.is_none())
        {
            other.superseded_at = Some(now);
        }
        Ok(rt.grant)
    }

    fn revoke_grant(&mut self, grant: u64) {
        if let Some(g) = self.grants.get_mut(&grant) {
            g.revoked = true;
        }
        self.refresh.retain(|_, t| t.grant != grant);
        self.access.retain(|_, t| t.grant != grant);
    }

    fn issue_tokens(&mut self, grant_id: u64, now: DateTime<Utc>) -> Value {
        let grant = self.grants[&grant_id].clone();
        let access = random_token("sbx-at-");
        self.access.insert(
            access.clone(),
            AccessToken {
                grant: grant_id,
                expires_at: now + TimeDelta::seconds(ACCESS_TOKEN_SECONDS),
            },
        );
        let mut body = json!({
            "access_token": access,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "token_type": "Bearer",
            "scope": grant.scope,
        });
        // A refresh token only with the offline_access scope (reference §2).
        if grant
            .scope
            .split_whitespace()
            .any(|s| s == "offline_access")
        {
            let refresh = random_token("sbx-rt-");
            self.refresh.insert(
                refresh.clone(),
                RefreshToken {
                    grant: grant_id,
                    last_used: now,
                    superseded_at: None,
                },
            );
            body["refresh_token"] = json!(refresh);
        }
        body
    }

    /// The account behind a live bearer token.
    pub fn authenticate(&self, access_token: &str, now: DateTime<Utc>) -> Option<(String, String)> {
        let t = self
            .access
            .get(access_token)
            .filter(|t| t.expires_at > now)?;
        let g = self.grants.get(&t.grant).filter(|g| !g.revoked)?;
        Some((g.account_id.clone(), g.scope.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> OAuthStore {
        OAuthStore::new(vec![OAuthClient {
            client_id: "c".into(),
            client_secret: "s".into(),
        }])
    }

    fn req(grant: &str, code: Option<&str>, refresh: Option<&str>) -> TokenRequest {
        TokenRequest {
            grant_type: Some(grant.into()),
            client_id: Some("c".into()),
            client_secret: Some("s".into()),
            code: code.map(str::to_string),
            refresh_token: refresh.map(str::to_string),
            redirect_uri: None,
        }
    }

    #[test]
    fn rotation_leeway_and_family_kill() {
        let mut s = store();
        let t0 = Utc::now();
        let code = s
            .mint_code("c", "acct", "read:jira-work offline_access", None, t0)
            .unwrap();
        let first = s
            .token(&req("authorization_code", Some(&code), None), t0)
            .unwrap();
        assert!(
            s.token(&req("authorization_code", Some(&code), None), t0)
                .is_err(),
            "codes are single-use"
        );
        let r1 = first["refresh_token"].as_str().unwrap().to_string();
        let second = s.token(&req("refresh_token", None, Some(&r1)), t0).unwrap();
        let r2 = second["refresh_token"].as_str().unwrap().to_string();
        assert_ne!(r1, r2);
        // Within the leeway the old token still works.
        assert!(
            s.token(
                &req("refresh_token", None, Some(&r1)),
                t0 + TimeDelta::minutes(5)
            )
            .is_ok()
        );
        // Outside it, the whole grant dies, including the newest token and access tokens.
        let err = s
            .token(
                &req("refresh_token", None, Some(&r1)),
                t0 + TimeDelta::minutes(11),
            )
            .unwrap_err();
        assert_eq!(
            (err.status, err.error),
            (StatusCode::FORBIDDEN, "invalid_grant")
        );
        assert!(
            s.token(
                &req("refresh_token", None, Some(&r2)),
                t0 + TimeDelta::minutes(11)
            )
            .is_err()
        );
        assert!(
            s.authenticate(second["access_token"].as_str().unwrap(), t0)
                .is_none()
        );
    }
}
