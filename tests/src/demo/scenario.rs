//! The demo's story, played against running services: a sales user wins a deal in Salesforce,
//! an epic and a story appear in Jira, an engineer works on the story, and the work flows back
//! to the opportunity — then a sales note travels the other way. Each step acts like a person
//! would and then waits for the connector's effect in the other system, so a step that does not
//! complete names exactly which hop of the pipeline to look at.
//!
//! `make demo` plays it with a live progress line; the end-to-end test plays it and then checks
//! the final state of both sandboxes field by field.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Headers, Message};
use serde_json::{Value, json};

use super::people::{Engineer, SalesUser, adf_text};

/// Jira's field id of "Salesforce ID" on the sandbox site (sandbox/README.md).
pub const SALESFORCE_ID_FIELD: &str = "customfield_10050";
/// The sandbox workflow's `Start Progress` transition (To Do → In Progress).
const START_PROGRESS: &str = "11";

/// Reports what the scenario is doing (a terminal line, a test log).
pub trait Progress {
    /// A step started: `n` of `total`.
    fn step(&mut self, n: usize, total: usize, what: &str);
    /// Still waiting for the current step's effect.
    fn waiting(&mut self, what: &str, elapsed: Duration);
    /// The step's effect was seen after `took`.
    fn done(&mut self, what: &str, took: Duration);
}

/// What the scenario created, for the summary and the assertions.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub account_id: String,
    pub opportunity_id: String,
    pub epic_key: String,
    pub story_key: String,
    pub comment_id: String,
    pub worklog_id: String,
    pub sales_note_id: String,
    /// The opportunity won under a non-customer account: dead-lettered, then replayed.
    pub replayed_opportunity_id: String,
    pub replayed_story_key: String,
    /// Each step and how long its effect took to show on the other side.
    pub steps: Vec<(String, Duration)>,
}

/// The scenario's cast and pace.
pub struct Scenario {
    pub sales: SalesUser,
    pub engineer: Engineer,
    /// How long one step may take to show its effect before the scenario fails.
    pub step_timeout: Duration,
    /// Makes names unique, so the scenario can be played again on the same sandboxes.
    pub tag: String,
    /// How long to let the pipeline settle before checking that nothing echoed back (an echo
    /// would arrive a hop later than the write that caused it).
    pub settle: Duration,
    /// The operator's side: where the DLQ is and how to run `sfjira`.
    pub operator: Operator,
}

/// What the operator uses in the scenario's dead-letter step.
pub struct Operator {
    /// The `sfjira` binary and the deployment's configuration file.
    pub sfjira: PathBuf,
    pub config: PathBuf,
    /// Extra environment for `sfjira` (the secrets the configuration names).
    pub env: Vec<(String, String)>,
    /// Kafka, and the deployment's topic prefix, to watch the DLQ.
    pub kafka: ClientConfig,
    pub topic_prefix: String,
}

const STEPS: usize = 8;

