//! Lookups that every write and most reads need, kept beside the issue map so they cost O(1)
//! (or O(children)) instead of a scan of the whole site: issue key → id (keys are matched
//! case-insensitively, reference §3.2) and parent → children (the `subtasks` field, which
//! every rendered issue carries, and `DELETE` with `deleteSubtasks`).
//!
//! The index is derived data: it is not in snapshots (rebuilt on load by [`IssueIndex::build`])
//! and only [`super::SiteState`]'s own methods change it, together with the issue map, so the
//! two cannot drift as long as issues are added, removed and re-parented through them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::issue::Issue;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueIndex {
    /// Upper-cased key → id. Keys never change once given (issues are not moved).
    by_key: HashMap<String, u64>,
    /// Parent id → child ids, ascending (the issue map's order, so `subtasks` keeps its order).
    children: HashMap<u64, BTreeSet<u64>>,
}

impl IssueIndex {
    /// The index of `issues` from scratch (snapshot load; consistency checks in tests).
    pub fn build(issues: &BTreeMap<u64, Issue>) -> Self {
        let mut index = IssueIndex::default();
        for issue in issues.values() {
            index.added(issue);
        }
        index
    }

    /// The id of the issue with `key`, compared case-insensitively.
    pub fn id_of_key(&self, key: &str) -> Option<u64> {
        self.by_key.get(&key.to_ascii_uppercase()).copied()
    }

