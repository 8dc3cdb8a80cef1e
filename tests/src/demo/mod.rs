//! The demo scenario (`make demo`) and what it reports, shared with the end-to-end tests so the
//! story a user watches is the one CI checks.

pub mod corpus;
pub mod on_call;
pub mod people;
pub mod scenario;
pub mod stack;
mod stack_config;
pub mod summary;

pub use people::{Engineer, SalesUser};
pub use scenario::{Outcome, Progress, Scenario};
pub use stack::Deployment;
pub use summary::Summary;

use std::time::{Duration, Instant};

/// Polls `check` every half second until it finds something or `max` has passed (the end-to-end
/// tests' one way of waiting for a state to arrive).
pub async fn wait_for<T, F, Fut>(max: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    while start.elapsed() < max {
        if let Some(v) = check().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}