impl Scenario {
    /// Plays every step in order; stops at the first effect that does not appear in time.
    pub async fn play(&self, progress: &mut dyn Progress) -> anyhow::Result<Outcome> {
        let mut out = Outcome::default();
        let mut steps = Vec::new();
        let account_name = format!("Acme {}", self.tag);

        progress.step(1, STEPS, "sales: a new customer account");
        out.account_id = self
            .sales
            .create("Account", json!({"Name": account_name, "Type": "Customer"}))
            .await?;
        let epic = self
            .wait(
                progress,
                &mut steps,
                "Jira: an epic for the account",
                || self.issue_for(&out.account_id, "Epic"),
            )
            .await?;
        out.epic_key = key_of(&epic);

        progress.step(2, STEPS, "sales: an opportunity is won");
        out.opportunity_id = self
            .sales
            .create(
                "Opportunity",
                json!({"Name": format!("{account_name} platform deal"), "AccountId": out.account_id,
                       "StageName": "Prospecting", "Amount": 250000.0, "CloseDate": "2026-12-31",
                       "Description": "Platform roll-out for 2 000 seats."}),
            )
            .await?;
        for stage in ["Negotiation/Review", "Closed Won"] {
            self.sales
                .update(
                    "Opportunity",
                    &out.opportunity_id,
                    json!({"StageName": stage}),
                )
                .await?;
        }
        let story = self
            .wait(progress, &mut steps, "Jira: a story under the epic", || {
                self.issue_for(&out.opportunity_id, "Story")
            })
            .await?;
        out.story_key = key_of(&story);
        if story["fields"]["parent"]["key"] != json!(out.epic_key) {
            bail!(
                "story {} is not under epic {}: parent is {}",
                out.story_key,
                out.epic_key,
                story["fields"]["parent"]
            );
        }

        progress.step(3, STEPS, "engineer: starts work on the story");
        self.engineer
            .transition(&out.story_key, START_PROGRESS)
            .await?;
        let opp = out.opportunity_id.clone();
        self.wait(
            progress,
            &mut steps,
            "Salesforce: the opportunity shows the delivery status (batched flow)",
            || self.opportunity_with_status(&opp, "In Progress"),
        )
        .await?;

        progress.step(4, STEPS, "engineer: comments on the story");
        out.comment_id = self
            .engineer
            .comment(&out.story_key, "Kick-off done; SSO is the first milestone.")
            .await?;
        let external = format!("comment:{}", out.comment_id);
        self.wait(
            progress,
            &mut steps,
            "Salesforce: a task from the comment",
            || self.task_with(&external, &opp),
        )
        .await?;

        progress.step(5, STEPS, "engineer: logs two hours of work");
        out.worklog_id = self
            .engineer
            .log_work(&out.story_key, 7200, "Pairing on the SSO design.")
            .await?;
        let external = format!("worklog:{}", out.worklog_id);
        self.wait(
            progress,
            &mut steps,
            "Salesforce: a task from the worklog",
            || self.task_with(&external, &opp),
        )
        .await?;

        progress.step(6, STEPS, "sales: a note on the opportunity");
        let subject = format!("Customer call {}", self.tag);
        out.sales_note_id = self
            .sales
            .create(
                "Task",
                json!({"Subject": subject, "Description": "They need SAML, not OIDC.",
                       "WhatId": out.opportunity_id, "Status": "Completed"}),
            )
            .await?;
        let story_key = out.story_key.clone();
        self.wait(
            progress,
            &mut steps,
            "Jira: the note as a comment on the story",
            || self.comment_containing(&story_key, &subject),
        )
        .await?;

        progress.step(
            7,
            STEPS,
            "a bad record: a deal won for an account that is no customer",
        );
        self.dead_letter_and_replay(progress, &mut steps, &mut out)
            .await?;

        progress.step(8, STEPS, "no echoes: our own writes did not come back");
        tokio::time::sleep(self.settle).await;
        self.no_echoes(&out).await?;
        out.steps = steps;
        Ok(out)
    }

    /// The story of an opportunity whose account has no epic cannot be placed: jira-sink waits
    /// for the parent, then dead-letters it (`SFJ-8009`). Sales fixes the account (it is a
    /// customer after all), its epic appears, and the operator replays the dead letter.
    async fn dead_letter_and_replay(
        &self,
        progress: &mut dyn Progress,
        steps: &mut Vec<(String, Duration)>,
        out: &mut Outcome,
    ) -> anyhow::Result<()> {
        let name = format!("Globex {}", self.tag);
        let account = self
            .sales
            .create("Account", json!({"Name": name, "Type": "Prospect"}))
            .await?;
        let opp = self
            .sales
            .create(
                "Opportunity",
                json!({"Name": format!("{name} pilot"), "AccountId": account, "StageName": "Closed Won",
                       "Amount": 300000.0, "CloseDate": "2026-12-31"}),
            )
            .await?;
        let reference = format!("salesforce:Opportunity:{opp}");
        self.wait(
            progress,
            steps,
            "jira-sink.dlq: the story, SFJ-8009 (no epic to put it under)",
            || self.dead_letter(&reference, "SFJ-8009"),
        )
        .await?;
        self.sales
            .update("Account", &account, json!({"Type": "Customer"}))
            .await?;
        let epic = self
            .wait(progress, steps, "Jira: the fixed account's epic", || {
                self.issue_for(&account, "Epic")
            })
            .await?;
        self.replay(&reference).await?;
        let story = self
            .wait(progress, steps, "Jira: the replayed story under it", || {
                self.issue_for(&opp, "Story")
            })
            .await?;
        if story["fields"]["parent"]["key"] != epic["key"] {
            bail!(
                "replayed story {} is not under epic {}",
                story["key"],
                epic["key"]
            );
        }
        out.replayed_opportunity_id = opp;
        out.replayed_story_key = key_of(&story);
        Ok(())
    }

