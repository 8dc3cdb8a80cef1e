//! `sfjira topics apply`: make the cluster match `infra/topics.yaml` (see
//! `sfjira_core::topics` for what is fixed and what is only reported).

use std::path::Path;
use std::process::ExitCode;

use sfjira_core::config::SfjiraConfig;
use sfjira_core::kafka::client_config;
use sfjira_core::topics::{self, TopicAction};

/// Exit code when the cluster differs from the file in a way `apply` does not fix.
const DRIFT_EXIT: u8 = 3;

pub async fn apply(cfg: &SfjiraConfig, file: &Path, dry_run: bool) -> anyhow::Result<ExitCode> {
    let specs = topics::load(file, &cfg.kafka.topic_prefix)?;
    let actions = topics::apply(&client_config(&cfg.kafka), &specs, dry_run).await?;
    let mut drift = 0;
    for action in &actions {
        if matches!(action, TopicAction::Drift { .. }) {
            drift += 1;
        }
        println!("{}{action}", if dry_run { "(dry run) " } else { "" });
    }
    println!(
        "{} topics declared in {}; {drift} with drift",
        specs.len(),
        file.display()
    );
    Ok(if drift > 0 {
        ExitCode::from(DRIFT_EXIT)
    } else {
        ExitCode::SUCCESS
    })
}
