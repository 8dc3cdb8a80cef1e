//! REST v3 JSON shapes of the site's records (`IssueBean`, `Comment`, `Worklog`, `Changelog`,
//! `FieldDetails`, …), with `self` links under the site's base URL. Field selection (`fields`
//! with `*all`, `*navigable`, `-x`) and `expand` (`changelog`, `names`, `transitions`) are
//! applied here so `GET /issue`, search and webhook payloads render issues the same way.

use serde_json::{Map, Value, json};

use super::catalog::{
    Catalog, FieldDef, FieldKind, IssueType, Priority, Project, Status, Transition, User,
};
use super::fields::render_value;
use super::issue::{Comment, History, Issue, Worklog};
use super::{Site, SiteState, duration};
use crate::jira::time_format::jira_timestamp;

pub fn user(base: &str, u: &User) -> Value {
    let avatar = format!(
        "https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/default/{}",
        u.account_id
    );
    json!({
        "self": format!("{base}/rest/api/3/user?accountId={}", u.account_id),
        "accountId": u.account_id,
        "emailAddress": u.email,
        "avatarUrls": {"48x48": avatar, "24x24": avatar, "16x16": avatar, "32x32": avatar},
        "displayName": u.display_name,
        "active": true,
        "timeZone": u.time_zone,
        "accountType": u.account_type,
    })
}

fn user_by_id(catalog: &Catalog, base: &str, account_id: &str) -> Value {
    catalog
        .user(account_id)
        .map(|u| user(base, u))
        .unwrap_or(Value::Null)
}

pub fn priority(base: &str, p: &Priority) -> Value {
    json!({
        "self": format!("{base}/rest/api/3/priority/{}", p.id),
        "iconUrl": format!("{base}/images/icons/priorities/{}.svg", p.name.to_lowercase()),
        "name": p.name,
        "id": p.id,
    })
}

pub fn status(catalog: &Catalog, base: &str, s: &Status) -> Value {
    let c = catalog.category(s.category_id);
    json!({
        "self": format!("{base}/rest/api/3/status/{}", s.id),
        "description": "",
        "iconUrl": format!("{base}/"),
        "name": s.name,
        "id": s.id,
        "statusCategory": {
            "self": format!("{base}/rest/api/3/statuscategory/{}", c.id),
            "id": c.id,
            "key": c.key,
            "colorName": c.color_name,
            "name": c.name,
        }
    })
}

pub fn issue_type(base: &str, t: &IssueType) -> Value {
    let mut v = json!({
        "self": format!("{base}/rest/api/3/issuetype/{}", t.id),
        "id": t.id,
        "description": t.description,
        "iconUrl": format!("{base}/rest/api/2/universal_avatar/view/type/issuetype/avatar/10300?size=medium"),
        "name": t.name,
        "subtask": t.subtask,
        "avatarId": 10300,
        "hierarchyLevel": t.hierarchy_level,
    });
    if let Some(p) = &t.project_id {
        v["entityId"] = json!(format!("{}-{}", p, t.id));
        v["scope"] = json!({"type": "PROJECT", "project": {"id": p}});
    }
    v
}

pub fn project(base: &str, p: &Project) -> Value {
    json!({
        "self": format!("{base}/rest/api/3/project/{}", p.id),
        "id": p.id,
        "key": p.key,
        "name": p.name,
        "projectTypeKey": "software",
        "simplified": p.simplified(),
        "style": p.style,
        "isPrivate": false,
        "avatarUrls": {"48x48": format!("{base}/rest/api/3/universal_avatar/view/type/project/avatar/10400")},
    })
}

pub fn parent(catalog: &Catalog, base: &str, p: &Issue) -> Value {
    let st = catalog.status(&p.status_id).expect("status in catalog");
    let it = catalog
        .issue_type(&p.issue_type_id)
        .expect("issue type in catalog");
    let pr = p
        .fields
        .get("priority")
        .and_then(Value::as_str)
        .and_then(|id| catalog.priority(id));
    json!({
        "id": p.id.to_string(),
        "key": p.key,
        "self": format!("{base}/rest/api/3/issue/{}", p.id),
        "fields": {
            "summary": p.summary(),
            "status": status(catalog, base, st),
            "priority": pr.map(|pr| priority(base, pr)),
            "issuetype": issue_type(base, it),
        }
    })
}

pub fn comment(catalog: &Catalog, base: &str, issue_id: u64, c: &Comment) -> Value {
    json!({
        "self": format!("{base}/rest/api/3/issue/{issue_id}/comment/{}", c.id),
        "id": c.id.to_string(),
        "author": user_by_id(catalog, base, &c.author),
        "body": c.body,
        "updateAuthor": user_by_id(catalog, base, &c.update_author),
        "created": jira_timestamp(c.created),
        "updated": jira_timestamp(c.updated),
        "visibility": c.visibility,
        "jsdPublic": true,
    })
}

