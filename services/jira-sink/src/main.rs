//! `sfjira-jira-sink`: will apply commands to Jira.
//!
//! Not built yet (tracked as issue #8). Until it is, the binary says so and exits
//! non-zero, so no deployment mistakes it for a running stage.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "sfjira-jira-sink is not implemented yet: it will apply commands to Jira (issue #8). Nothing was started."
    );
    ExitCode::from(2)
}
