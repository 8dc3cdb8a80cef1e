//! `sfjira backfill …`: initial loads and re-syncs. The logic lives in the source services'
//! libraries; this module only turns arguments into their calls.

use std::process::ExitCode;
use std::time::Duration;

use sfjira_core::config::SfjiraConfig;
use sfjira_jira_source::backfill::{Backfill, parse_since};

/// `sfjira backfill jira`.
#[derive(clap::Args)]
pub struct JiraArgs {
    /// The Jira project key to load.
    #[arg(long)]
    pub project: String,
    /// Only issues updated at or after this time: RFC 3339 (2026-01-31T00:00:00Z) or an age
    /// (30m, 12h, 2d, 1w). Default: all of the project's issues.
    #[arg(long)]
    pub since: Option<String>,
    /// Ignore the committed resume position and start over.
    #[arg(long)]
    pub restart: bool,
}

/// Runs (or resumes) the Jira backfill of one project; see `sfjira_jira_source::backfill`.
pub async fn jira(cfg: &SfjiraConfig, args: JiraArgs) -> anyhow::Result<ExitCode> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, chrono::Utc::now().timestamp_millis()))
        .transpose()?;
    let backfill = Backfill::connect(cfg, &args.project, since, Duration::from_secs(60)).await?;
    let report = backfill.run(args.restart, None).await?;
    if report.already_done {
        println!(
            "backfill of {} already finished; use --restart to run it again",
            args.project
        );
    } else {
        println!(
            "backfill of {}: {} ({} pages, {} issues read, {} records published{})",
            args.project,
            if report.done { "done" } else { "stopped" },
            report.pages,
            report.issues,
            report.published,
            if report.resumed { ", resumed" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
