//! `sfjira-salesforce-source`: will publish Salesforce Change Data Capture to Kafka.
//!
//! Not built yet (tracked as issue #5). Until it is, the binary says so and exits
//! non-zero, so no deployment mistakes it for a running stage.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "sfjira-salesforce-source is not implemented yet: it will publish Salesforce Change Data Capture to Kafka (issue #5). Nothing was started."
    );
    ExitCode::from(2)
}
