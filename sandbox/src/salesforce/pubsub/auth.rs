//! Who may call the Pub/Sub API: every call carries `accesstoken`, `instanceurl` and
//! `tenantid` metadata (reference §1.2), checked against the org's sessions.
//!
//! Until the org's OAuth module provides `AccessTokens`, the trait is declared here with the
//! same shape; [`StaticTokens`] is a fixed table for tests.

use std::collections::HashMap;
use std::sync::Mutex;

use tonic::metadata::MetadataMap;

/// An authenticated session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    /// 18-character org Id (`tenantid`).
    pub org_id: String,
    /// `https://<domain>.my.salesforce.com`.
    pub instance_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid access token")]
    Invalid,
    #[error("expired access token")]
    Expired,
}

/// Validates access tokens (the org's OAuth sessions).
pub trait AccessTokens: Send + Sync {
    fn validate(&self, token: &str) -> Result<Session, TokenError>;
}

/// A fixed token table (tests, local runs).
#[derive(Debug, Default)]
pub struct StaticTokens {
    tokens: Mutex<HashMap<String, Result<Session, TokenError>>>,
}

impl StaticTokens {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, token: &str, session: Session) {
        self.lock().insert(token.to_string(), Ok(session));
    }

    /// Makes `token` answer [`TokenError::Expired`].
    pub fn expire(&self, token: &str) {
        self.lock()
            .insert(token.to_string(), Err(TokenError::Expired));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Result<Session, TokenError>>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AccessTokens for StaticTokens {
    fn validate(&self, token: &str) -> Result<Session, TokenError> {
        self.lock()
            .get(token)
            .cloned()
            .unwrap_or(Err(TokenError::Invalid))
    }
}

/// Why a call's credentials were refused (all answered alike: `service.auth.error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    MissingHeader(&'static str),
    Token(TokenError),
    TenantMismatch,
    InstanceMismatch,
}

/// Checks the three metadata entries (gRPC keys are lower case on the wire).
pub fn authenticate(tokens: &dyn AccessTokens, md: &MetadataMap) -> Result<Session, AuthFailure> {
    let get = |key: &'static str| {
        md.get(key)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(AuthFailure::MissingHeader(key))
    };
    let token = get("accesstoken")?;
    let instance = get("instanceurl")?;
    let tenant = get("tenantid")?;
    let session = tokens.validate(token).map_err(AuthFailure::Token)?;
    // A 15-character org Id is the case-sensitive prefix of the 18-character one.
    if !(session.org_id == tenant || (tenant.len() == 15 && session.org_id.starts_with(tenant))) {
        return Err(AuthFailure::TenantMismatch);
    }
    if session.instance_url.trim_end_matches('/') != instance.trim_end_matches('/') {
        return Err(AuthFailure::InstanceMismatch);
    }
    Ok(session)
}
