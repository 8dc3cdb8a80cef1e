//! `sfjira-jira-source`: will publish Jira webhooks and JQL polls to Kafka.
//!
//! Not built yet (tracked as issue #6). Until it is, the binary says so and exits
//! non-zero, so no deployment mistakes it for a running stage.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "sfjira-jira-source is not implemented yet: it will publish Jira webhooks and JQL polls to Kafka (issue #6). Nothing was started."
    );
    ExitCode::from(2)
}
