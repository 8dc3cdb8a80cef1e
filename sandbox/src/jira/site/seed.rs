//! The seed site every sandbox starts from (and `POST /__admin/jira/reset` returns to): a
//! company-managed project `PROJ` and a team-managed project `TEAM`, one small realistic
//! workflow, an integration account plus two people, and the custom fields sfjira maps.
//!
//! Ids follow what a fresh Jira Cloud site hands out: status categories 2/4/3, system status
//! "In Progress" = 3, everything created on the site from 10000 up, custom field ids as common
//! defaults (Epic Name `customfield_10011`, Story Points `customfield_10016` classic /
//! `customfield_10028` team-managed; reference §3.8).
//!
//! Workflow (not every status reaches every other, like real workflows):
//! ```text
//! To Do ──11 Start Progress──► In Progress ──21 Submit for Review──► In Review ──31 Done──► Done
//!   ▲                           │   ▲                                   │                    │
//!   └──────61 Stop Progress─────┘   └────────41 Back to In Progress─────┘                    │
//! Reopened ◄────────────────────────────────51 Reopen────────────────────────────────────────┘
//! Reopened ──11 Start Progress──► In Progress
//! ```

use super::catalog::*;

fn s(v: &str) -> String {
    v.to_string()
}

pub const PROJ_ID: &str = "10000";
pub const TEAM_ID: &str = "10001";
pub const INTEGRATION_ACCOUNT: &str = "712020:5f0c1a2b-0000-4000-8000-0000000000a1";
pub const ALICE_ACCOUNT: &str = "712020:5f0c1a2b-0000-4000-8000-0000000000b2";
pub const BOB_ACCOUNT: &str = "712020:5f0c1a2b-0000-4000-8000-0000000000c3";

/// Builds the seed catalog.
pub fn catalog() -> Catalog {
    let categories = vec![
        StatusCategory {
            id: 2,
            key: s("new"),
            name: s("To Do"),
            color_name: s("blue-gray"),
        },
        StatusCategory {
            id: 4,
            key: s("indeterminate"),
            name: s("In Progress"),
            color_name: s("yellow"),
        },
        StatusCategory {
            id: 3,
            key: s("done"),
            name: s("Done"),
            color_name: s("green"),
        },
    ];
    // The first status is where new issues start.
    let statuses = vec![
        Status {
            id: s("10000"),
            name: s("To Do"),
            category_id: 2,
        },
        Status {
            id: s("3"),
            name: s("In Progress"),
            category_id: 4,
        },
        Status {
            id: s("10001"),
            name: s("In Review"),
            category_id: 4,
        },
        Status {
            id: s("10002"),
            name: s("Done"),
            category_id: 3,
        },
        Status {
            id: s("10003"),
            name: s("Reopened"),
            category_id: 2,
        },
    ];
    let t = |id: &str, name: &str, from: &[&str], to: &str| Transition {
        id: s(id),
        name: s(name),
        from: from.iter().map(|f| s(f)).collect(),
        to: s(to),
    };
    let transitions = vec![
        t("11", "Start Progress", &["10000", "10003"], "3"),
        t("21", "Submit for Review", &["3"], "10001"),
        t("31", "Done", &["10001"], "10002"),
        t("41", "Back to In Progress", &["10001"], "3"),
        t("51", "Reopen", &["10002"], "10003"),
        t("61", "Stop Progress", &["3"], "10000"),
    ];
    let it =
        |id: &str, name: &str, level: i32, project: Option<&str>, description: &str| IssueType {
            id: s(id),
            name: s(name),
            description: s(description),
            subtask: level < 0,
            hierarchy_level: level,
            project_id: project.map(s),
        };
    let issue_types = vec![
        it(
            "10000",
            "Epic",
            1,
            None,
            "A big user story that needs to be broken down.",
        ),
        it(
            "10001",
            "Story",
            0,
            None,
            "Functionality or a feature expressed as a user goal.",
        ),
        it("10002", "Task", 0, None, "A small, distinct piece of work."),
        it("10003", "Bug", 0, None, "A problem or error."),
        it(
            "10004",
            "Sub-task",
            -1,
            None,
            "A small piece of work that's part of a larger task.",
        ),
        // Team-managed projects get their own issue types, scoped to the project.
        it(
            "10010",
            "Epic",
            1,
            Some(TEAM_ID),
            "Epics track collections of related bugs, stories, and tasks.",
        ),
        it(
            "10011",
            "Story",
            0,
            Some(TEAM_ID),
            "Stories track functionality or features expressed as user goals.",
        ),
        it(
            "10012",
            "Task",
            0,
            Some(TEAM_ID),
            "Tasks track small, distinct pieces of work.",
        ),
        it(
            "10013",
            "Bug",
            0,
            Some(TEAM_ID),
            "Bugs track problems or errors.",
        ),
        it(
            "10014",
            "Subtask",
            -1,
            Some(TEAM_ID),
            "Subtasks track small pieces of work that are part of a larger task.",
        ),
    ];
    let projects = vec![
        Project {
            id: s(PROJ_ID),
            key: s("PROJ"),
            name: s("Project (company-managed)"),
            style: s("classic"),
            issue_type_ids: ["10000", "10001", "10002", "10003", "10004"]
                .map(s)
                .to_vec(),
            lead_account_id: s(ALICE_ACCOUNT),
        },
        Project {
            id: s(TEAM_ID),
            key: s("TEAM"),
            name: s("Team (team-managed)"),
            style: s("next-gen"),
            issue_type_ids: ["10010", "10011", "10012", "10013", "10014"]
                .map(s)
                .to_vec(),
            lead_account_id: s(BOB_ACCOUNT),
        },
    ];
    let priorities = [
        ("1", "Highest"),
        ("2", "High"),
        ("3", "Medium"),
        ("4", "Low"),
        ("5", "Lowest"),
    ]
    .map(|(id, name)| Priority {
        id: s(id),
        name: s(name),
    })
    .to_vec();
    let user = |account_id: &str, email: &str, name: &str, tz: &str| User {
        account_id: s(account_id),
        email: s(email),
        display_name: s(name),
        account_type: s("atlassian"),
        time_zone: s(tz),
    };
    let users = vec![
        user(
            INTEGRATION_ACCOUNT,
            "sfjira@example.com",
            "sfjira integration",
            "Etc/UTC",
        ),
        user(ALICE_ACCOUNT, "alice@example.com", "Alice", "Europe/Warsaw"),
        user(BOB_ACCOUNT, "bob@example.com", "Bob", "America/New_York"),
    ];
    Catalog {
        categories,
        statuses,
        transitions,
        issue_types,
        projects,
        priorities,
        users,
        fields: fields(),
        integration_account_id: s(INTEGRATION_ACCOUNT),
        done_resolution: (s("10000"), s("Done")),
    }
}