    /// The jira-sink dead letter keyed `reference` with `code`, if it is there.
    async fn dead_letter(&self, reference: &str, code: &str) -> anyhow::Result<Option<()>> {
        let base = self.operator.kafka.clone();
        let topic = format!("{}jira-sink.dlq", self.operator.topic_prefix);
        let (reference, code) = (reference.to_string(), code.to_string());
        tokio::task::spawn_blocking(move || {
            let all = sfjira_core::kafka::read_to_end(&base, &topic, &BTreeMap::new())?;
            Ok(all
                .iter()
                .any(|m| {
                    m.key() == Some(reference.as_bytes())
                        && m.headers().is_some_and(|h| {
                            h.iter().any(|h| {
                                h.key == "sfjira.error.code" && h.value == Some(code.as_bytes())
                            })
                        })
                })
                .then_some(()))
        })
        .await?
    }

    /// `sfjira dlq replay --stage jira-sink --key <reference>`, as an operator runs it.
    async fn replay(&self, reference: &str) -> anyhow::Result<()> {
        let op = &self.operator;
        let out = tokio::process::Command::new(&op.sfjira)
            .arg("--config")
            .arg(&op.config)
            .args(["dlq", "replay", "--stage", "jira-sink", "--key", reference])
            .envs(op.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .with_context(|| format!("running {}", op.sfjira.display()))?;
        if !out.status.success() {
            bail!(
                "sfjira dlq replay failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Waits for `check` to find something, reporting progress; records how long it took.
    async fn wait<T, F, Fut>(
        &self,
        progress: &mut dyn Progress,
        steps: &mut Vec<(String, Duration)>,
        what: &str,
        mut check: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Option<T>>>,
    {
        let start = Instant::now();
        loop {
            if let Some(found) = check().await? {
                progress.done(what, start.elapsed());
                steps.push((what.to_string(), start.elapsed()));
                return Ok(found);
            }
            if start.elapsed() > self.step_timeout {
                bail!(
                    "{what}: not seen after {:?}. Check the services' logs (.run/demo/*.log), \
                     `sfjira status` and `sfjira dlq list`",
                    self.step_timeout
                );
            }
            progress.waiting(what, start.elapsed());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The Jira issue of type `issue_type` whose "Salesforce ID" is `sf_id`.
    async fn issue_for(&self, sf_id: &str, issue_type: &str) -> anyhow::Result<Option<Value>> {
        Ok(self.engineer.issues().await?.into_iter().find(|i| {
            i["fields"][SALESFORCE_ID_FIELD] == json!(sf_id)
                && i["fields"]["issuetype"]["name"] == json!(issue_type)
        }))
    }

    async fn opportunity_with_status(
        &self,
        id: &str,
        status: &str,
    ) -> anyhow::Result<Option<Value>> {
        Ok(self
            .sales
            .record("Opportunity", id)
            .await?
            .filter(|o| o["Delivery_Status__c"] == json!(status)))
    }

    /// The Task upserted under `external` (Jira_Comment_Id__c), attached to `what_id`.
    async fn task_with(&self, external: &str, what_id: &str) -> anyhow::Result<Option<Value>> {
        Ok(self
            .sales
            .records("Task")
            .await?
            .into_iter()
            .find(|t| t["Jira_Comment_Id__c"] == json!(external) && t["WhatId"] == json!(what_id)))
    }

    async fn comment_containing(&self, key: &str, text: &str) -> anyhow::Result<Option<Value>> {
        Ok(self
            .engineer
            .comments(key)
            .await?
            .into_iter()
            .find(|c| adf_text(&c["body"]).contains(text)))
    }

    /// The connector's own writes (the sales note's Jira comment, the tasks it created) must not
    /// have produced writes back: exactly one comment per note, one task per comment/worklog.
    async fn no_echoes(&self, out: &Outcome) -> anyhow::Result<()> {
        let comments = self.engineer.comments(&out.story_key).await?;
        if comments.len() != 2 {
            bail!(
                "story {} has {} comments, expected 2 (the engineer's and the sales note): an echo loop?",
                out.story_key,
                comments.len()
            );
        }
        let tasks: Vec<Value> = self
            .sales
            .records("Task")
            .await?
            .into_iter()
            .filter(|t| t["WhatId"] == json!(out.opportunity_id))
            .collect();
        if tasks.len() != 3 {
            bail!(
                "opportunity {} has {} tasks, expected 3 (comment, worklog, sales note): an echo loop?",
                out.opportunity_id,
                tasks.len()
            );
        }
        Ok(())
    }
}

fn key_of(issue: &Value) -> String {
    issue["key"].as_str().unwrap_or_default().to_string()
}
