//! `POST /services/oauth2/token`: the JWT bearer flow and the client-credentials flow
//! (reference §3), with the real success and error JSON.
//!
//! JWT bearer: the assertion must be RS256-signed by the private key of the certificate
//! configured for the connected app; `iss` = consumer key, `sub` = a username of the org,
//! `aud` = the login URL, `exp` in the future (sandbox clock). Errors observed from real orgs:
//! bad signature → `invalid_grant`/`invalid assertion`
//! (https://github.com/frankkessler/salesforce-laravel-oauth2-rest/issues/68), expired
//! assertion → `invalid_grant`/`expired authorization code`
//! (https://github.com/simple-salesforce/simple-salesforce/issues/491), wrong audience →
//! `invalid_grant`/`audience is invalid` (reference §3). Help page of the flow:
//! https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm

use std::collections::HashMap;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use super::server::SfState;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The verifying key for JWT assertions, from a PEM certificate or public key.
pub fn verifying_key(pem: &str) -> anyhow::Result<VerifyingKey<Sha256>> {
    use anyhow::Context;
    let key = if pem.contains("BEGIN CERTIFICATE") {
        use x509_cert::der::{DecodePem, Encode};
        let cert = x509_cert::Certificate::from_pem(pem.as_bytes())
            .context("the connected app certificate is not a PEM X.509 certificate")?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .context("re-encoding the certificate's public key")?;
        RsaPublicKey::from_public_key_der(&spki)
            .context("the connected app certificate does not hold an RSA key")?
    } else if pem.contains("BEGIN RSA PUBLIC KEY") {
        RsaPublicKey::from_pkcs1_pem(pem).context("bad PKCS#1 RSA public key PEM")?
    } else {
        RsaPublicKey::from_public_key_pem(pem).context("bad PUBLIC KEY PEM")?
    };
    Ok(VerifyingKey::new(key))
}

/// An OAuth error answer: 400 `{"error","error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: &'static str,
}

fn oauth_error(error: &'static str, description: &'static str) -> OAuthError {
    OAuthError { error, description }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        json_utf8(StatusCode::BAD_REQUEST, body.to_string())
    }
}

/// Salesforce labels OAuth JSON `application/json;charset=UTF-8` (reference §3).
fn json_utf8(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<f64>,
}

