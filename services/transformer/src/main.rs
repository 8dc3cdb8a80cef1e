//! `sfjira-transformer`: will turn source records into commands through the mapping.
//!
//! Not built yet (tracked as issue #7). Until it is, the binary says so and exits
//! non-zero, so no deployment mistakes it for a running stage.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "sfjira-transformer is not implemented yet: it will turn source records into commands through the mapping (issue #7). Nothing was started."
    );
    ExitCode::from(2)
}
