//! `sfjira-salesforce-sink`: will apply commands to Salesforce.
//!
//! Not built yet (tracked as issue #9). Until it is, the binary says so and exits
//! non-zero, so no deployment mistakes it for a running stage.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "sfjira-salesforce-sink is not implemented yet: it will apply commands to Salesforce (issue #9). Nothing was started."
    );
    ExitCode::from(2)
}
