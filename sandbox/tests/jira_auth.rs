//! Authentication over HTTP: Basic API tokens (401 body and headers), OAuth 2.0 (3LO) with
//! rotating refresh tokens and the reuse rule, bearer expiry on a scaled clock, the
//! `api.atlassian.com/ex/jira/{cloudId}` path form, and the admin API acting as a person.

mod jira_support;

use jira_support::{read, start, start_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::{DEFAULT_CLOUD_ID, JiraConfig};

#[tokio::test]
async fn missing_or_wrong_credentials_are_401() {
    let s = start().await;
    for req in [
        s.http.get(s.url("/rest/api/3/myself")),
        s.http
            .get(s.url("/rest/api/3/myself"))
            .basic_auth("sfjira@example.com", Some("wrong")),
        s.http
            .get(s.url("/rest/api/3/issue/PROJ-1"))
            .bearer_auth("nope"),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().contains_key("www-authenticate"));
        assert_eq!(
            resp.text().await.unwrap(),
            "Client must be authenticated to access this resource."
        );
    }
    let resp = s
        .http
        .get(s.url("/rest/api/3/myself"))
        .basic_auth("alice@example.com", Some("alice-token"))
        .send()
        .await
        .unwrap();
    let (status, me) = read(resp).await;
    assert_eq!(
        (status, me["displayName"].clone()),
        (StatusCode::OK, json!("Alice"))
    );
}

async fn token(s: &jira_support::TestSite, body: Value) -> (StatusCode, Value) {
    read(
        s.http
            .post(s.url("/oauth/token"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn consent(s: &jira_support::TestSite) -> Value {
    let (status, code) = s
        .admin(
            Method::POST,
            "/__admin/jira/oauth/code",
            Some(json!({"client_id": "sfjira-sandbox-client", "user": "Bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{code}");
    let (status, tokens) = token(
        s,
        json!({"grant_type": "authorization_code", "client_id": "sfjira-sandbox-client", "client_secret": "sfjira-sandbox-secret", "code": code["code"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

fn refresh_body(rt: &Value) -> Value {
    json!({"grant_type": "refresh_token", "client_id": "sfjira-sandbox-client", "client_secret": "sfjira-sandbox-secret", "refresh_token": rt})
}

#[tokio::test]
async fn oauth_code_exchange_and_bearer_calls() {
    let s = start().await;
    let tokens = consent(&s).await;
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["token_type"], "Bearer");
    let at = tokens["access_token"].as_str().unwrap();
    for path in [
        "/rest/api/3/myself".to_string(),
        format!("/ex/jira/{DEFAULT_CLOUD_ID}/rest/api/3/myself"),
    ] {
        let (status, me) = read(
            s.http
                .get(s.url(&path))
                .bearer_auth(at)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(me["displayName"], "Bob");
    }
    let (_, sites) = read(
        s.http
            .get(s.url("/oauth/token/accessible-resources"))
            .bearer_auth(at)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(sites[0]["id"], DEFAULT_CLOUD_ID);
    let (status, body) = token(&s, json!({"grant_type": "password", "client_id": "sfjira-sandbox-client", "client_secret": "sfjira-sandbox-secret"})).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::FORBIDDEN, json!("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_after_leeway_kills_the_grant() {
    // 600 sandbox seconds per wall second: the 10-minute leeway passes in one second.
    let s = start_with(JiraConfig::default(), SandboxClock::new(600.0)).await;
    let first = consent(&s).await;
    let (status, second) = token(&s, refresh_body(&first["refresh_token"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, body) = token(&s, refresh_body(&first["refresh_token"])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "invalid_grant");
    // The whole family is gone, the newest token included.
    let (status, body) = token(&s, refresh_body(&second["refresh_token"])).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::FORBIDDEN, json!("invalid_grant"))
    );
}

#[tokio::test]
async fn old_refresh_token_works_within_the_leeway() {
    let s = start().await;
    let first = consent(&s).await;
    let (status, _) = token(&s, refresh_body(&first["refresh_token"])).await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = token(&s, refresh_body(&first["refresh_token"])).await;
    assert_eq!(status, StatusCode::OK, "{again}");
}

#[tokio::test]
async fn access_tokens_expire_after_an_hour_of_sandbox_time() {
    let s = start_with(JiraConfig::default(), SandboxClock::new(3600.0)).await;
    let tokens = consent(&s).await;
    let at = tokens["access_token"].as_str().unwrap();
    let resp = s
        .http
        .get(s.url("/rest/api/3/myself"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let resp = s
        .http
        .get(s.url("/rest/api/3/myself"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_acts_as_a_person_and_events_carry_the_actor() {
    let s = start().await;
    let key = s.create_task("shared").await;
    let (status, body) = s
        .admin(
            Method::PUT,
            &format!("/__admin/jira/as/alice@example.com/rest/api/3/issue/{key}"),
            Some(json!({"fields": {"summary": "by alice"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = s
        .admin(
            Method::POST,
            &format!("/__admin/jira/as/Bob/rest/api/3/issue/{key}/comment"),
            Some(json!({"body": jira_support::adf("hi")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, events) = s.admin(Method::GET, "/__admin/jira/events", None).await;
    let names: Vec<(&str, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["webhookEvent"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (
                "jira:issue_created",
                "712020:5f0c1a2b-0000-4000-8000-0000000000a1"
            ),
            (
                "jira:issue_updated",
                "712020:5f0c1a2b-0000-4000-8000-0000000000b2"
            ),
            (
                "comment_created",
                "712020:5f0c1a2b-0000-4000-8000-0000000000c3"
            ),
        ]
    );
    let (_, issue) = s
        .admin(Method::GET, &format!("/__admin/jira/issues/{key}"), None)
        .await;
    assert_eq!(
        issue["changelog"]["histories"][0]["author"]["displayName"],
        "Alice"
    );
    let (status, _) = s.admin(Method::POST, "/__admin/jira/reset", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, all) = s.admin(Method::GET, "/__admin/jira/issues", None).await;
    assert_eq!(all, json!([]));
}
