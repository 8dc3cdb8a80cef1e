//! `sfjira-sandbox`: will stand in for a Salesforce org and a Jira Cloud site in tests and the
//! demo.
//!
//! Not built yet (issues #3 and #4). Until it is, the binary says so and exits non-zero.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("sfjira-sandbox is not implemented yet (issues #3, #4). Nothing was started.");
    ExitCode::from(2)
}
