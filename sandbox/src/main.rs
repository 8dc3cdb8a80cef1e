//! `sfjira-sandbox`: runs the Salesforce and/or the Jira stand-in until interrupted.
//! `main` only parses arguments and starts the enabled halves; each half lives in its module.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::{jira, salesforce};

#[derive(Parser, Debug)]
#[command(
    name = "sfjira-sandbox",
    version,
    about = "Offline stand-ins for a Salesforce org and a Jira Cloud site."
)]
struct Args {
    /// Serve the Salesforce org (OAuth, REST, Pub/Sub API).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    salesforce: bool,
    /// Serve the Jira Cloud site (REST v3, webhooks).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    jira: bool,
    /// Salesforce HTTPS/HTTP listener (OAuth + REST + admin).
    #[arg(
        long,
        env = "SFJIRA_SANDBOX_SALESFORCE_LISTEN",
        default_value = "127.0.0.1:18443"
    )]
    salesforce_listen: SocketAddr,
    /// Salesforce Pub/Sub API (gRPC) listener.
    #[arg(
        long,
        env = "SFJIRA_SANDBOX_PUBSUB_LISTEN",
        default_value = "127.0.0.1:17443"
    )]
    pubsub_listen: SocketAddr,
    /// Jira listener (REST v3 + admin).
    #[arg(
        long,
        env = "SFJIRA_SANDBOX_JIRA_LISTEN",
        default_value = "127.0.0.1:18080"
    )]
    jira_listen: SocketAddr,
    /// Sandbox seconds per wall second (tests use e.g. 60 to expire hour-long tokens in a minute).
    #[arg(long, env = "SFJIRA_SANDBOX_TIME_SCALE", default_value_t = 1.0)]
    time_scale: f64,
    /// Serve the Salesforce listeners (OAuth/REST/admin and Pub/Sub gRPC) over TLS with a
    /// certificate generated at start, and write its CA certificate (PEM) to this file for
    /// clients to trust. Same as `salesforce.tls.ca_pem_path` in the config file.
    #[arg(long, env = "SFJIRA_SANDBOX_TLS_CA_OUT", value_name = "PATH")]
    tls_ca_out: Option<std::path::PathBuf>,
    /// Optional YAML file with the sandbox's settings (users, credentials, faults, snapshots).
    #[arg(long, env = "SFJIRA_SANDBOX_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if !(args.time_scale > 0.0 && args.time_scale.is_finite()) {
        eprintln!(
            "sfjira-sandbox: --time-scale must be a positive number, got {}",
            args.time_scale
        );
        return ExitCode::from(2);
    }
    if !args.salesforce && !args.jira {
        eprintln!(
            "sfjira-sandbox: both halves are switched off (--salesforce false --jira false); nothing to serve"
        );
        return ExitCode::from(2);
    }
    let clock = SandboxClock::new(args.time_scale);
    let mut tasks = tokio::task::JoinSet::new();
    if args.salesforce {
        let opts = salesforce::Options {
            listen: args.salesforce_listen,
            pubsub_listen: args.pubsub_listen,
            config: args.config.clone(),
            tls_ca_out: args.tls_ca_out.clone(),
        };
        let clock = clock.clone();
        tasks.spawn(async move {
            salesforce::run(opts, clock)
                .await
                .map_err(|e| e.context("salesforce sandbox"))
        });
    }
    if args.jira {
        let opts = jira::Options {
            listen: args.jira_listen,
            config: args.config.clone(),
        };
        let clock = clock.clone();
        tasks.spawn(async move {
            jira::run(opts, clock)
                .await
                .map_err(|e| e.context("jira sandbox"))
        });
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        Some(done) = tasks.join_next() => match done {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("sfjira-sandbox: {e:#}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("sfjira-sandbox: a half crashed: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
