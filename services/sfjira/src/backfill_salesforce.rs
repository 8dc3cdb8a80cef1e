//! `sfjira backfill salesforce`: the initial load / re-sync of one Salesforce entity into
//! `salesforce.cdc.<Entity>` as snapshot records. The logic (paged SOQL, one Kafka transaction
//! per page with its resume position, throttling) is `sfjira_salesforce_source::backfill`;
//! this module only turns arguments into its call.

use std::process::ExitCode;

use sfjira_core::config::SfjiraConfig;
use sfjira_salesforce_source::backfill::{self, Options};

/// `sfjira backfill salesforce`.
#[derive(clap::Args)]
pub struct SalesforceArgs {
    /// The object API name to load (Opportunity, Account, Escalation__c).
    #[arg(long)]
    pub entity: String,
    /// Only records with SystemModstamp at or after this time: RFC 3339
    /// (2026-01-31T00:00:00Z), a date, or an age (90s, 30m, 12h, 2d, 1w). Default: all.
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many records per second (default: as fast as Salesforce answers).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Records per query page (Salesforce clamps to 200–2000); each page is one Kafka
    /// transaction.
    #[arg(long, default_value_t = 2000)]
    pub page_size: usize,
    /// Stop (resumably) once the org has used more than this share (0–1) of its daily API
    /// requests. Default: salesforce_source.backfill_max_api_share (0.5).
    #[arg(long)]
    pub max_api_share: Option<f64>,
    /// Ignore the committed resume position and start over.
    #[arg(long)]
    pub restart: bool,
}

/// Runs (or resumes) the backfill of one entity.
pub async fn run(cfg: &SfjiraConfig, args: SalesforceArgs) -> anyhow::Result<ExitCode> {
    let since = args
        .since
        .as_deref()
        .map(|s| backfill::parse_since(s, chrono::Utc::now()))
        .transpose()?;
    let opts = Options {
        since,
        rate: args.rate,
        restart: args.restart,
        page_size: args.page_size,
        max_api_share: args.max_api_share,
        ..Options::new(&args.entity)
    };
    let r = backfill::run(cfg, &opts).await?;
    if r.done && r.pages == 0 {
        println!(
            "backfill of {} already finished; use --restart to run it again",
            r.entity
        );
    } else {
        println!(
            "backfill of {} into {}: {} ({} pages, {} records published{})",
            r.entity,
            r.topic,
            if r.done { "done" } else { "stopped" },
            r.pages,
            r.records,
            if r.resumed { ", resumed" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
