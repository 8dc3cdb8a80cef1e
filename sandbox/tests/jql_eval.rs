//! JQL parser and evaluator against a tiny in-memory site: each operator, precedence,
//! parentheses, lists, dates, custom fields, ORDER BY, and Jira's error sentences.

use std::cmp::Ordering;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use sfjira_sandbox::jira::jql::{CustomFieldKind, FieldResolver, JqlIssue, parse};

#[derive(Clone)]
struct Issue {
    id: u64,
    key: String,
    project: String,
    itype: String,
    status: String,
    labels: Vec<String>,
    assignee: Option<String>,
    reporter: Option<String>,
    sfid: Option<String>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

impl JqlIssue for Issue {
    fn id(&self) -> u64 {
        self.id
    }
    fn key(&self) -> &str {
        &self.key
    }
    fn project_key(&self) -> &str {
        &self.project
    }
    fn issue_type(&self) -> &str {
        &self.itype
    }
    fn status(&self) -> &str {
        &self.status
    }
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn assignee(&self) -> Option<&str> {
        self.assignee.as_deref()
    }
    fn reporter(&self) -> Option<&str> {
        self.reporter.as_deref()
    }
    fn custom_field_text(&self, id: &str) -> Option<String> {
        match id {
            "customfield_10050" => self.sfid.clone(),
            "customfield_10060" => Some("Gold".into()),
            _ => None,
        }
    }
    fn created(&self) -> DateTime<Utc> {
        self.created
    }
    fn updated(&self) -> DateTime<Utc> {
        self.updated
    }
}

struct Site;
impl FieldResolver for Site {
    fn custom_field_id(&self, name: &str) -> Option<String> {
        match name.to_lowercase().as_str() {
            "salesforce id" => Some("customfield_10050".into()),
            "tier" => Some("customfield_10060".into()),
            _ => None,
        }
    }
    fn custom_field_kind(&self, id: &str) -> Option<CustomFieldKind> {
        match id {
            "customfield_10050" => Some(CustomFieldKind::Text),
            "customfield_10060" => Some(CustomFieldKind::Exact),
            _ => None,
        }
    }
    fn value_exists(&self, field: &str, value: &str) -> bool {
        !(field == "project" && value.eq_ignore_ascii_case("NOPE"))
    }
    fn current_user(&self) -> Option<String> {
        Some("acc-ann".into())
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
}

fn issues() -> Vec<Issue> {
    let base = Issue {
        id: 10001,
        key: "SF-1".into(),
        project: "SF".into(),
        itype: "Bug".into(),
        status: "To Do".into(),
        labels: vec!["sync".into()],
        assignee: Some("acc-ann".into()),
        reporter: Some("acc-bob".into()),
        sfid: Some("500xx000001AbC".into()),
        created: Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap(),
        updated: now() - TimeDelta::minutes(2),
    };
    vec![
        base.clone(),
        Issue {
            id: 10002,
            key: "SF-2".into(),
            itype: "Task".into(),
            status: "Done".into(),
            labels: vec![],
            assignee: None,
            sfid: None,
            created: Utc.with_ymd_and_hms(2026, 2, 1, 9, 0, 0).unwrap(),
            updated: now() - TimeDelta::hours(3),
            ..base.clone()
        },
        Issue {
            id: 10003,
            key: "OPS-7".into(),
            project: "OPS".into(),
            status: "In Progress".into(),
            labels: vec!["sync".into(), "urgent".into()],
            assignee: Some("acc-bob".into()),
            sfid: Some("500xx000002XyZ".into()),
            created: Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap(),
            updated: now() - TimeDelta::days(3),
            ..base
        },
    ]
}

fn keys(jql: &str) -> Vec<String> {
    let q = parse(jql, &Site).unwrap_or_else(|e| panic!("{jql}: {e}"));
    let mut v: Vec<Issue> = issues()
        .into_iter()
        .filter(|i| q.matches(i, now()))
        .collect();
    v.sort_by(|a, b| q.compare(a, b).then(a.id.cmp(&b.id)));
    v.into_iter().map(|i| i.key).collect()
}

fn err(jql: &str) -> Vec<String> {
    parse(jql, &Site)
        .err()
        .unwrap_or_else(|| panic!("{jql} should fail"))
        .messages
}

#[test]
fn equality_and_inequality() {
    assert_eq!(keys("project = SF"), ["SF-1", "SF-2"]);
    assert_eq!(keys("project = sf"), ["SF-1", "SF-2"]);
    assert_eq!(keys("status != Done"), ["SF-1", "OPS-7"]);
    assert_eq!(keys("status = \"In Progress\""), ["OPS-7"]);
    assert_eq!(keys("type = Task"), ["SF-2"]);
    assert_eq!(keys("issuetype = Bug"), ["SF-1", "OPS-7"]);
    assert_eq!(keys("key = sf-2"), ["SF-2"]);
    assert_eq!(keys("issuekey = 10003"), ["OPS-7"]);
    assert_eq!(keys("key > SF-1"), ["SF-2"]);
    assert_eq!(keys("labels = urgent"), ["OPS-7"]);
}

#[test]
fn negation_leaves_out_empty_fields() {
    // Jira: `assignee != x` does not match unassigned issues.
    assert_eq!(keys("assignee != acc-bob"), ["SF-1"]);
    assert_eq!(keys("labels != urgent"), ["SF-1"]);
    assert_eq!(keys("assignee is EMPTY"), ["SF-2"]);
    assert_eq!(keys("assignee IS NOT empty"), ["SF-1", "OPS-7"]);
    assert_eq!(keys("labels is empty"), ["SF-2"]);
    assert_eq!(keys("assignee = currentUser()"), ["SF-1"]);
    assert_eq!(
        keys("reporter in (currentUser(), acc-bob)"),
        ["SF-1", "SF-2", "OPS-7"]
    );
}

#[test]
fn in_and_not_in() {
    assert_eq!(keys("status IN (\"To Do\", Done)"), ["SF-1", "SF-2"]);
    assert_eq!(keys("status not in (Done)"), ["SF-1", "OPS-7"]);
    assert_eq!(keys("key in (SF-1, OPS-7, SF-99)"), ["SF-1", "OPS-7"]);
    assert_eq!(keys("assignee in (EMPTY, acc-bob)"), ["SF-2", "OPS-7"]);
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_regroup() {
    // project = OPS OR (project = SF AND status = Done)
    assert_eq!(
        keys("project = OPS OR project = SF AND status = Done"),
        ["SF-2", "OPS-7"]
    );
    assert_eq!(
        keys("(project = OPS OR project = SF) AND status = Done"),
        ["SF-2"]
    );
    assert_eq!(keys("NOT project = SF"), ["OPS-7"]);
    assert_eq!(
        keys("project = SF AND NOT (status = Done OR labels = urgent)"),
        ["SF-1"]
    );
    assert_eq!(
        keys("project = SF && status = Done || key = OPS-7"),
        ["SF-2", "OPS-7"]
    );
}

#[test]
fn relative_and_absolute_dates() {
    assert_eq!(keys("updated >= -5m"), ["SF-1"]);
    assert_eq!(keys("updated > -1h"), ["SF-1"]);
    assert_eq!(keys("updated >= -1d"), ["SF-1", "SF-2"]);
    assert_eq!(keys("updated < -2d"), ["OPS-7"]);
    assert_eq!(keys("updated <= -1w"), Vec::<String>::new());
    assert_eq!(keys("updated >= \"-4h 30m\""), ["SF-1", "SF-2"]);
    assert_eq!(keys("created >= \"2026/02/01 09:00\""), ["SF-2", "OPS-7"]);
    assert_eq!(keys("created > \"2026-02-01\""), ["SF-2", "OPS-7"]);
    assert_eq!(keys("created < 2026-02-01"), ["SF-1"]);
    assert_eq!(keys("created = \"2026/03/01 09:30\""), ["OPS-7"]);
    assert_eq!(keys("created != \"2026/03/01 09:30\""), ["SF-1", "SF-2"]);
    assert_eq!(keys("created <= \"2026/01/01\""), Vec::<String>::new());
    assert_eq!(keys("updated <= now()"), ["SF-1", "SF-2", "OPS-7"]);
}

#[test]
fn custom_fields_by_quoted_name_and_cf_id() {
    assert_eq!(keys("\"Salesforce ID\" ~ \"500xx000002XyZ\""), ["OPS-7"]);
    assert_eq!(keys("cf[10050] ~ 500xx000001AbC"), ["SF-1"]);
    assert_eq!(keys("cf[10050] ~ \"500xx*\""), ["SF-1", "OPS-7"]);
    assert_eq!(keys("\"salesforce id\" is EMPTY"), ["SF-2"]);
    assert_eq!(keys("cf[10050] !~ 500xx000001AbC"), ["OPS-7"]);
    assert_eq!(keys("Tier = gold AND project = OPS"), ["OPS-7"]);
    // A text field takes only ~ (jira-api.md §3.6).
    assert_eq!(
        err("\"Salesforce ID\" = \"500xx000001AbC\""),
        ["The operator '=' is not supported by the 'Salesforce ID' field."]
    );
}

#[test]
fn order_by() {
    assert_eq!(
        keys("project in (SF, OPS) ORDER BY updated DESC"),
        ["SF-1", "SF-2", "OPS-7"]
    );
    assert_eq!(
        keys("project in (SF, OPS) ORDER BY created ASC"),
        ["SF-1", "SF-2", "OPS-7"]
    );
    assert_eq!(
        keys("project in (SF, OPS) order by project asc, key desc"),
        ["OPS-7", "SF-2", "SF-1"]
    );
    assert_eq!(keys("labels = sync ORDER BY key"), ["OPS-7", "SF-1"]);
    let q = parse("project = SF ORDER BY created DESC", &Site).unwrap();
    let v = issues();
    assert_eq!(q.compare(&v[0], &v[1]), Ordering::Greater);
}

#[test]
fn unbounded_queries() {
    assert!(!parse("", &Site).unwrap().is_bounded());
    assert!(!parse("   ", &Site).unwrap().is_bounded());
    assert!(!parse("order by key desc", &Site).unwrap().is_bounded());
    assert!(
        parse("project = SF order by key", &Site)
            .unwrap()
            .is_bounded()
    );
}

#[test]
fn syntax_errors_as_jira_words_them() {
    let ops = "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'.";
    assert_eq!(
        err("project ENG"),
        [format!(
            "Error in the JQL Query: Expecting operator but got 'ENG'. {ops} (line 1, character 9)"
        )]
    );
    assert_eq!(
        err("invalid query"),
        [format!(
            "Error in the JQL Query: Expecting operator but got 'query'. {ops} (line 1, character 9)"
        )]
    );
    assert_eq!(
        err("project"),
        [format!(
            "Error in the JQL Query: Expecting operator before the end of the query. {ops}"
        )]
    );
    assert_eq!(
        err("project ="),
        [
            "Error in JQL Query: Expecting either a value, list or function before the end of the query."
        ]
    );
    assert_eq!(
        err("project = LAUNCH AND status = = Done"),
        [
            "Error in JQL Query: Expecting either a value, list or function but got '='. You must surround '=' in quotation marks to use it as a value. (line 1, character 31)"
        ]
    );
    assert_eq!(
        err("project = LAUNCH status"),
        [
            "Error in the JQL Query: Expecting either 'OR' or 'AND' but got 'status'. (line 1, character 18)"
        ]
    );
    assert_eq!(
        err("project = LAUNCH AND"),
        ["Error in the JQL Query: Expecting a field name at the end of the query."]
    );
    assert_eq!(
        err("project = LAUNCH AND (status = Done"),
        ["Error in the JQL Query: Expecting ')' before the end of the query."]
    );
    assert_eq!(
        err("summary ~ \"unclosed"),
        [
            "Error in the JQL Query: The quoted string 'unclosed' has not been completed. (line 1, character 11)"
        ]
    );
    assert_eq!(
        err("created > 2026/01/01"),
        [
            "Error in the JQL Query: The character '/' is a reserved JQL character. You must enclose it in a string or use the escape '\\u002f' instead. (line 1, character 15)"
        ]
    );
}

#[test]
fn validation_errors_as_jira_words_them() {
    assert_eq!(
        err("colour = red"),
        ["Field 'colour' does not exist or you do not have permission to view it."]
    );
    assert_eq!(
        err("cf[99999] ~ x"),
        ["Field 'cf[99999]' does not exist or you do not have permission to view it."]
    );
    assert_eq!(
        err("project = NOPE"),
        ["The value 'NOPE' does not exist for the field 'project'."]
    );
    assert_eq!(
        err("assignee = noSuchFunction()"),
        ["Unable to find JQL function 'noSuchFunction()'."]
    );
    assert_eq!(
        err("status = currentUser()"),
        ["A value provided by the function 'currentUser' is invalid for the field 'status'."]
    );
    assert_eq!(
        err("project > SF"),
        ["The operator '>' is not supported by the 'project' field."]
    );
    assert_eq!(
        err("updated >= yesterday"),
        [
            "Date value 'yesterday' for field 'updated' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
        ]
    );
    assert_eq!(
        err("project = SF ORDER BY zzfield"),
        ["Field 'zzfield' does not exist or you do not have permission to view it."]
    );
    // A real field outside the subset is named as such, not as missing.
    assert_eq!(
        err("summary ~ export"),
        [
            "Field 'summary' exists in Jira Cloud but the sfjira sandbox does not search it (issue #4 subset)."
        ]
    );
    // Several problems are reported together.
    assert_eq!(err("colour = red AND project = NOPE").len(), 2);
}
