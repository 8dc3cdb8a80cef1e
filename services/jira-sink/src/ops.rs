//! Edits of an existing issue: one `PUT` for a run of coalesced commands (only their changed
//! fields, the latest value of each), then the status. Each edit is stamped as sfjira's
//! (`historyMetadata`) and retried while Jira answers 429/5xx/409 (safe to repeat).
//!
//! `BOTH`-owned fields follow the last-writer-wins rule (docs/commands.md): before writing one,
//! the issue's changelog says when the field last changed in Jira — for a change sfjira made,
//! the source time it carried in `historyMetadata.extraData` — and a newer change there wins:
//! the field is skipped and audited as `superseded`. Independently, a value older than the
//! last one sfjira wrote to the same field (a DLQ replay after later commands) is never written.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Map, Value, json};
use sfjira_core::audit::AuditResult;
use sfjira_core::command::{Command, FieldValue, Owner};
use sfjira_core::errors::ErrorCode;

use crate::create::unknown_field;
use crate::fields::{history_metadata, labels_with_marker, marker_label};
use crate::metrics;
use crate::sink::{Outcome, Sink, Work, invalid, now_ms};

impl Sink {
    /// `historyMetadata` stamped on this command's edits and transitions.
    pub(crate) fn hm(&self, cmd: &Command, source_ms: i64) -> Value {
        history_metadata(
            &self.cfg.history_marker,
            &self.cfg.generator_id,
            &cmd.command_id,
            source_ms,
        )
    }

    /// Edits a linked issue with a run of commands (coalesced into one `PUT`), then moves it
    /// to the last `transition_to` among them.
    pub async fn update(&self, out: &mut Outcome, id: &str, key: &str, works: &[Work]) {
        let started = now_ms();
        let first = &works[0].cmd;
        let reference = &first.target.external_ref;
        // Merge: the latest changed value of each field wins.
        let mut changed: BTreeMap<String, (String, FieldValue)> = BTreeMap::new();
        let mut transition: Option<FieldValue> = None;
        for w in works {
            for (name, fv) in w.cmd.fields.iter().filter(|(_, f)| f.changed) {
                let Some(info) = self.fields.resolve(name) else {
                    self.fail(out, w, "update", &unknown_field(name), started);
                    return self.rest_failed(out, works, w, started);
                };
                changed.insert(info.id.clone(), (name.clone(), fv.clone()));
            }
            if let Some(t) = w.cmd.transition_to.as_ref().filter(|t| t.changed) {
                transition = Some(t.clone());
            }
            if let Some(parent) = &w.cmd.target.parent_ref {
                match self.issue_of(parent) {
                    Some((_, pkey)) => {
                        changed.insert(
                            "parent".into(),
                            (
                                "parent".into(),
                                FieldValue {
                                    value: json!({"key": pkey}),
                                    owner: Owner::Both,
                                    changed: true,
                                    source_time: w.cmd.source.commit_time,
                                },
                            ),
                        );
                    }
                    None => tracing::debug!(parent, "parent not linked; parent left as is"),
                }
            }
        }
        let needs_read = !changed.is_empty() || transition.is_some();
        let ids: Vec<String> = changed
            .keys()
            .cloned()
            .chain(["status".to_string()])
            .collect();
        let current = if needs_read {
            match self
                .jira
                .call(
                    Method::GET,
                    "get",
                    &format!(
                        "/rest/api/3/issue/{id}?fields={}&expand=changelog",
                        ids.join(",")
                    ),
                    None,
                )
                .await
            {
                Ok(v) => v,
                Err((e, x)) => {
                    let err = e.stage_error("reading the issue before the edit", x);
                    for w in works {
                        self.fail(out, w, "update", &err, started);
                    }
                    return;
                }
            }
        } else {
            Value::Null
        };
        let last_change = |field: &str| last_changed(&current, field, &self.cfg.history_marker);
        let mut fields = Map::new();
        let mut before = BTreeMap::new();
        let mut after = BTreeMap::new();
        let mut superseded = Vec::new();
        let mut sources: Vec<(String, i64)> = Vec::new();
        let marker = marker_label(reference);
        for (fid, (name, fv)) in &changed {
            let src = fv.source_time.timestamp_millis();
            let stale = self.last_written(reference, fid).is_some_and(|w| w > src);
            let newer_in_jira =
                fv.owner == Owner::Both && last_change(fid).is_some_and(|t| t > src);
            if stale || newer_in_jira {
                superseded.push(name.clone());
                continue;
            }
            let info = self.fields.resolve(fid).expect("resolved above");
            let value = if fid == "labels" {
                labels_with_marker(&fv.value, &marker)
            } else {
                self.fields.shape(info, &fv.value)
            };
            before.insert(
                fid.clone(),
                current
                    .pointer(&format!("/fields/{fid}"))
                    .cloned()
                    .unwrap_or(Value::Null),
            );
            after.insert(fid.clone(), value.clone());
            fields.insert(fid.clone(), value);
            sources.push((fid.clone(), src));
        }
        // The source time our changelog entry carries: the newest value written.
        let latest_src = sources
            .iter()
            .map(|(_, t)| *t)
            .chain(transition.iter().map(|t| t.source_time.timestamp_millis()))
            .max()
            .unwrap_or_else(|| first.source.commit_time.timestamp_millis());
        let dry = self.cfg.dry_run;
        if !fields.is_empty() && !dry {
            let body = json!({"fields": fields, "historyMetadata": self.hm(first, latest_src)});
            if let Err((e, x)) = self
                .jira
                .call(
                    Method::PUT,
                    "edit",
                    &format!("/rest/api/3/issue/{id}"),
                    Some(&body),
                )
                .await
            {
                let err = e.stage_error("editing the issue", x);
                for w in works {
                    self.fail(out, w, "update", &err, started);
                }
                return;
            }
        }
        let mut operation = "update";
        if let Some(t) = transition {
            let src = t.source_time.timestamp_millis();
            let newer = (t.owner == Owner::Both && last_change("status").is_some_and(|c| c > src))
                || self
                    .last_written(reference, "status")
                    .is_some_and(|w| w > src);
            let target = t.value.as_str().unwrap_or_default().to_string();
            if newer {
                superseded.push("status".into());
            } else if !target.is_empty() {
                let now = current
                    .pointer("/fields/status/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if !now.eq_ignore_ascii_case(&target) {
                    before.insert("status".into(), json!(now));
                    after.insert("status".into(), json!(target));
                    operation = if fields.is_empty() {
                        "transition"
                    } else {
                        "update"
                    };
                    if !dry
                        && let Err(err) = self
                            .walk(
                                id,
                                &target,
                                Some(now.clone()).filter(|s| !s.is_empty()),
                                first,
                                latest_src,
                            )
                            .await
                    {
                        for w in works {
                            self.fail(out, w, "transition", &err, started);
                        }
                        return;
                    }
                    sources.push(("status".into(), src));
                }
            }
        }
        let (result, detail) = if dry {
            (
                AuditResult::Skipped,
                Some("dry run: nothing written".to_string()),
            )
        } else if after.is_empty() && !superseded.is_empty() {
            (
                AuditResult::Superseded,
                Some(format!("newer in Jira: {}", superseded.join(", "))),
            )
        } else if after.is_empty() {
            (AuditResult::Skipped, Some("nothing changed".to_string()))
        } else if superseded.is_empty() {
            (AuditResult::Applied, None)
        } else {
            (
                AuditResult::Applied,
                Some(format!(
                    "superseded (newer in Jira): {}",
                    superseded.join(", ")
                )),
            )
        };
        if !dry {
            for (fid, src) in &sources {
                self.wrote(out, reference, fid, *src);
            }
        }
        let target = format!("jira:{key}");
        for (i, w) in works.iter().enumerate() {
            let detail = if i == 0 {
                detail.clone()
            } else {
                Some(format!("coalesced into the edit by {}", first.command_id))
            };
            self.audit(
                out,
                &w.cmd,
                &target,
                operation,
                before.clone(),
                after.clone(),
                result,
                detail,
                started,
            );
        }
        if works.len() > 1 {
            metrics::coalesced(works.len() - 1);
        }
    }