fn fields() -> Vec<FieldDef> {
    let system =
        |id: &str, name: &str, kind: FieldKind, schema_type: &str, items: Option<&str>| FieldDef {
            id: s(id),
            name: s(name),
            kind,
            schema_type: s(schema_type),
            schema_items: items.map(s),
            custom_type: None,
            project_keys: None,
            options: Vec::new(),
        };
    let custom = |id: &str,
                  name: &str,
                  kind: FieldKind,
                  schema_type: &str,
                  plugin: &str,
                  projects: Option<&[&str]>| FieldDef {
        id: s(id),
        name: s(name),
        kind,
        schema_type: s(schema_type),
        schema_items: None,
        custom_type: Some(s(plugin)),
        project_keys: projects.map(|p| p.iter().map(|k| s(k)).collect()),
        options: Vec::new(),
    };
    use FieldKind::*;
    let mut tier = custom(
        "customfield_10060",
        "Customer Tier",
        Select,
        "option",
        "com.atlassian.jira.plugin.system.customfieldtypes:select",
        None,
    );
    tier.options = [("10100", "Gold"), ("10101", "Silver"), ("10102", "Bronze")]
        .map(|(id, value)| SelectOption {
            id: s(id),
            value: s(value),
        })
        .to_vec();
    vec![
        system("summary", "Summary", Text, "string", None),
        system("description", "Description", RichText, "string", None),
        system("environment", "Environment", RichText, "string", None),
        system("issuetype", "Issue Type", ReadOnly, "issuetype", None),
        system("project", "Project", ReadOnly, "project", None),
        system("status", "Status", ReadOnly, "status", None),
        system("resolution", "Resolution", ReadOnly, "resolution", None),
        system("priority", "Priority", Priority, "priority", None),
        system("labels", "Labels", Labels, "array", Some("string")),
        system("assignee", "Assignee", User, "user", None),
        system("reporter", "Reporter", User, "user", None),
        system("creator", "Creator", ReadOnly, "user", None),
        system("duedate", "Due date", Date, "date", None),
        system("parent", "Parent", Parent, "issuelink", None),
        system(
            "timetracking",
            "Time tracking",
            TimeTracking,
            "timetracking",
            None,
        ),
        system("created", "Created", ReadOnly, "datetime", None),
        system("updated", "Updated", ReadOnly, "datetime", None),
        system("resolutiondate", "Resolved", ReadOnly, "datetime", None),
        system(
            "statuscategorychangedate",
            "Status Category Changed",
            ReadOnly,
            "datetime",
            None,
        ),
        system(
            "subtasks",
            "Sub-tasks",
            ReadOnly,
            "array",
            Some("issuelinks"),
        ),
        system("comment", "Comment", ReadOnly, "comments-page", None),
        system("worklog", "Log Work", ReadOnly, "array", Some("worklog")),
        custom(
            "customfield_10011",
            "Epic Name",
            Text,
            "string",
            "com.pyxis.greenhopper.jira:gh-epic-label",
            Some(&["PROJ"]),
        ),
        custom(
            "customfield_10016",
            "Story Points",
            Number,
            "number",
            "com.atlassian.jira.plugin.system.customfieldtypes:float",
            Some(&["PROJ"]),
        ),
        custom(
            "customfield_10028",
            "Story point estimate",
            Number,
            "number",
            "com.pyxis.greenhopper.jira:jsw-story-points",
            Some(&["TEAM"]),
        ),
        custom(
            "customfield_10050",
            "Salesforce ID",
            Text,
            "string",
            "com.atlassian.jira.plugin.system.customfieldtypes:textfield",
            None,
        ),
        tier,
        custom(
            "customfield_10061",
            "Customer Impact",
            RichText,
            "string",
            "com.atlassian.jira.plugin.system.customfieldtypes:textarea",
            None,
        ),
    ]
}
