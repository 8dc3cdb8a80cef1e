//! `sfjira-jira-sink`: applies `jira.commands` to Jira (issue #8), inside the frame every
//! service shares ([`sfjira_core::service`]); the batch in hand is committed before it exits.
//! A `kill -9` loses and duplicates nothing: see docs/jira-sink.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sfjira_jira_sink::service;

#[derive(Parser)]
#[command(
    name = "sfjira-jira-sink",
    version,
    about = "Applies jira.commands to Jira without duplicates."
)]
struct Args {
    /// The deployment configuration; its `jira_sink` section says where Jira is.
    #[arg(
        long,
        short,
        env = "SFJIRA_CONFIG",
        default_value = "config/sfjira.yaml"
    )]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    sfjira_core::service::run(
        "sfjira-jira-sink",
        &args.config,
        "jira_sink",
        |c| c.jira_sink.is_some(),
        |cfg, shutdown| async move {
            let runtime = service::build(&cfg).await?;
            tracing::info!("jira-sink running");
            let summary = runtime.run(shutdown).await?;
            tracing::info!(
                batches = summary.batches,
                commands = summary.commands,
                "stopped"
            );
            Ok(())
        },
    )
    .await
}