    /// After a failure inside a run, the other commands of the run go to the DLQ with it
    /// (they were coalesced into the failed write).
    fn rest_failed(&self, out: &mut Outcome, works: &[Work], failed: &Work, started: i64) {
        let err = invalid(
            ErrorCode::JiraCommandInvalid,
            format!(
                "coalesced with command {} which failed",
                failed.cmd.command_id
            ),
        );
        for w in works
            .iter()
            .filter(|w| w.cmd.command_id != failed.cmd.command_id)
        {
            self.fail(out, w, "update", &err, started);
        }
    }
}

/// When `field` last changed in Jira (epoch ms), from an issue read with `expand=changelog`:
/// for a change sfjira made (our `historyMetadata.type`), the source time it carried.
pub fn last_changed(issue: &Value, field: &str, marker: &str) -> Option<i64> {
    let histories = issue.pointer("/changelog/histories")?.as_array()?;
    histories
        .iter()
        .filter(|h| {
            h.get("items")
                .and_then(Value::as_array)
                .is_some_and(|items| {
                    items.iter().any(|i| {
                        i.get("fieldId").and_then(Value::as_str) == Some(field)
                            || i.get("field")
                                .and_then(Value::as_str)
                                .is_some_and(|f| f.eq_ignore_ascii_case(field))
                    })
                })
        })
        .filter_map(|h| {
            let ours = h.pointer("/historyMetadata/type").and_then(Value::as_str) == Some(marker);
            let source = h
                .pointer("/historyMetadata/extraData/source_time")
                .and_then(|v| {
                    v.as_str()
                        .and_then(|s| s.parse().ok())
                        .or_else(|| v.as_i64())
                });
            match (ours, source) {
                (true, Some(ms)) => Some(ms),
                _ => {
                    let created = h.get("created")?.as_str()?;
                    chrono::DateTime::parse_from_str(created, "%Y-%m-%dT%H:%M:%S%.3f%z")
                        .ok()
                        .map(|t| t.timestamp_millis())
                }
            }
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_change_uses_our_source_time_and_jiras_created_otherwise() {
        let issue = json!({"changelog": {"histories": [
            {"created": "2026-01-01T10:00:00.000+0000", "items": [{"field": "summary", "fieldId": "summary"}]},
            {"created": "2026-01-01T12:00:00.000+0000", "items": [{"field": "summary", "fieldId": "summary"}],
             "historyMetadata": {"type": "sfjira", "extraData": {"source_time": "1000"}}},
            {"created": "2026-01-01T11:00:00.000+0000", "items": [{"field": "status", "fieldId": "status"}]},
        ]}});
        let ten = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(last_changed(&issue, "summary", "sfjira"), Some(ten));
        assert!(last_changed(&issue, "status", "sfjira").unwrap() > ten);
        assert_eq!(last_changed(&issue, "duedate", "sfjira"), None);
    }
}
