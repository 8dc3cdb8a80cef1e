//! `sfjira-transformer`: will consume the source topics, apply the mapping, and produce commands
//! in Kafka transactions.
//!
//! The mapping language and engine exist (this crate's library; try them with
//! `sfjira mapping check|preview`); the Kafka runtime does not yet (issue #7). Until it does, the
//! binary says so and exits non-zero, so no deployment mistakes it for a running stage.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "sfjira-transformer is not implemented yet: the mapping engine is ready (try `sfjira mapping preview`), \
         the Kafka runtime is not (issue #7). Nothing was started."
    );
    ExitCode::from(2)
}
