//! Access tokens (sessions): issued by the OAuth endpoint, checked by REST and by the Pub/Sub
//! server (S2) through the [`AccessTokens`] trait.
//!
//! Like a real session, a token has no fixed lifetime: it expires after an idle period (org
//! default 2 h, reference §3), and every successful use extends it. Idle time is measured on
//! the [`SandboxClock`], so a scaled clock expires tokens in seconds. The admin API can expire
//! every token at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use super::store::lock;
use crate::clock::SandboxClock;

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `005…`, 18 characters.
    pub user_id: String,
    pub username: String,
    /// `00D…`, 18 characters.
    pub org_id: String,
    /// The `instance_url` handed out with the token.
    pub instance_url: String,
    /// When the token was issued (sandbox time).
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Never issued by this org (or garbage).
    #[error("the access token is not one this org issued")]
    Invalid,
    /// Issued, but idle too long or expired by the admin API: re-run the grant.
    #[error("the session has expired")]
    Expired,
}

/// Validates access tokens. REST uses it for `Authorization: Bearer`; the Pub/Sub server uses
/// it for the `accesstoken` call metadata. A successful validation counts as activity and
/// extends the session.
pub trait AccessTokens: Send + Sync {
    fn validate(&self, token: &str) -> Result<Session, TokenError>;
}

struct Entry {
    session: Session,
    last_used: DateTime<Utc>,
    expired: bool,
}

/// The org's sessions.
pub struct TokenStore {
    clock: SandboxClock,
    idle: Duration,
    tokens: Mutex<HashMap<String, Entry>>,
}

impl TokenStore {
    pub fn new(clock: SandboxClock, idle: Duration) -> Self {
        TokenStore {
            clock,
            idle,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a token for `session`. Real tokens are `<orgId>!<opaque>`; clients may take the
    /// org Id from the part before `!` (reference §1.2), so the sandbox's do too.
    pub fn issue(&self, session: Session) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._";
        let mut rng = rand::rng();
        let opaque: String = (0..96)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        let token = format!("{}!AQ{opaque}", &session.org_id[..15]);
        let now = self.clock.now();
        lock(&self.tokens).insert(
            token.clone(),
            Entry {
                session,
                last_used: now,
                expired: false,
            },
        );
        token
    }

    /// Expires every session now (admin fault).
    pub fn expire_all(&self) {
        for e in lock(&self.tokens).values_mut() {
            e.expired = true;
        }
    }

    /// Forgets every session (reset).
    pub fn clear(&self) {
        lock(&self.tokens).clear();
    }
}

impl AccessTokens for TokenStore {
    fn validate(&self, token: &str) -> Result<Session, TokenError> {
        let now = self.clock.now();
        let mut tokens = lock(&self.tokens);
        let entry = tokens.get_mut(token).ok_or(TokenError::Invalid)?;
        let idle = chrono::Duration::from_std(self.idle).unwrap_or(chrono::Duration::MAX);
        if entry.expired || now - entry.last_used > idle {
            entry.expired = true;
            return Err(TokenError::Expired);
        }
        entry.last_used = now;
        Ok(entry.session.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            user_id: "005Dn0000000001AAA".into(),
            username: "u@x".into(),
            org_id: "00DDn0000000001AAA".into(),
            instance_url: "http://x".into(),
            issued_at: Utc::now(),
        }
    }

    #[test]
    fn idle_tokens_expire_on_the_sandbox_clock() {
        let store = TokenStore::new(SandboxClock::new(3600.0), Duration::from_secs(60));
        let t = store.issue(session());
        assert!(t.starts_with("00DDn0000000001!"));
        assert!(store.validate(&t).is_ok());
        // 50 ms of wall time = 180 sandbox seconds > 60 s idle.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(store.validate(&t), Err(TokenError::Expired));
        assert_eq!(store.validate("nope"), Err(TokenError::Invalid));
    }

    #[test]
    fn expire_all_expires_live_tokens() {
        let store = TokenStore::new(SandboxClock::real_time(), Duration::from_secs(60));
        let t = store.issue(session());
        store.expire_all();
        assert_eq!(store.validate(&t), Err(TokenError::Expired));
    }
}
