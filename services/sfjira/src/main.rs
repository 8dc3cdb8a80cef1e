//! `sfjira`: the operator CLI. `main` parses arguments and hands each command to its module.

mod backfill;
mod backfill_salesforce;
mod commands_out;
mod dlq;
mod doctor;
mod mapping;
mod mapping_live;
mod reconcile;
mod rollback;
mod status;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sfjira_core::config::{self, SfjiraConfig};

#[derive(Parser)]
#[command(
    name = "sfjira",
    version,
    about = "Operate sfjira: topics, dead letters, mappings, reconcile and rollback, diagnostics, the error catalog."
)]
struct Cli {
    /// The deployment configuration (YAML). Every key can be overridden by SFJIRA_<SECTION>__<KEY>.
    #[arg(
        long,
        short,
        global = true,
        env = "SFJIRA_CONFIG",
        default_value = "config/sfjira.yaml"
    )]
    config: PathBuf,
    /// How results are printed.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

/// Output format of commands that print records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Topics as code (infra/topics.yaml).
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Dead-letter topics: list, show and replay what failed.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// The pipeline at a glance: consumer lag, dead letters waiting, checkpoints and their age.
    Status {
        /// The topics file (which topics are sfjira's).
        #[arg(long, default_value = "infra/topics.yaml")]
        topics: PathBuf,
        /// Report on these consumer groups (repeatable); default: groups named sfjira* or
        /// starting with the deployment's topic prefix.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Report on every consumer group of the cluster.
        #[arg(long, conflicts_with = "groups")]
        all_groups: bool,
        /// A service's health endpoint, `name=url` (repeatable), e.g.
        /// `jira-sink=http://10.0.0.5:9400`: its readiness and headline gauges (API allocation
        /// used, limiter state, pauses) are shown too.
        #[arg(long = "service", env = "SFJIRA_STATUS_SERVICES", value_delimiter = ',',
              value_parser = status::services::parse_service)]
        services: Vec<(String, String)>,
    },
    /// Mappings: validate one, or preview the commands it makes from a record.
    Mapping {
        #[command(subcommand)]
        command: MappingCommand,
    },
    /// Initial loads and re-syncs from a source system (resumable).
    Backfill {
        #[command(subcommand)]
        target: BackfillTarget,
    },
    /// Undoes what the sinks wrote since a time: inverse commands built from sfjira.audit,
    /// produced (transactionally) to jira.commands / salesforce.commands and applied by the
    /// sinks. Exit 5 when something cannot be undone (nothing is produced unless --force).
    Rollback(rollback::RollbackArgs),
    /// Compares linked records (sfjira.links) field by field between Salesforce (SOQL) and Jira
    /// (JQL), as the mapping says they should match; prints the drift. Exit 4 when drift is
    /// found. --repair produces the commands that restore the owner's value.
    Reconcile(reconcile::ReconcileArgs),
    /// Checks Kafka and the registry, and proves an Avro record round trip through both.
    Doctor,
    /// Prints the error catalog: every code, whether it is retried, and what to do about it.
    Errors {
        /// As a Markdown table (docs/errors.md is generated this way).
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Subcommand)]
enum BackfillTarget {
    /// Loads a Jira project's issues into the canonical topics (origin POLL), page by page,
    /// each page committed with its resume position; an interrupted run resumes.
    Jira(backfill::JiraArgs),
    /// Loads an entity's existing records into salesforce.cdc.<Entity> as snapshot records
    /// (paged SOQL by SystemModstamp), each page committed with its resume position; an
    /// interrupted run resumes, --restart starts over.
    Salesforce(backfill_salesforce::SalesforceArgs),
}

