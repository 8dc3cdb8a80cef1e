//! Transitions, comments, worklogs, properties, remote links, per-issue limits, search and the
//! worklog feeds over HTTP: exact statuses and error bodies.

mod jira_support;

use jira_support::{adf, start, start_with};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::jira::config::JiraConfig;

#[tokio::test]
async fn transitions_follow_the_workflow() {
    let s = start().await;
    let key = s.create_task("w").await;
    let (_, list) = s.get(&format!("/rest/api/3/issue/{key}/transitions")).await;
    let names: Vec<&str> = list["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Start Progress"]);
    assert_eq!(
        list["transitions"][0]["to"]["statusCategory"]["key"],
        "indeterminate"
    );

    // "Done" (31) only leaves In Review.
    let (status, body) = s
        .post(
            &format!("/rest/api/3/issue/{key}/transitions"),
            json!({"transition": {"id": "31"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"errorMessages": ["Transition id '31' is not valid for this issue."], "errors": {}})
    );

    let marker = json!({"type": "sfsync"});
    for id in ["11", "21", "31"] {
        let (status, body) = s
            .post(
                &format!("/rest/api/3/issue/{key}/transitions"),
                json!({"transition": {"id": id}, "historyMetadata": marker}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (_, issue) = s
        .get(&format!(
            "/rest/api/3/issue/{key}?expand=changelog,transitions,names"
        ))
        .await;
    assert_eq!(issue["fields"]["status"]["name"], "Done");
    assert_eq!(issue["fields"]["resolution"]["name"], "Done");
    assert_eq!(issue["transitions"][0]["name"], "Reopen");
    assert_eq!(issue["names"]["summary"], "Summary");
    let last = &issue["changelog"]["histories"][0];
    assert_eq!(last["historyMetadata"], marker);
    assert_eq!(last["items"][0]["fromString"], "In Review");
    assert_eq!(last["items"][0]["to"], "10002");
    assert_eq!(last["items"][1]["field"], "resolution");
}

#[tokio::test]
async fn comments_need_adf_and_page() {
    let s = start().await;
    let key = s.create_task("c").await;
    let path = format!("/rest/api/3/issue/{key}/comment");
    let (status, body) = s.post(&path, json!({"body": "plain"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"errorMessages": [], "errors": {"comment": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"}})
    );
    for n in 0..3 {
        let (status, c) = s.post(&path, json!({"body": adf(&format!("c{n}"))})).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(c["author"]["emailAddress"], "sfjira@example.com");
    }
    let (_, page) = s
        .get(&format!("{path}?startAt=1&maxResults=1&orderBy=-created"))
        .await;
    assert_eq!(
        (
            page["total"].clone(),
            page["startAt"].clone(),
            page["maxResults"].clone()
        ),
        (json!(3), json!(1), json!(1))
    );
    assert_eq!(page["comments"][0]["body"], adf("c1"));
    let (status, body) = s.get(&format!("{path}?orderBy=updated")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errorMessages"][0].is_string());
    let id = page["comments"][0]["id"].as_str().unwrap().to_string();
    let (status, c) = s
        .put(&format!("{path}/{id}"), json!({"body": adf("edited")}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["body"], adf("edited"));
}

#[tokio::test]
async fn worklog_started_is_strict_and_time_is_exactly_one() {
    let s = start().await;
    let key = s.create_task("w").await;
    let path = format!("/rest/api/3/issue/{key}/worklog");
    let date_error = json!({"errorMessages": [], "errors": {"started": "Invalid date format. Please enter the date in the format \"yyyy-MM-dd'T'HH:mm:ss.SSSZ\"."}});
    for bad in [
        "2021-01-17T12:34:00.000Z",
        "2021-01-17T12:34:00.000000000+0000",
        "2021-01-17T12:34:00+00:00",
    ] {
        let (status, body) = s
            .post(&path, json!({"started": bad, "timeSpentSeconds": 60}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body, date_error, "{bad}");
    }
    let (status, body) = s.post(&path, json!({"started": "2021-01-17T12:34:00.000+0000", "timeSpent": "1h", "timeSpentSeconds": 60})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["timeLogged"].is_string());
    let (status, body) = s
        .post(&path, json!({"started": "2021-01-17T12:34:00.000+0000"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["timeLogged"],
        "You must indicate the time spent working."
    );
    let (status, w) = s
        .post(&format!("{path}?adjustEstimate=leave"), json!({"started": "2021-01-17T12:34:00.000+0000", "timeSpentSeconds": 12000, "comment": adf("x")}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{w}");
    assert_eq!(w["timeSpent"], "3h 20m");
    assert_eq!(w["started"], "2021-01-17T12:34:00.000+0000");
    assert_eq!(w["issueId"], "10000");
    let (status, _) = s
        .post(
            &format!("{path}?adjustEstimate=sideways"),
            json!({"started": "2021-01-17T12:34:00.000+0000", "timeSpent": "1h"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn properties_and_remote_links_upsert() {
    let s = start().await;
    let key = s.create_task("p").await;
    let path = format!("/rest/api/3/issue/{key}/properties/sfjira.link");
    let (status, _) = s.put(&path, json!({"sfId": "500A"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = s.put(&path, json!({"sfId": "500B"})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, got) = s.get(&path).await;
    assert_eq!(
        got,
        json!({"key": "sfjira.link", "value": {"sfId": "500B"}})
    );
    let (status, _) = s.put(&path, json!("x".repeat(32_769))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let link = |title: &str| json!({"globalId": "sf:Case:500A", "object": {"url": "https://sf/500A", "title": title}});
    let (status, first) = s
        .post(&format!("/rest/api/3/issue/{key}/remotelink"), link("one"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, second) = s
        .post(&format!("/rest/api/3/issue/{key}/remotelink"), link("two"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["id"], second["id"]);
    let (_, links) = s.get(&format!("/rest/api/3/issue/{key}/remotelink")).await;
    assert_eq!(links.as_array().unwrap().len(), 1);
    assert_eq!(links[0]["object"]["title"], "two");
}

#[tokio::test]
async fn per_issue_limits_answer_413() {
    let mut config = JiraConfig::default();
    config.limits.comments = 2;
    let s = start_with(config, SandboxClock::real_time()).await;
    let key = s.create_task("l").await;
    let path = format!("/rest/api/3/issue/{key}/comment");
    for _ in 0..2 {
        assert_eq!(
            s.post(&path, json!({"body": adf("x")})).await.0,
            StatusCode::CREATED
        );
    }
    let (status, body) = s.post(&path, json!({"body": adf("x")})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["errorMessages"][0].is_string());
}

#[tokio::test]
async fn retired_search_is_gone() {
    let s = start().await;
    let body = json!({"errorMessages": ["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"]});
    assert_eq!(
        s.get("/rest/api/3/search?jql=project%3DPROJ").await,
        (StatusCode::GONE, body.clone())
    );
    assert_eq!(
        s.post("/rest/api/3/search", json!({"jql": "project = PROJ"}))
            .await,
        (StatusCode::GONE, body)
    );
}

#[tokio::test]
async fn search_jql_renders_ids_unless_fields_are_asked() {
    let s = start().await;
    let a = s.create_task("alpha").await;
    s.create_task("beta").await;
    let (status, page) = s
        .get(
            "/rest/api/3/search/jql?jql=project%20%3D%20PROJ%20ORDER%20BY%20key%20ASC&maxResults=1",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["issues"], json!([{"id": "10000"}]));
    assert_eq!(page["isLast"], false);
    assert!(page.get("total").is_none());
    let token = page["nextPageToken"].as_str().unwrap();
    let (_, next) = s
        .post("/rest/api/3/search/jql", json!({"jql": "project = PROJ ORDER BY key ASC", "maxResults": 1, "nextPageToken": token, "fields": ["summary"]}))
        .await;
    assert_eq!(next["issues"][0]["fields"]["summary"], "beta");
    assert_eq!(next["isLast"], true);
    assert!(next.get("nextPageToken").is_none());
    let (_, by_sf) = s
        .post(
            "/rest/api/3/search/jql",
            json!({"jql": format!("key = {a}"), "fields": ["summary"]}),
        )
        .await;
    assert_eq!(by_sf["issues"][0]["key"], a);
}

#[tokio::test]
async fn worklog_feed_skips_the_last_minute() {
    // 120 sandbox seconds per wall second: the excluded minute passes in half a second.
    let s = start_with(JiraConfig::default(), SandboxClock::new(120.0)).await;
    let key = s.create_task("w").await;
    let (status, w) = s
        .post(
            &format!("/rest/api/3/issue/{key}/worklog"),
            json!({"started": "2021-01-17T12:34:00.000+0000", "timeSpent": "1h"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, fresh) = s.get("/rest/api/3/worklog/updated?since=0").await;
    assert_eq!(fresh["values"], json!([]));
    assert_eq!(fresh["lastPage"], true);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let (_, later) = s.get("/rest/api/3/worklog/updated?since=0").await;
    assert_eq!(
        later["values"][0]["worklogId"].to_string(),
        w["id"].as_str().unwrap()
    );
    let (status, _) = s
        .call(
            Method::DELETE,
            &format!(
                "/rest/api/3/issue/{key}/worklog/{}",
                w["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let (_, deleted) = s.get("/rest/api/3/worklog/deleted?since=0").await;
    assert_eq!(deleted["values"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn worklogs_can_be_edited() {
    let s = start().await;
    let key = s.create_task("w").await;
    let path = format!("/rest/api/3/issue/{key}/worklog");
    let (_, w) = s
        .post(
            &path,
            json!({"started": "2021-01-17T12:34:00.000+0000", "timeSpent": "1h"}),
        )
        .await;
    let one = format!("{path}/{}", w["id"].as_str().unwrap());
    let (status, edited) = s.put(&one, json!({"timeSpent": "2h 30m"})).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["timeSpentSeconds"], 9000);
    let (status, body) = s.put(&one, json!({"started": "2021-01-17"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["started"].is_string());
    let (_, got) = s.get(&one).await;
    assert_eq!(got["timeSpent"], "2h 30m");
    let (_, events) = s.admin(Method::GET, "/__admin/jira/events", None).await;
    assert_eq!(
        events.as_array().unwrap().last().unwrap()["webhookEvent"],
        "worklog_updated"
    );
}

/// A deleted worklog's time goes back to the remaining estimate as `adjustEstimate` says
/// (`auto` by default, `manual` with `increaseBy`, `new` with `newEstimate`, `leave`); a bad
/// combination is a 400 that deletes nothing.
#[tokio::test]
async fn deleting_a_worklog_adjusts_the_remaining_estimate() {
    let s = start().await;
    let key = s.create_task("estimates").await;
    let (status, body) = s
        .put(
            &format!("/rest/api/3/issue/{key}"),
            json!({"fields": {"timetracking": {"originalEstimate": "4h", "remainingEstimate": "4h"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let path = format!("/rest/api/3/issue/{key}/worklog");
    let remaining = || async {
        let (_, issue) = s
            .get(&format!("/rest/api/3/issue/{key}?fields=timetracking"))
            .await;
        issue["fields"]["timetracking"]["remainingEstimateSeconds"].as_i64()
    };
    let log_an_hour = || async {
        let (status, w) = s
            .post(
                &path,
                json!({"started": "2021-01-17T12:34:00.000+0000", "timeSpent": "1h"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{w}");
        format!("{path}/{}", w["id"].as_str().unwrap())
    };
    let site = &s;
    let delete = |url: String| async move { site.call(Method::DELETE, &url, None).await };

    let one = log_an_hour().await;
    assert_eq!(remaining().await, Some(3 * 3600));
    let (status, _) = delete(one).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        remaining().await,
        Some(4 * 3600),
        "auto gives the hour back"
    );

    let one = log_an_hour().await;
    let (status, body) = delete(format!("{one}?adjustEstimate=manual")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["increaseBy"].is_string(), "{body}");
    let (status, _) = s.get(&one).await;
    assert_eq!(status, StatusCode::OK, "a refused delete deletes nothing");
    let (status, body) = delete(format!("{one}?adjustEstimate=sometimes")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = delete(format!("{one}?adjustEstimate=manual&increaseBy=30m")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(remaining().await, Some(3 * 3600 + 1800));

    let one = log_an_hour().await;
    let (status, _) = delete(format!("{one}?adjustEstimate=new&newEstimate=2h")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(remaining().await, Some(2 * 3600));

    let one = log_an_hour().await;
    let (status, _) = delete(format!("{one}?adjustEstimate=leave")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        remaining().await,
        Some(3600),
        "the add took the hour; leave keeps it"
    );
}
