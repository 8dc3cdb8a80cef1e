//! Issue CRUD over HTTP against an in-process Jira site: exact statuses and error bodies of
//! create, bulk create, get, edit (historyMetadata, update ops, 409), delete.

mod jira_support;

use jira_support::{adf, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn create_then_get_returns_the_issue_in_jira_shape() {
    let s = start().await;
    let (status, created) = s
        .post(
            "/rest/api/3/issue",
            json!({"fields": {
                "project": {"key": "PROJ"}, "issuetype": {"id": "10001"}, "summary": "First",
                "description": adf("Hello"), "labels": ["sf"], "customfield_10016": 3,
                "customfield_10050": "500ABC", "customfield_10060": {"value": "Gold"},
                "assignee": {"id": "712020:5f0c1a2b-0000-4000-8000-0000000000b2"}
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["id"], "10000");
    assert_eq!(created["key"], "PROJ-1");
    assert_eq!(
        created["self"],
        format!("{}/rest/api/3/issue/10000", s.base)
    );

    let (status, issue) = s.get("/rest/api/3/issue/proj-1").await;
    assert_eq!(status, StatusCode::OK);
    let f = &issue["fields"];
    assert_eq!(f["summary"], "First");
    assert_eq!(f["status"]["name"], "To Do");
    assert_eq!(f["status"]["statusCategory"]["key"], "new");
    assert_eq!(f["status"]["statusCategory"]["id"], 2);
    assert_eq!(f["customfield_10060"]["value"], "Gold");
    assert_eq!(f["assignee"]["displayName"], "Alice");
    assert_eq!(f["reporter"]["emailAddress"], "sfjira@example.com");
    let created_at = f["created"].as_str().unwrap();
    assert!(
        created_at.ends_with("+0000") && created_at.len() == 28,
        "{created_at}"
    );

    // `fields` selects, `-x` excludes.
    let (_, only) = s
        .get("/rest/api/3/issue/PROJ-1?fields=summary,labels")
        .await;
    assert_eq!(only["fields"].as_object().unwrap().len(), 2);
    let (_, most) = s.get("/rest/api/3/issue/PROJ-1?fields=*all,-comment").await;
    assert!(most["fields"].get("comment").is_none() && most["fields"].get("summary").is_some());
}

#[tokio::test]
async fn missing_issue_is_the_real_404() {
    let s = start().await;
    for path in [
        "/rest/api/3/issue/PROJ-999",
        "/rest/api/3/issue/99999/comment",
    ] {
        let (status, body) = s.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            json!({"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}})
        );
    }
}

#[tokio::test]
async fn plain_string_where_adf_is_required_is_rejected() {
    let s = start().await;
    let (status, body) = s
        .post(
            "/rest/api/3/issue",
            json!({"fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Task"}, "summary": "x", "description": "plain"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"errorMessages": [], "errors": {"description": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"}})
    );
    // A textarea custom field too.
    let key = s.create_task("t").await;
    let (status, body) = s
        .put(
            &format!("/rest/api/3/issue/{key}"),
            json!({"fields": {"customfield_10061": "text"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["customfield_10061"],
        "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    );
}

#[tokio::test]
async fn fields_off_screen_cannot_be_set() {
    let s = start().await;
    // Epic Name exists on the company-managed project only.
    let (status, body) = s
        .post(
            "/rest/api/3/issue",
            json!({"fields": {"project": {"key": "TEAM"}, "issuetype": {"name": "Epic"}, "summary": "e", "customfield_10011": "E"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["customfield_10011"],
        "Field 'customfield_10011' cannot be set. It is not on the appropriate screen, or unknown."
    );
    let (status, body) = s
        .post(
            "/rest/api/3/issue",
            json!({"fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Task"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["summary"],
        "You must specify a summary of the issue."
    );
}

#[tokio::test]
async fn bulk_create_partial_and_total_failure() {
    let s = start().await;
    let good = json!({"fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Task"}, "summary": "ok"}});
    let bad = json!({"fields": {"project": {"key": "PROJ"}, "issuetype": {"id": "424242"}, "summary": "bad"}});
    let (status, body) = s
        .post(
            "/rest/api/3/issue/bulk",
            json!({"issueUpdates": [good, bad, good]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["issues"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["errors"],
        json!([{
            "elementErrors": {"errorMessages": [], "errors": {"issuetype": "The issue type selected is invalid."}},
            "failedElementNumber": 1,
            "status": 400
        }])
    );
    let (status, body) = s
        .post(
            "/rest/api/3/issue/bulk",
            json!({"issueUpdates": [bad.clone(), bad]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["issues"], json!([]));
    assert_eq!(body["errors"][1]["failedElementNumber"], 1);
    let many: Vec<Value> = (0..51).map(|_| good.clone()).collect();
    let (status, _) = s
        .post("/rest/api/3/issue/bulk", json!({"issueUpdates": many}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn edit_records_history_metadata_and_update_ops() {
    let s = start().await;
    let key = s.create_task("before").await;
    let marker =
        json!({"type": "sfsync", "generator": {"id": "sfjira", "type": "sfjira-connector"}});
    let (status, body) = s
        .put(
            &format!("/rest/api/3/issue/{key}"),
            json!({"fields": {"summary": "after"}, "update": {"labels": [{"add": "a"}, {"add": "b"}]}, "historyMetadata": marker}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = s
        .put(
            &format!("/rest/api/3/issue/{key}?returnIssue=true"),
            json!({"update": {"labels": [{"remove": "a"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["fields"]["labels"], json!(["b"]));

    let (_, issue) = s
        .get(&format!("/rest/api/3/issue/{key}?expand=changelog"))
        .await;
    let histories = issue["changelog"]["histories"].as_array().unwrap();
    assert_eq!(histories.len(), 2);
    // Newest first on get-issue.
    let first = &histories[1];
    assert_eq!(first["historyMetadata"], marker);
    assert!(histories[0].get("historyMetadata").is_none());
    let summary = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["field"] == "summary")
        .unwrap();
    assert_eq!(
        summary,
        &json!({"field": "summary", "fieldtype": "jira", "fieldId": "summary", "from": null, "fromString": "before", "to": null, "toString": "after"})
    );
    let (_, page) = s.get(&format!("/rest/api/3/issue/{key}/changelog")).await;
    assert_eq!(page["values"][0]["historyMetadata"], marker, "oldest first");
}

#[tokio::test]
async fn forced_conflict_answers_409_once() {
    let s = start().await;
    let key = s.create_task("c").await;
    let (status, _) = s
        .admin(
            Method::PUT,
            "/__admin/jira/faults",
            Some(json!({"conflict_on_put": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s
        .put(
            &format!("/rest/api/3/issue/{key}"),
            json!({"fields": {"summary": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["errorMessages"].is_array() && body["errors"].is_object());
    let (status, _) = s
        .put(
            &format!("/rest/api/3/issue/{key}"),
            json!({"fields": {"summary": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn unavailable_fault_sends_retry_after() {
    let s = start().await;
    s.admin(
        Method::PUT,
        "/__admin/jira/faults",
        Some(json!({"unavailable": 1, "retry_after_secs": 7})),
    )
    .await;
    let resp = s
        .http
        .get(s.url("/rest/api/3/myself"))
        .basic_auth("sfjira@example.com", Some("sandbox-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "7");
    let (status, _) = s.get("/rest/api/3/myself").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sub_tasks_need_a_parent_and_block_delete() {
    let s = start().await;
    let parent = s.create_task("parent").await;
    let (status, body) = s
        .post("/rest/api/3/issue", json!({"fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Sub-task"}, "summary": "s"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["parent"],
        "Issue type is a sub-task but parent issue key or id not specified."
    );
    let (status, sub) = s
        .post(
            "/rest/api/3/issue",
            json!({"fields": {"project": {"key": "PROJ"}, "issuetype": {"name": "Sub-task"}, "summary": "s", "parent": {"key": parent}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    let (_, p) = s
        .get(&format!("/rest/api/3/issue/{parent}?fields=subtasks"))
        .await;
    assert_eq!(p["fields"]["subtasks"][0]["key"], sub["key"]);

    let (status, _) = s
        .call(Method::DELETE, &format!("/rest/api/3/issue/{parent}"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .call(
            Method::DELETE,
            &format!("/rest/api/3/issue/{parent}?deleteSubtasks=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s
        .get(&format!(
            "/rest/api/3/issue/{}",
            sub["key"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metadata_endpoints() {
    let s = start().await;
    let (_, fields) = s.get("/rest/api/3/field").await;
    let sp = fields
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "customfield_10016")
        .unwrap();
    assert_eq!(sp["name"], "Story Points");
    assert_eq!(sp["schema"]["customId"], 10016);
    let (_, projects) = s.get("/rest/api/3/project").await;
    assert_eq!(projects.as_array().unwrap().len(), 2);
    let (_, page) = s.get("/rest/api/3/project/search").await;
    assert_eq!(page["total"], 2);
    let (_, types) = s.get("/rest/api/3/issue/createmeta/TEAM/issuetypes").await;
    assert_eq!(types["issueTypes"][0]["scope"]["project"]["id"], "10001");
    let (status, meta) = s
        .get("/rest/api/3/issue/createmeta/PROJ/issuetypes/10002")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        meta["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["fieldId"] == "customfield_10011")
    );
    let (_, me) = s.get("/rest/api/3/myself").await;
    assert_eq!(me["emailAddress"], "sfjira@example.com");
}

#[tokio::test]
async fn error_rates_apply_per_endpoint_class_and_rate_limit_faults_pass_through() {
    let s = start().await;
    let key = s.create_task("e").await;
    s.admin(
        Method::PUT,
        "/__admin/jira/faults",
        Some(json!({"error_rate": {"read": 1.0}})),
    )
    .await;
    let (status, body) = s.get(&format!("/rest/api/3/issue/{key}")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["errorMessages"].is_array());
    let (status, _) = s
        .put(
            &format!("/rest/api/3/issue/{key}"),
            json!({"fields": {"summary": "w"}}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "writes are another class");
    // People acting through the admin API are never faulted.
    let (status, _) = s
        .admin(
            Method::GET,
            &format!("/__admin/jira/as/Alice/rest/api/3/issue/{key}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    s.admin(Method::PUT, "/__admin/jira/faults", Some(json!({})))
        .await;

    let (status, _) = s
        .admin(
            Method::POST,
            "/__admin/jira/faults/ratelimit",
            Some(json!({"kind": "storm429", "requests": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A person is not hit by the injected rate-limit fault either; the integration is.
    let (status, _) = s
        .admin(
            Method::GET,
            "/__admin/jira/as/Alice/rest/api/3/myself",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.get("/rest/api/3/myself").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(s.get("/rest/api/3/myself").await.0, StatusCode::OK);
}
