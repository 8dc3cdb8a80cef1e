//! The site's configuration as Jira admins see it: projects, issue types, workflow (statuses,
//! categories, transitions), priorities, users and fields. It is fixed at start (built by
//! [`super::seed`], users extended from the YAML config) and never changes while serving, so
//! handlers can read it without thinking about concurrent edits.

use serde::{Deserialize, Serialize};

/// A status category (`new`/`indeterminate`/`done`, ids 2/4/3 on every Jira Cloud site).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusCategory {
    pub id: u32,
    pub key: String,
    pub name: String,
    pub color_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub id: String,
    pub name: String,
    pub category_id: u32,
}

/// A workflow transition. `from` empty = global ("any status").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transition {
    pub id: String,
    pub name: String,
    pub from: Vec<String>,
    pub to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueType {
    pub id: String,
    pub name: String,
    pub description: String,
    pub subtask: bool,
    /// 1 = epic, 0 = standard, -1 = sub-task (Jira's `hierarchyLevel`).
    pub hierarchy_level: i32,
    /// Team-managed issue types belong to one project (`scope` in the REST shape).
    pub project_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub key: String,
    pub name: String,
    /// `classic` (company-managed) or `next-gen` (team-managed).
    pub style: String,
    pub issue_type_ids: Vec<String>,
    pub lead_account_id: String,
}

impl Project {
    pub fn simplified(&self) -> bool {
        self.style == "next-gen"
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Priority {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub account_id: String,
    pub email: String,
    pub display_name: String,
    /// `atlassian` for people and API-token integration accounts, `app` for apps.
    pub account_type: String,
    pub time_zone: String,
}

/// How a field's value is validated, stored, rendered and described in changelogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldKind {
    /// A single-line string.
    Text,
    /// ADF document (description, environment, textarea custom fields).
    RichText,
    Number,
    Labels,
    User,
    Priority,
    /// Single select list; stored as the option id.
    Select,
    /// `yyyy-MM-dd`.
    Date,
    /// `parent` (epic children and sub-tasks).
    Parent,
    /// `timetracking` (original/remaining estimates).
    TimeTracking,
    /// Shown but not settable through `fields` (status, created, …).
    ReadOnly,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelectOption {
    pub id: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldDef {
    pub id: String,
    pub name: String,
    pub kind: FieldKind,
    /// `schema.type` in `GET /field`.
    pub schema_type: String,
    /// `schema.items` for arrays.
    pub schema_items: Option<String>,
    /// `schema.custom` (plugin type key) for custom fields; `None` = system field.
    pub custom_type: Option<String>,
    /// Projects (keys) whose screens have the field; `None` = every project.
    pub project_keys: Option<Vec<String>>,
    pub options: Vec<SelectOption>,
}

impl FieldDef {
    pub fn is_custom(&self) -> bool {
        self.custom_type.is_some()
    }

    pub fn applies_to(&self, project_key: &str) -> bool {
        self.project_keys
            .as_ref()
            .is_none_or(|keys| keys.iter().any(|k| k == project_key))
    }

    /// The numeric part of `customfield_10016` (`schema.customId`).
    pub fn custom_id(&self) -> Option<u64> {
        self.id.strip_prefix("customfield_")?.parse().ok()
    }
}

/// Everything configured on the site.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    pub categories: Vec<StatusCategory>,
    pub statuses: Vec<Status>,
    pub transitions: Vec<Transition>,
    pub issue_types: Vec<IssueType>,
    pub projects: Vec<Project>,
    pub priorities: Vec<Priority>,
    pub users: Vec<User>,
    pub fields: Vec<FieldDef>,
    /// The account API-token and OAuth calls act as unless told otherwise.
    pub integration_account_id: String,
    /// Resolution set when an issue enters a `done` status.
    pub done_resolution: (String, String),
}

impl Catalog {
    pub fn project(&self, id_or_key: &str) -> Option<&Project> {
        self.projects
            .iter()
            .find(|p| p.id == id_or_key || p.key.eq_ignore_ascii_case(id_or_key))
    }

    pub fn project_by_key(&self, key: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.key == key)
    }

    pub fn issue_type(&self, id: &str) -> Option<&IssueType> {
        self.issue_types.iter().find(|t| t.id == id)
    }

    /// The project's issue type with this id or name.
    pub fn project_issue_type(&self, project: &Project, id_or_name: &str) -> Option<&IssueType> {
        project
            .issue_type_ids
            .iter()
            .filter_map(|id| self.issue_type(id))
            .find(|t| t.id == id_or_name || t.name.eq_ignore_ascii_case(id_or_name))
    }

    pub fn status(&self, id: &str) -> Option<&Status> {
        self.statuses.iter().find(|s| s.id == id)
    }

    pub fn category(&self, id: u32) -> &StatusCategory {
        self.categories
            .iter()
            .find(|c| c.id == id)
            .unwrap_or(&self.categories[0])
    }

    pub fn initial_status(&self) -> &Status {
        &self.statuses[0]
    }

    /// Transitions available from `status_id`, in workflow order.
    pub fn transitions_from<'a>(
        &'a self,
        status_id: &'a str,
    ) -> impl Iterator<Item = &'a Transition> {
        self.transitions
            .iter()
            .filter(move |t| t.from.is_empty() || t.from.iter().any(|f| f == status_id))
    }

    pub fn priority(&self, id_or_name: &str) -> Option<&Priority> {
        self.priorities
            .iter()
            .find(|p| p.id == id_or_name || p.name.eq_ignore_ascii_case(id_or_name))
    }

    pub fn user(&self, account_id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.account_id == account_id)
    }

    /// A user by account id, email or display name (admin API convenience).
    pub fn find_user(&self, who: &str) -> Option<&User> {
        self.users.iter().find(|u| {
            u.account_id == who
                || u.email.eq_ignore_ascii_case(who)
                || u.display_name.eq_ignore_ascii_case(who)
        })
    }

    pub fn field(&self, id: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// Fields on the project's screens, in catalog order.
    pub fn project_fields<'a>(
        &'a self,
        project_key: &'a str,
    ) -> impl Iterator<Item = &'a FieldDef> {
        self.fields
            .iter()
            .filter(move |f| f.applies_to(project_key))
    }
}
