//! `sfjira-salesforce-sink`: applies `salesforce.commands` to Salesforce (issue #9), inside
//! the frame every service shares ([`sfjira_core::service`]); held batched commands are applied
//! and committed before it exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sfjira_salesforce_sink::runtime;

#[derive(Parser)]
#[command(
    name = "sfjira-salesforce-sink",
    version,
    about = "Applies salesforce.commands to a Salesforce org in sObject Collections batches."
)]
struct Args {
    /// The deployment configuration; its `salesforce_sink` section says which org.
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
        "sfjira-salesforce-sink",
        &args.config,
        "salesforce_sink",
        |c| c.salesforce_sink.is_some(),
        |cfg, shutdown| async move {
            let summary = runtime::run(&cfg, shutdown).await?;
            tracing::info!(?summary, "stopped");
            Ok(())
        },
    )
    .await
}