pub fn worklog(catalog: &Catalog, base: &str, w: &Worklog) -> Value {
    let mut v = json!({
        "self": format!("{base}/rest/api/3/issue/{}/worklog/{}", w.issue_id, w.id),
        "author": user_by_id(catalog, base, &w.author),
        "updateAuthor": user_by_id(catalog, base, &w.update_author),
        "created": jira_timestamp(w.created),
        "updated": jira_timestamp(w.updated),
        "started": w.started.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
        "timeSpent": duration::format(w.time_spent_seconds),
        "timeSpentSeconds": w.time_spent_seconds,
        "id": w.id.to_string(),
        "issueId": w.issue_id.to_string(),
    });
    if let Some(c) = &w.comment {
        v["comment"] = c.clone();
    }
    if let Some(vis) = &w.visibility {
        v["visibility"] = vis.clone();
    }
    v
}

pub fn history(catalog: &Catalog, base: &str, h: &History) -> Value {
    let items: Vec<Value> = h
        .items
        .iter()
        .map(|i| {
            json!({
                "field": i.field, "fieldtype": i.fieldtype, "fieldId": i.field_id,
                "from": i.from, "fromString": i.from_string, "to": i.to, "toString": i.to_string,
            })
        })
        .collect();
    let mut v = json!({
        "id": h.id.to_string(),
        "author": user_by_id(catalog, base, &h.author),
        "created": jira_timestamp(h.created),
        "items": items,
    });
    if let Some(m) = &h.history_metadata {
        v["historyMetadata"] = m.clone();
    }
    v
}

pub fn transition(catalog: &Catalog, base: &str, t: &Transition) -> Value {
    let to = catalog.status(&t.to).expect("transition target in catalog");
    json!({
        "id": t.id,
        "name": t.name,
        "to": status(catalog, base, to),
        "hasScreen": false,
        "isGlobal": t.from.is_empty(),
        "isInitial": false,
        "isAvailable": true,
        "isConditional": false,
        "isLooped": false,
    })
}

/// `GET /field` entry (`FieldDetails`).
pub fn field_details(catalog: &Catalog, f: &FieldDef) -> Value {
    let mut schema = Map::new();
    schema.insert("type".into(), json!(f.schema_type));
    if let Some(items) = &f.schema_items {
        schema.insert("items".into(), json!(items));
    }
    match (&f.custom_type, f.custom_id()) {
        (Some(custom), Some(custom_id)) => {
            schema.insert("custom".into(), json!(custom));
            schema.insert("customId".into(), json!(custom_id));
        }
        _ => drop(schema.insert("system".into(), json!(f.id))),
    }
    let clause_names = match f.custom_id() {
        Some(n) => json!([format!("cf[{n}]"), f.name]),
        None => json!([f.id]),
    };
    let mut v = json!({
        "id": f.id,
        "key": f.id,
        "name": f.name,
        "untranslatedName": f.name,
        "custom": f.is_custom(),
        "orderable": f.kind != FieldKind::ReadOnly,
        "navigable": true,
        "searchable": true,
        "clauseNames": clause_names,
        "schema": schema,
    });
    if let Some(keys) = &f.project_keys
        && let [key] = keys.as_slice()
        && let Some(p) = catalog.project_by_key(key)
        && p.simplified()
    {
        // Team-managed fields carry their project scope.
        v["scope"] = json!({"type": "PROJECT", "project": {"id": p.id}});
    }
    v
}

/// Which fields to render, from the `fields` parameter (default `*all`).
#[derive(Debug, Clone)]
pub struct FieldSelection {
    all: bool,
    include: Vec<String>,
    exclude: Vec<String>,
}

impl FieldSelection {
    pub fn all() -> Self {
        FieldSelection {
            all: true,
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }

    /// No fields at all (search's default is `id` only).
    pub fn none() -> Self {
        FieldSelection {
            all: false,
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }

    /// Parses comma-separated entries (`*all`, `*navigable`, `summary`, `-comment`, …).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Self {
        let mut sel = Self::none();
        let mut any = false;
        for e in entries
            .into_iter()
            .flat_map(|e| e.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            any = true;
            match e {
                "*all" | "*navigable" => sel.all = true,
                "id" | "key" => {}
                _ => match e.strip_prefix('-') {
                    Some(x) => sel.exclude.push(x.to_string()),
                    None => sel.include.push(e.to_string()),
                },
            }
        }
        // Only exclusions means "everything but".
        if any && sel.include.is_empty() && !sel.exclude.is_empty() {
            sel.all = true;
        }
        sel
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.include.is_empty()
    }

    pub fn wants(&self, id: &str) -> bool {
        !self.exclude.iter().any(|x| x == id) && (self.all || self.include.iter().any(|x| x == id))
    }
}

/// What `expand` asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expand {
    pub changelog: bool,
    pub names: bool,
    pub transitions: bool,
}