    /// Ids of the issues whose `parent` is `parent`, ascending.
    pub fn children(&self, parent: u64) -> impl Iterator<Item = u64> + '_ {
        self.children.get(&parent).into_iter().flatten().copied()
    }

    pub(super) fn added(&mut self, issue: &Issue) {
        self.by_key.insert(issue.key.to_ascii_uppercase(), issue.id);
        self.reparented(issue.id, None, issue.parent_id());
    }

    pub(super) fn removed(&mut self, issue: &Issue) {
        self.by_key.remove(&issue.key.to_ascii_uppercase());
        self.reparented(issue.id, issue.parent_id(), None);
    }

    pub(super) fn reparented(&mut self, child: u64, from: Option<u64>, to: Option<u64>) {
        if from == to {
            return;
        }
        if let Some(old) = from
            && let Some(set) = self.children.get_mut(&old)
        {
            set.remove(&child);
            if set.is_empty() {
                self.children.remove(&old);
            }
        }
        if let Some(new) = to {
            self.children.entry(new).or_default().insert(child);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The index against the plain scan it replaces, across create, re-parent (edit `parent`),
    //! delete (with sub-tasks, and of an epic whose children stay) and a snapshot reload.

    use chrono::Utc;
    use serde_json::{Value, json};

    use super::super::ops::IssueWrite;
    use super::super::render::{Expand, FieldSelection};
    use super::super::seed::{self, INTEGRATION_ACCOUNT};
    use super::super::{IssueLimits, Site};

    fn site(snapshot: Option<std::path::PathBuf>) -> Site {
        Site::new(
            seed::catalog(),
            "http://sandbox".into(),
            IssueLimits::default(),
            snapshot,
        )
        .unwrap()
    }

    fn create(s: &mut Site, issue_type: &str, parent: Option<&str>) -> (u64, String) {
        let mut fields = json!({"project": {"key": "PROJ"}, "issuetype": {"name": issue_type}, "summary": issue_type});
        if let Some(p) = parent {
            fields["parent"] = json!({"key": p});
        }
        let write = IssueWrite::from_body(&json!({ "fields": fields }));
        let (id, _) = s
            .create_issue(INTEGRATION_ACCOUNT, &write, None, Utc::now())
            .unwrap();
        (id, s.state.issues[&id].key.clone())
    }

    fn reparent(s: &mut Site, id: u64, parent: &str) {
        let write = IssueWrite::from_body(&json!({"fields": {"parent": {"key": parent}}}));
        s.edit_issue(INTEGRATION_ACCOUNT, id, &write, Utc::now())
            .unwrap();
    }

    /// The rendered `subtasks` keys of an issue.
    fn subtasks(s: &Site, id: u64) -> Vec<String> {
        let sel = FieldSelection::parse(["subtasks"]);
        let v = s.render_issue(&s.state.issues[&id], &sel, Expand::default());
        v["fields"]["subtasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap().to_string())
            .collect()
    }

    /// What the old full scan rendered: sub-task-typed issues whose parent is `id`, by id.
    fn scanned_subtasks(s: &Site, id: u64) -> Vec<String> {
        s.state
            .issues
            .values()
            .filter(|c| c.parent_id() == Some(id) && s.issue_type_of(c).subtask)
            .map(|c| c.key.clone())
            .collect()
    }

    /// Index and scan agree for every issue, in every rendered byte of `subtasks`.
    fn check(s: &Site) {
        assert!(s.state.index_is_consistent());
        for (&id, issue) in &s.state.issues {
            assert_eq!(subtasks(s, id), scanned_subtasks(s, id), "{}", issue.key);
            let children: Vec<u64> = s.state.children_ids(id).collect();
            let scanned: Vec<u64> = s
                .state
                .issues
                .values()
                .filter(|c| c.parent_id() == Some(id))
                .map(|c| c.id)
                .collect();
            assert_eq!(children, scanned, "{}", issue.key);
            assert_eq!(s.find(&issue.key.to_lowercase()).map(|i| i.id), Some(id));
        }
    }

    #[test]
    fn children_follow_create_reparent_and_delete() {
        let mut s = site(None);
        let (epic_a, ka) = create(&mut s, "Epic", None);
        let (epic_b, kb) = create(&mut s, "Epic", None);
        let (task_1, k1) = create(&mut s, "Task", Some(&ka));
        let (task_2, k2) = create(&mut s, "Task", None);
        let (_, st1) = create(&mut s, "Sub-task", Some(&k1));
        let (st2_id, st2) = create(&mut s, "Sub-task", Some(&k1));
        let (_, st3) = create(&mut s, "Sub-task", Some(&k2));
        check(&s);
        assert_eq!(subtasks(&s, task_1), [st1.clone(), st2.clone()]);
        assert_eq!(subtasks(&s, task_2), vec![st3.clone()]);
        // An epic's children are not sub-tasks: listed by the index, not in `subtasks`.
        assert!(subtasks(&s, epic_a).is_empty());
        assert_eq!(s.state.children_ids(epic_a).collect::<Vec<_>>(), [task_1]);

        // Re-parent a sub-task (it goes before the later one, by id) and a task.
        reparent(&mut s, st2_id, &k2);
        reparent(&mut s, task_1, &kb);
        check(&s);
        assert_eq!(subtasks(&s, task_1), vec![st1.clone()]);
        assert_eq!(subtasks(&s, task_2), [st2.clone(), st3.clone()]);
        assert_eq!(s.state.children_ids(epic_a).count(), 0);
        assert_eq!(s.state.children_ids(epic_b).collect::<Vec<_>>(), [task_1]);

        // A parent with sub-tasks goes only with them; they leave the index with it.
        assert!(s.delete_issue(task_2, false, Utc::now()).is_err());
        s.delete_issue(task_2, true, Utc::now()).unwrap();
        check(&s);
        assert!(s.find(&st2).is_none() && s.find(&st3).is_none() && s.find(&k2).is_none());
        assert_eq!(s.state.children_ids(task_2).count(), 0);

        // Deleting an epic leaves its children, without a parent.
        s.delete_issue(epic_b, false, Utc::now()).unwrap();
        check(&s);
        assert_eq!(s.state.issues[&task_1].parent_id(), None);
        assert_eq!(s.state.issues[&task_1].fields.get("parent"), None::<&Value>);
        assert_eq!(subtasks(&s, task_1), vec![st1.clone()]);

        // A new sub-task after all that lands under the right parent, after the older one.
        let (_, st4) = create(&mut s, "Sub-task", Some(&k1));
        check(&s);
        assert_eq!(subtasks(&s, task_1), [st1, st4]);
    }

    #[test]
    fn snapshot_reload_rebuilds_the_index() {
        let path = std::env::temp_dir().join(format!(
            "sfjira-index-{}.json",
            uuid::Uuid::new_v4().simple()
        ));
        let mut s = site(Some(path.clone()));
        let (task, key) = create(&mut s, "Task", None);
        let (_, sub) = create(&mut s, "Sub-task", Some(&key));
        let before = subtasks(&s, task);
        drop(s);
        let loaded = site(Some(path.clone()));
        let _ = std::fs::remove_file(&path);
        check(&loaded);
        assert_eq!(subtasks(&loaded, task), before);
        assert_eq!(before, [sub]);
    }
}