fn b64url(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

/// Checks a JWT bearer assertion; returns the username (`sub`).
fn check_assertion(state: &SfState, assertion: &str) -> Result<String, OAuthError> {
    let invalid = || oauth_error("invalid_grant", "invalid assertion");
    let parts: Vec<&str> = assertion.split('.').collect();
    let [head, body, sig] = parts.as_slice() else {
        return Err(invalid());
    };
    let header: serde_json::Value =
        serde_json::from_slice(&b64url(head).ok_or_else(invalid)?).map_err(|_| invalid())?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("RS256") {
        return Err(invalid());
    }
    let claims: Claims =
        serde_json::from_slice(&b64url(body).ok_or_else(invalid)?).map_err(|_| invalid())?;
    if claims.iss.as_deref() != Some(state.config.connected_app.consumer_key.as_str()) {
        return Err(oauth_error(
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    let key = state.jwt_key.as_ref().ok_or_else(invalid)?;
    let sig =
        Signature::try_from(b64url(sig).ok_or_else(invalid)?.as_slice()).map_err(|_| invalid())?;
    let signed = &assertion[..head.len() + 1 + body.len()];
    key.verify(signed.as_bytes(), &sig).map_err(|_| invalid())?;
    let audiences: Vec<String> = match &claims.aud {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let accepted = state.accepted_audiences();
    if !audiences
        .iter()
        .any(|a| accepted.iter().any(|ok| ok == a.trim_end_matches('/')))
    {
        return Err(oauth_error("invalid_grant", "audience is invalid"));
    }
    let now = state.org.clock.now().timestamp() as f64;
    match claims.exp {
        Some(exp) if exp > now => {}
        _ => return Err(oauth_error("invalid_grant", "expired authorization code")),
    }
    claims
        .sub
        .ok_or_else(|| oauth_error("invalid_grant", "user hasn't approved this consumer"))
}

/// `POST /services/oauth2/token`.
pub async fn token(
    State(state): State<SfState>,
    headers: axum::http::HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    if let Some(resp) = state.fault_response("oauth").await {
        return resp;
    }
    let Ok(Form(form)) = form else {
        return oauth_error("invalid_request", "grant type is missing").into_response();
    };
    let result = match form.get("grant_type").map(String::as_str) {
        None | Some("") => Err(oauth_error("invalid_request", "grant type is missing")),
        Some(JWT_BEARER) => jwt_bearer(&state, &form),
        Some("client_credentials") if on_login_host(&headers) => Err(oauth_error(
            "invalid_grant",
            "request not supported on this domain",
        )),
        Some("client_credentials") => client_credentials(&state, &form),
        Some(_) => Err(oauth_error(
            "unsupported_grant_type",
            "grant type not supported",
        )),
    };
    match result {
        Ok(body) => json_utf8(StatusCode::OK, body.to_string()),
        Err(e) => e.into_response(),
    }
}

fn jwt_bearer(
    state: &SfState,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let assertion = form
        .get("assertion")
        .ok_or_else(|| oauth_error("invalid_grant", "invalid assertion"))?;
    let username = check_assertion(state, assertion)?;
    let user = state
        .org
        .users
        .iter()
        .find(|u| u.username.eq_ignore_ascii_case(&username))
        // [U] for an unknown user; the real text for a user not pre-authorised for the app.
        .ok_or_else(|| oauth_error("invalid_grant", "user hasn't approved this consumer"))?
        .clone();
    let (token, session) = state.issue(&user);
    Ok(json!({
        "access_token": token,
        "scope": "api",
        "instance_url": session.instance_url,
        "id": state.identity_url(&user.id),
        "token_type": "Bearer",
    }))
}

/// Client credentials work on My Domain hosts only; on `login.salesforce.com` /
/// `test.salesforce.com` the real org refuses them (reference §3; the description is [U]).
/// The sandbox has one host, so this only triggers for a client sending such a `Host`.
fn on_login_host(headers: &axum::http::HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = host.split(':').next().unwrap_or("");
    name.eq_ignore_ascii_case("login.salesforce.com")
        || name.eq_ignore_ascii_case("test.salesforce.com")
}

fn client_credentials(
    state: &SfState,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let app = &state.config.connected_app;
    if form.get("client_id").map(String::as_str) != Some(app.consumer_key.as_str()) {
        return Err(oauth_error(
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    if form.get("client_secret").map(String::as_str) != Some(app.consumer_secret.as_str()) {
        return Err(oauth_error("invalid_client", "invalid client credentials"));
    }
    let user = state.client_credentials_user().clone();
    let (token, session) = state.issue(&user);
    let id = state.identity_url(&user.id);
    let issued_at = session.issued_at.timestamp_millis().to_string();
    Ok(json!({
        "access_token": token,
        "signature": signature(&app.consumer_secret, &id, &issued_at),
        "scope": "api",
        "instance_url": session.instance_url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
    }))
}

/// Base64 HMAC-SHA256 of `id + issued_at` keyed by the consumer secret: what a client can use
/// to check the response came from the org.
fn signature(secret: &str, id: &str, issued_at: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `GET /services/oauth2/userinfo`: who a token belongs to. Clients read `organization_id`
/// from it (reference §1.2, pozil `src/utils/auth.js`). A bad token answers 403
/// `Bad_OAuth_Token` as plain text [U: seen in client code, not in docs].
pub async fn userinfo(State(state): State<SfState>, headers: axum::http::HeaderMap) -> Response {
    use super::auth::AccessTokens;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(session) = token.and_then(|t| state.tokens.validate(t).ok()) else {
        return (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response();
    };
    let name = state
        .org
        .user(&session.user_id)
        .map(|u| u.name.clone())
        .unwrap_or_default();
    let body = json!({
        "sub": state.identity_url(&session.user_id),
        "user_id": session.user_id,
        "organization_id": session.org_id,
        "preferred_username": session.username,
        "name": name,
        "email": session.username,
        "active": true,
        "user_type": "STANDARD",
    });
    json_utf8(StatusCode::OK, body.to_string())
}
