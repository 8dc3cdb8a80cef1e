//! `sfjira-salesforce-source`: publishes Salesforce Change Data Capture to Kafka, inside the
//! frame every service shares ([`sfjira_core::service`]); the open Kafka transaction is aborted
//! on the way out (the next start resumes after the last committed position).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sfjira_salesforce_source::runtime;

#[derive(Parser)]
#[command(
    name = "sfjira-salesforce-source",
    version,
    about = "Publishes Salesforce Change Data Capture to Kafka, exactly once."
)]
struct Args {
    /// The deployment configuration; its `salesforce_source` section names the org and channels.
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
        "sfjira-salesforce-source",
        &args.config,
        "salesforce_source",
        |c| c.salesforce_source.is_some(),
        |cfg, shutdown| async move {
            tracing::info!("salesforce-source running");
            let result = runtime::run(&cfg, shutdown).await;
            tracing::info!("stopped");
            result
        },
    )
    .await
}
