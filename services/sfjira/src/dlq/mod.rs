//! `sfjira dlq list|show|replay`: the dead-letter topics from an operator's chair.
//!
//! - [`backlog`]: what is waiting in each `<stage>.dlq`, and the replay checkpoint that says
//!   what was already put back.
//! - [`replay`]: putting records back, transactionally, once.
//! - `filter.rs`: which records a command applies to (stage, code, key, time range, count).
//! - `render.rs`: tables for people, JSON for scripts.

pub(crate) mod backlog;
mod filter;
mod render;
mod replay;

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use sfjira_core::avro::AvroCodec;
use sfjira_core::config::SfjiraConfig;

use crate::Output;
use backlog::{DlqEntry, STAGES};
use filter::Filter;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Lists dead-lettered records not yet replayed: stage, position, age, code, key, message.
    List {
        #[command(flatten)]
        filter: Filter,
    },
    /// Shows one record: every header and the value (decoded through the registry when Avro).
    Show(ShowArgs),
    /// Puts the selected records back on the topic they failed from (transactionally, once).
    Replay(ReplayArgs),
}

#[derive(Args)]
pub struct ShowArgs {
    /// The stage whose DLQ holds the record.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(STAGES))]
    stage: String,
    #[arg(long, default_value_t = 0)]
    partition: i32,
    #[arg(long)]
    offset: i64,
}

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    filter: Filter,
    /// Send the records to this topic instead of the one each failed from.
    #[arg(long)]
    to_topic: Option<String>,
    /// At most this many records per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Only print what would be replayed.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(
    cfg: &SfjiraConfig,
    command: DlqCommand,
    output: Output,
) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::List { filter } => {
            let mut selected = Vec::new();
            for stage in filter.stages() {
                let (entries, _) = backlog::load(cfg, stage).await?;
                selected.extend(filter.apply(entries));
            }
            filter.truncate(&mut selected);
            render::list(&selected, output);
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Show(args) => show(cfg, args, output).await,
        DlqCommand::Replay(args) => replay(cfg, args, output).await,
    }
}

async fn show(cfg: &SfjiraConfig, args: ShowArgs, output: Output) -> anyhow::Result<ExitCode> {
    let (entries, _) = backlog::load(cfg, &args.stage).await?;
    let Some(entry) = entries
        .into_iter()
        .find(|e| e.partition == args.partition && e.offset == args.offset)
    else {
        bail!(
            "no pending record at partition {} offset {} of the {} DLQ (already replayed, or never there: see `sfjira dlq list --stage {}`)",
            args.partition,
            args.offset,
            args.stage,
            args.stage
        );
    };
    let codec = AvroCodec::new(&cfg.registry)?;
    let value = render::decode_value(&codec, &entry).await;
    render::show(&entry, &value, output);
    Ok(ExitCode::SUCCESS)
}

async fn replay(cfg: &SfjiraConfig, args: ReplayArgs, output: Output) -> anyhow::Result<ExitCode> {
    let mut total = 0;
    for stage in args.filter.stages() {
        let (entries, checkpoint) = backlog::load(cfg, stage).await?;
        let backlog_offsets = offsets(&entries);
        let mut selected: Vec<&DlqEntry> = args.filter.apply_ref(&entries);
        args.filter.truncate(&mut selected);
        if selected.is_empty() {
            continue;
        }
        if args.dry_run {
            println!(
                "(dry run) would replay {} record(s) from the {stage} DLQ:",
                selected.len()
            );
            render::list_refs(&selected, output);
            continue;
        }
        let dlq_topic = selected[0].dlq_topic.clone();
        let plan = replay::ReplayPlan {
            dlq_topic: &dlq_topic,
            entries: selected,
            backlog: backlog_offsets,
            checkpoint,
            to_topic: args.to_topic.clone(),
            rate: args.rate,
        };
        let n = replay::run(cfg, plan).await?;
        println!("replayed {n} record(s) from {dlq_topic}");
        total += n;
    }
    if !args.dry_run {
        println!("{total} record(s) replayed in all");
    }
    Ok(ExitCode::SUCCESS)
}

fn offsets(entries: &[DlqEntry]) -> BTreeMap<i32, BTreeSet<i64>> {
    let mut out: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for e in entries {
        out.entry(e.partition).or_default().insert(e.offset);
    }
    out
}
