//! OAuth against the sandbox org: JWT bearer with the connected app's key, client
//! credentials, and refusals that say why without echoing secrets.

mod common;

use std::path::PathBuf;

use common::*;
use sfjira_core::config::{AuthKind, SalesforceAuth, Secret};
use sfjira_salesforce_source::auth::{AuthError, TokenClient};
use sfjira_sandbox::salesforce::config::SalesforceConfig;

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../sandbox/tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn client_credentials(secret: &str) -> SalesforceAuth {
    SalesforceAuth {
        kind: AuthKind::ClientCredentials,
        client_id: "sfjira-sandbox-consumer-key".into(),
        client_secret: Some(Secret::new(secret)),
        username: None,
        private_key: None,
        audience: String::new(),
    }
}

fn jwt(key: &str) -> SalesforceAuth {
    SalesforceAuth {
        kind: AuthKind::JwtBearer,
        client_id: "sfjira-sandbox-consumer-key".into(),
        client_secret: None,
        username: Some("sfjira-integration@sfjira.sandbox".into()),
        private_key: Some(Secret::new(fixture(key))),
        audience: "https://login.salesforce.com".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_logs_in_and_a_wrong_key_is_refused() {
    let mut config = SalesforceConfig::default();
    config.connected_app.certificate_pem = Some(fixture("salesforce_test_cert.pem"));
    let org = Org::start_with(config).await;

    let session = TokenClient::new(org.base(), jwt("salesforce_test_key.pem"), None)
        .login()
        .await
        .expect("JWT bearer login");
    assert_eq!(session.tenant_id, org.full.http.org.org_id);
    assert!(!session.access_token.is_empty());

    let err = TokenClient::new(org.base(), jwt("salesforce_other_key.pem"), None)
        .login()
        .await
        .expect_err("an assertion signed with another key is refused");
    assert!(
        matches!(&err, AuthError::Refused { status: 400, error, .. } if error == "invalid_grant"),
        "{err}"
    );
    assert!(!err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_log_in_and_a_wrong_secret_is_refused_without_echo() {
    let org = Org::start().await;
    let ok = client_credentials(SECRET);
    let session = TokenClient::new(org.base(), ok, None)
        .login()
        .await
        .unwrap();
    assert_eq!(session.tenant_id, org.full.http.org.org_id);

    let bad = client_credentials("wrong-secret-value");
    let err = TokenClient::new(org.base(), bad, None)
        .login()
        .await
        .expect_err("a wrong secret is refused");
    assert!(
        matches!(err, AuthError::Refused { status: 400, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong-secret-value"));
}

/// A token endpoint answering 503 (maintenance) is waited out, not taken for refused
/// credentials: the login succeeds once the endpoint is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_briefly_unavailable_is_retried() {
    let org = Org::start().await;
    org.faults(serde_json::json!({"unavailable": true})).await;
    let client = TokenClient::new(org.base(), client_credentials(SECRET), None);
    let login = tokio::spawn(async move { client.login().await });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !login.is_finished(),
        "still retrying while the endpoint answers 503"
    );
    org.faults(serde_json::json!({"unavailable": false})).await;
    let session = login
        .await
        .unwrap()
        .expect("logged in once the endpoint is back");
    assert_eq!(session.tenant_id, org.full.http.org.org_id);
}