impl Expand {
    pub fn parse(s: Option<&str>) -> Self {
        let mut e = Expand::default();
        for part in s.unwrap_or_default().split(',').map(str::trim) {
            match part {
                "changelog" => e.changelog = true,
                "names" => e.names = true,
                "transitions" => e.transitions = true,
                _ => {}
            }
        }
        e
    }
}

impl Site {
    /// An issue's `IssueBean`.
    pub fn render_issue(&self, issue: &Issue, sel: &FieldSelection, expand: Expand) -> Value {
        let (catalog, state, base) = (&self.catalog, &self.state, self.base_url.as_str());
        let mut fields = Map::new();
        let mut names = Map::new();
        for def in catalog
            .project_fields(&issue.project_key)
            .filter(|d| sel.wants(&d.id))
        {
            names.insert(def.id.clone(), json!(def.name));
            fields.insert(
                def.id.clone(),
                system_or_stored(catalog, state, base, issue, def),
            );
        }
        let mut v = json!({
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue.id.to_string(),
            "self": format!("{base}/rest/api/3/issue/{}", issue.id),
            "key": issue.key,
        });
        if !sel.is_empty() {
            v["fields"] = Value::Object(fields);
        }
        if expand.names {
            v["names"] = Value::Object(names);
        }
        if expand.transitions {
            let ts: Vec<Value> = catalog
                .transitions_from(&issue.status_id)
                .map(|t| transition(catalog, base, t))
                .collect();
            v["transitions"] = json!(ts);
        }
        if expand.changelog {
            // Newest first on get-issue (reference §3.9).
            let histories: Vec<Value> = issue
                .changelog
                .iter()
                .rev()
                .map(|h| history(catalog, base, h))
                .collect();
            v["changelog"] = json!({"startAt": 0, "maxResults": histories.len(), "total": histories.len(), "histories": histories});
        }
        v
    }
}

fn system_or_stored(
    catalog: &Catalog,
    state: &SiteState,
    base: &str,
    issue: &Issue,
    def: &FieldDef,
) -> Value {
    let ts = |t: chrono::DateTime<chrono::Utc>| json!(jira_timestamp(t));
    match def.id.as_str() {
        "issuetype" => issue_type(
            base,
            catalog
                .issue_type(&issue.issue_type_id)
                .expect("type in catalog"),
        ),
        "project" => project(
            base,
            catalog
                .project_by_key(&issue.project_key)
                .expect("project in catalog"),
        ),
        "status" => status(
            catalog,
            base,
            catalog.status(&issue.status_id).expect("status in catalog"),
        ),
        "resolution" => match &issue.resolution_id {
            Some(id) => {
                json!({"self": format!("{base}/rest/api/3/resolution/{id}"), "id": id, "name": catalog.done_resolution.1, "description": "Work has been completed on this issue."})
            }
            None => Value::Null,
        },
        "creator" => user_by_id(catalog, base, &issue.creator),
        "created" => ts(issue.created),
        "updated" => ts(issue.updated),
        "resolutiondate" => issue.resolution_date.map(ts).unwrap_or(Value::Null),
        "statuscategorychangedate" => ts(issue.status_category_changed),
        // From the parent → children index (ascending id, the issue map's order): rendering
        // an issue costs the same at 50 000 issues as at 5.
        "subtasks" => json!(
            state
                .children_ids(issue.id)
                .filter_map(|c| state.issues.get(&c))
                .filter(|c| catalog
                    .issue_type(&c.issue_type_id)
                    .is_some_and(|t| t.subtask))
                .map(|c| parent(catalog, base, c))
                .collect::<Vec<_>>()
        ),
        "comment" => {
            let comments: Vec<Value> = issue
                .comments
                .iter()
                .map(|c| comment(catalog, base, issue.id, c))
                .collect();
            json!({"comments": comments, "self": format!("{base}/rest/api/3/issue/{}/comment", issue.id), "maxResults": comments.len(), "total": comments.len(), "startAt": 0})
        }
        "worklog" => {
            let worklogs: Vec<Value> = issue
                .worklogs
                .iter()
                .take(20)
                .map(|w| worklog(catalog, base, w))
                .collect();
            json!({"startAt": 0, "maxResults": 20, "total": issue.worklogs.len(), "worklogs": worklogs})
        }
        "timetracking" => {
            let mut t = Map::new();
            let mut put = |name: &str, secs: Option<i64>| {
                if let Some(s) = secs {
                    t.insert(name.to_string(), json!(duration::format(s)));
                    t.insert(format!("{name}Seconds"), json!(s));
                }
            };
            put("originalEstimate", issue.original_estimate_seconds);
            put("remainingEstimate", issue.remaining_estimate_seconds);
            let spent = issue.time_spent_seconds();
            put("timeSpent", (spent > 0).then_some(spent));
            Value::Object(t)
        }
        _ => render_value(catalog, state, base, def, issue.fields.get(&def.id)),
    }
}
