//! `sfjira-demo`: plays the demo scenario against the running sandbox and services (started by
//! `make demo`), with a live progress line, then prints what flowed. Exit code 1 when a step's
//! effect did not appear in time (the message names the hop to look at).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sfjira_core::config;
use sfjira_core::kafka::client_config;
use sfjira_tests::demo::scenario::Operator;
use sfjira_tests::demo::{Engineer, Progress, SalesUser, Scenario, Summary};

#[derive(Parser)]
#[command(
    name = "sfjira-demo",
    about = "Plays the sfjira demo scenario and summarises what flowed"
)]
struct Args {
    /// The deployment configuration the services run with (Kafka, topic prefix).
    #[arg(long, default_value = "config/sfjira.yaml")]
    config: PathBuf,
    /// The topics declaration, for the summary.
    #[arg(long, default_value = "infra/topics.yaml")]
    topics: PathBuf,
    /// The Salesforce sandbox.
    #[arg(long, default_value = "http://127.0.0.1:18443")]
    salesforce_url: String,
    /// The Jira sandbox.
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    jira_url: String,
    /// Seconds one step may take to show its effect.
    #[arg(long, default_value_t = 90)]
    step_timeout: u64,
    /// Only print the summary of what has flowed so far.
    #[arg(long)]
    summary_only: bool,
}

/// One line, rewritten in place on a terminal; plain lines otherwise (CI logs).
struct Line {
    tty: bool,
}

impl Progress for Line {
    fn step(&mut self, n: usize, total: usize, what: &str) {
        self.print(&format!("[{n}/{total}] {what}"), true);
    }
    fn waiting(&mut self, what: &str, elapsed: Duration) {
        if self.tty {
            self.print(
                &format!("      … {what} ({:.1} s)", elapsed.as_secs_f64()),
                false,
            );
        }
    }
    fn done(&mut self, what: &str, took: Duration) {
        self.print(
            &format!("      ✓ {what} ({:.1} s)", took.as_secs_f64()),
            true,
        );
    }
}

impl Line {
    fn print(&mut self, text: &str, keep: bool) {
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{text}");
            if keep {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match config::load(Some(&args.config)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sfjira-demo: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.summary_only {
        let scenario = Scenario {
            sales: SalesUser::new(&args.salesforce_url, "Alice"),
            engineer: Engineer::new(&args.jira_url, "bob@example.com"),
            step_timeout: Duration::from_secs(args.step_timeout),
            tag: chrono::Utc::now().format("%H%M%S").to_string(),
            settle: Duration::from_secs(3),
            operator: Operator {
                sfjira: std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(|d| d.join("sfjira")))
                    .unwrap_or_else(|| "target/debug/sfjira".into()),
                config: args.config.clone(),
                env: Vec::new(),
                kafka: client_config(&cfg.kafka),
                topic_prefix: cfg.kafka.topic_prefix.clone(),
            },
        };
        let mut line = Line {
            tty: std::io::stderr().is_terminal(),
        };
        match scenario.play(&mut line).await {
            Ok(out) => eprintln!(
                "\nScenario complete: account {} → epic {}, opportunity {} → story {}.",
                out.account_id, out.epic_key, out.opportunity_id, out.story_key
            ),
            Err(e) => {
                eprintln!("\nsfjira-demo: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    let base = client_config(&cfg.kafka);
    let prefix = cfg.kafka.topic_prefix.clone();
    let topics = args.topics.clone();
    match tokio::task::spawn_blocking(move || Summary::gather(&base, &topics, &prefix)).await {
        Ok(Ok(summary)) => {
            println!("\n{}", summary.render());
            println!(
                "Metrics: http://127.0.0.1:9401/metrics … :9405/metrics (one port per service, .run/demo/*.log)"
            );
            println!(
                "Traces:  export OTEL_EXPORTER_OTLP_ENDPOINT=http://<collector>:4318 before `make demo`"
            );
            println!(
                "Inspect: source infra/demo/env.sh (topic prefix, demo secrets); target/debug/sfjira status; target/debug/sfjira dlq list"
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("sfjira-demo: summary: {e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sfjira-demo: summary: {e}");
            ExitCode::FAILURE
        }
    }
}
