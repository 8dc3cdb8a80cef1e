//! OAuth against the Salesforce sandbox over HTTP: both grants' success shapes, every error
//! body byte for byte, session expiry on a scaled clock (reference §3).

#[path = "salesforce_support/mod.rs"]
mod support;

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sfjira_sandbox::clock::SandboxClock;
use support::*;

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn claims(org: &TestOrg, aud: &str, exp_offset: i64) -> Value {
    let now = org.org.org.clock.now().timestamp();
    json!({
        "iss": CONSUMER_KEY,
        "sub": "sfjira-integration@sfjira.sandbox",
        "aud": aud,
        "exp": now + exp_offset,
    })
}

async fn assert_oauth_error(org: &TestOrg, pairs: &[(&str, &str)], body: &str) {
    let (status, ct, text) = parts(org.token_request(pairs).await).await;
    assert_eq!(
        (status, ct.as_str(), text.as_str()),
        (400, "application/json;charset=UTF-8", body)
    );
}

#[tokio::test]
async fn client_credentials_returns_the_real_shape() {
    let org = start().await;
    let resp = org
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", CONSUMER_KEY),
            ("client_secret", CONSUMER_SECRET),
        ])
        .await;
    let (status, ct, text) = parts(resp).await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/json;charset=UTF-8")
    );
    let body: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = body.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "signature",
            "scope",
            "instance_url",
            "id",
            "token_type",
            "issued_at"
        ]
    );
    let integration = org.org.org.integration_user().id.clone();
    let id = format!(
        "https://login.salesforce.com/id/{}/{integration}",
        org.org.org.org_id
    );
    assert_eq!(body["id"], json!(id));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], json!(org.base));
    let issued_at = body["issued_at"].as_str().unwrap();
    assert!(issued_at.parse::<i64>().is_ok(), "{issued_at}");
    // The signature is HMAC-SHA256(id + issued_at) under the consumer secret.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(CONSUMER_SECRET.as_bytes()).unwrap();
    mac.update(format!("{id}{issued_at}").as_bytes());
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(body["signature"], json!(expected));
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with(&format!("{}!", &org.org.org.org_id[..15])));
    let (status, _) = org
        .call(token, Method::GET, &format!("{V}/limits"), None, &[])
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn jwt_bearer_grants_a_session_for_the_subject() {
    let org = start().await;
    let assertion = jwt(TEST_KEY, &claims(&org, "https://login.salesforce.com", 300));
    let resp = org
        .token_request(&[("grant_type", JWT_GRANT), ("assertion", &assertion)])
        .await;
    let (status, _, text) = parts(resp).await;
    assert_eq!(status, 200, "{text}");
    let body: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = body.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["access_token", "scope", "instance_url", "id", "token_type"]
    );
    let token = body["access_token"].as_str().unwrap();
    let (status, text) = org
        .call(
            token,
            Method::GET,
            &format!("{V}/sobjects/Account/describe"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, info) = org
        .json(token, Method::GET, "/services/oauth2/userinfo", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["organization_id"], json!(org.org.org.org_id));
    assert_eq!(
        info["preferred_username"],
        "sfjira-integration@sfjira.sandbox"
    );
}

#[tokio::test]
async fn jwt_bearer_errors_are_the_real_ones() {
    let org = start().await;
    let bad_sig = jwt(
        OTHER_KEY,
        &claims(&org, "https://login.salesforce.com", 300),
    );
    assert_oauth_error(
        &org,
        &[("grant_type", JWT_GRANT), ("assertion", &bad_sig)],
        r#"{"error":"invalid_grant","error_description":"invalid assertion"}"#,
    )
    .await;
    let expired = jwt(TEST_KEY, &claims(&org, "https://login.salesforce.com", -10));
    assert_oauth_error(
        &org,
        &[("grant_type", JWT_GRANT), ("assertion", &expired)],
        r#"{"error":"invalid_grant","error_description":"expired authorization code"}"#,
    )
    .await;
    let wrong_aud = jwt(TEST_KEY, &claims(&org, "https://example.com", 300));
    assert_oauth_error(
        &org,
        &[("grant_type", JWT_GRANT), ("assertion", &wrong_aud)],
        r#"{"error":"invalid_grant","error_description":"audience is invalid"}"#,
    )
    .await;
    let mut c = claims(&org, "https://login.salesforce.com", 300);
    c["iss"] = json!("someone-else");
    let wrong_iss = jwt(TEST_KEY, &c);
    assert_oauth_error(
        &org,
        &[("grant_type", JWT_GRANT), ("assertion", &wrong_iss)],
        r#"{"error":"invalid_client_id","error_description":"client identifier invalid"}"#,
    )
    .await;
    assert_oauth_error(
        &org,
        &[("grant_type", JWT_GRANT), ("assertion", "not-a-jwt")],
        r#"{"error":"invalid_grant","error_description":"invalid assertion"}"#,
    )
    .await;
}

#[tokio::test]
async fn client_and_grant_errors_are_the_real_ones() {
    let org = start().await;
    assert_oauth_error(
        &org,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CONSUMER_KEY),
            ("client_secret", "wrong"),
        ],
        r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
    )
    .await;
    assert_oauth_error(
        &org,
        &[
            ("grant_type", "password"),
            ("username", "x"),
            ("password", "y"),
        ],
        r#"{"error":"unsupported_grant_type","error_description":"grant type not supported"}"#,
    )
    .await;
    assert_oauth_error(
        &org,
        &[("client_id", CONSUMER_KEY)],
        r#"{"error":"invalid_request","error_description":"grant type is missing"}"#,
    )
    .await;
    // Client credentials need a My Domain host, not the login host.
    let resp = org
        .http
        .post(org.url("/services/oauth2/token"))
        .header("host", "login.salesforce.com")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CONSUMER_KEY),
            ("client_secret", CONSUMER_SECRET),
        ]))
        .send()
        .await
        .unwrap();
    let (status, _, text) = parts(resp).await;
    assert_eq!(
        (status, text.as_str()),
        (
            400,
            r#"{"error":"invalid_grant","error_description":"request not supported on this domain"}"#
        )
    );
}

const INVALID_SESSION: &str =
    r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;

#[tokio::test]
async fn idle_sessions_expire_on_the_sandbox_clock() {
    let mut config = config();
    config.token_idle_timeout_secs = 60;
    // 600 sandbox seconds per wall second: 60 s idle = 100 ms.
    let org = start_with(config, SandboxClock::new(600.0)).await;
    let token = org.token().await;
    let (status, _) = org
        .call(&token, Method::GET, &format!("{V}/limits"), None, &[])
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let (status, body) = org
        .call(&token, Method::GET, &format!("{V}/limits"), None, &[])
        .await;
    assert_eq!((status, body.as_str()), (401, INVALID_SESSION));
    // A new grant works again.
    let token = org.token().await;
    let (status, _) = org
        .call(&token, Method::GET, &format!("{V}/limits"), None, &[])
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn admin_can_expire_every_session_and_garbage_is_refused() {
    let org = start().await;
    let token = org.token().await;
    let resp = org
        .http
        .post(org.url("/__admin/salesforce/faults/expire-tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, body) = org
        .call(&token, Method::GET, &format!("{V}/limits"), None, &[])
        .await;
    assert_eq!((status, body.as_str()), (401, INVALID_SESSION));
    let (status, body) = org
        .call("garbage", Method::GET, &format!("{V}/limits"), None, &[])
        .await;
    assert_eq!((status, body.as_str()), (401, INVALID_SESSION));
}