#[derive(Subcommand)]
enum MappingCommand {
    /// Validates a mapping file; every problem is listed with file:line and a fix (exit 2).
    /// With --salesforce-url / --jira-url, also checks it against that org and site (objects,
    /// fields, external ids, restricted picklists, projects, issue types); credentials come
    /// from SFJIRA_CHECK_* environment variables (see docs/mapping.md).
    Check {
        #[arg(long, env = "SFJIRA_MAPPING", default_value = "config/mapping.yaml")]
        mapping: PathBuf,
        /// The org's instance URL (e.g. https://acme.my.salesforce.com, or the sandbox's).
        #[arg(long)]
        salesforce_url: Option<String>,
        /// The Jira site's URL (e.g. https://acme.atlassian.net, or the sandbox's).
        #[arg(long)]
        jira_url: Option<String>,
    },
    /// Runs the mapping on one source record (JSON file, or - for stdin) and prints the
    /// commands it would produce, or the error and code it would dead-letter with (exit 2).
    Preview {
        #[arg(long, env = "SFJIRA_MAPPING", default_value = "config/mapping.yaml")]
        mapping: PathBuf,
        /// The source record (see docs/mapping.md, "Previewing").
        record: PathBuf,
    },
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Creates missing topics, fixes their configs, reports drift it cannot fix (exit code 3).
    Apply {
        /// The topics file.
        #[arg(long, default_value = "infra/topics.yaml")]
        file: PathBuf,
        /// Only report what would change.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Errors { markdown } => {
            print_errors(markdown);
            ExitCode::SUCCESS
        }
        Command::Topics {
            command: TopicsCommand::Apply { file, dry_run },
        } => run(&cli.config, |cfg| async move {
            topics::apply(&cfg, &file, dry_run).await
        }),
        Command::Backfill {
            target: BackfillTarget::Jira(args),
        } => run(&cli.config, |cfg| async move {
            backfill::jira(&cfg, args).await
        }),
        Command::Backfill {
            target: BackfillTarget::Salesforce(args),
        } => run(&cli.config, |cfg| async move {
            backfill_salesforce::run(&cfg, args).await
        }),
        Command::Rollback(args) => {
            let output = cli.output;
            run(&cli.config, |cfg| async move {
                rollback::run(&cfg, args, output).await
            })
        }
        Command::Reconcile(args) => {
            let output = cli.output;
            run(&cli.config, |cfg| async move {
                reconcile::run(&cfg, args, output).await
            })
        }
        Command::Doctor => run(&cli.config, |cfg| async move { doctor::run(&cfg).await }),
        Command::Mapping {
            command:
                MappingCommand::Check {
                    mapping: path,
                    salesforce_url,
                    jira_url,
                },
        } => {
            let endpoints = mapping_live::Endpoints {
                salesforce_url,
                jira_url,
            };
            mapping::check(&path, &endpoints)
        }
        Command::Mapping {
            command:
                MappingCommand::Preview {
                    mapping: path,
                    record,
                },
        } => match mapping::preview(&path, &record, cli.output) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("sfjira: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Status {
            topics,
            groups,
            all_groups,
            services,
        } => {
            let output = cli.output;
            let groups = match (all_groups, groups.is_empty()) {
                (true, _) => status::Groups::All,
                (false, true) => status::Groups::Sfjira,
                (false, false) => status::Groups::Named(groups),
            };
            run(&cli.config, |cfg| async move {
                status::run(&cfg, &topics, groups, &services, output).await
            })
        }
        Command::Dlq { command } => {
            let output = cli.output;
            run(&cli.config, |cfg| async move {
                dlq::run(&cfg, command, output).await
            })
        }
    }
}

/// Loads the configuration, then runs `command` on a tokio runtime. Errors are printed with
/// their context chain; the exit code is the command's.
fn run<F, Fut>(path: &std::path::Path, command: F) -> ExitCode
where
    F: FnOnce(SfjiraConfig) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let cfg = match config::load(Some(path)) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("sfjira: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(command(cfg)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sfjira: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_errors(markdown: bool) {
    use sfjira_core::errors::{ErrorCode, catalog_markdown};
    if markdown {
        println!("# Error catalog\n");
        println!("Every error that can send a record to a dead-letter topic, as written in the");
        println!("`sfjira.error.code` header. Generated by `make errors-doc` from");
        println!("`services/core/src/errors.rs`; do not edit by hand.\n");
        print!("{}", catalog_markdown());
        return;
    }
    for c in ErrorCode::ALL {
        println!(
            "{}  {:<8} {:<12} {}\n          fix: {}",
            c.as_str(),
            c.domain().as_str(),
            if c.retryable() {
                "retried"
            } else {
                "not retried"
            },
            c.summary(),
            c.remediation()
        );
    }
}
