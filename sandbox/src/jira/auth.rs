//! Who is calling. REST calls need Basic `email:api-token` (reference §2) or an OAuth 2.0
//! bearer access token from [`super::oauth`]; anything else is a 401 as Jira Cloud answers it:
//! a plain-text body `Client must be authenticated to access this resource.` with a
//! `WWW-Authenticate` challenge (`GET /rest/api/3/myself` with a bad token,
//! https://github.com/atlassian/gajira-login/issues/59; the challenge's realm is [U]).
//!
//! The admin API's "act as a user" path sets [`ActAs`] instead, and the caller is that user.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::app::AppState;

pub const UNAUTHENTICATED: &str = "Client must be authenticated to access this resource.";

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ApiToken,
    OAuth,
    /// The admin API acting as a person.
    Admin,
}

/// The authenticated caller, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    pub method: AuthMethod,
}

/// Set by the admin API's URI rewrite: the account to act as.
#[derive(Debug, Clone)]
pub struct ActAs(pub String);

/// Basic-auth tokens: (lower-cased email, token) → account id.
#[derive(Debug, Default)]
pub struct ApiTokens {
    by_credentials: HashMap<(String, String), String>,
}

impl ApiTokens {
    pub fn new(entries: impl IntoIterator<Item = (String, String, String)>) -> Self {
        ApiTokens {
            by_credentials: entries
                .into_iter()
                .map(|(email, token, account)| ((email.to_lowercase(), token), account))
                .collect(),
        }
    }

    fn check(&self, email: &str, token: &str) -> Option<&String> {
        self.by_credentials
            .get(&(email.to_lowercase(), token.to_string()))
    }
}

fn caller_from_header(state: &AppState, value: &str) -> Option<Caller> {
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (email, token) = text.split_once(':')?;
        let account_id = state.api_tokens.check(email, token)?.clone();
        Some(Caller {
            account_id,
            method: AuthMethod::ApiToken,
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let oauth = state.oauth.lock().unwrap_or_else(|p| p.into_inner());
        let (account_id, _scope) = oauth.authenticate(rest.trim(), state.clock.now())?;
        Some(Caller {
            account_id,
            method: AuthMethod::OAuth,
        })
    } else {
        None
    }
}

/// The 401 answer.
pub fn unauthenticated() -> Response {
    let mut resp = (StatusCode::UNAUTHORIZED, UNAUTHENTICATED).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=UTF-8"),
    );
    h.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"protected-area\""),
    );
    h.insert(
        "x-seraph-loginreason",
        HeaderValue::from_static("AUTHENTICATED_FAILED"),
    );
    resp
}

/// axum middleware over the REST routes: resolves the [`Caller`] or answers 401.
pub async fn require(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let caller = match req.extensions().get::<ActAs>() {
        Some(ActAs(who)) => {
            // Account id, email or display name, resolved against the site's users.
            let found = state
                .lock_site()
                .catalog
                .find_user(who)
                .map(|u| u.account_id.clone());
            match found {
                Some(account_id) => Some(Caller {
                    account_id,
                    method: AuthMethod::Admin,
                }),
                None => {
                    let msg = format!("The sandbox has no user {who:?} to act as.");
                    return super::error::ApiError::message(StatusCode::NOT_FOUND, msg)
                        .into_response();
                }
            }
        }
        None => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| caller_from_header(&state, v)),
    };
    match caller {
        Some(c) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        None => unauthenticated(),
    }
}
