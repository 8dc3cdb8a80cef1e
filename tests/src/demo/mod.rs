//! The demo scenario (`make demo`) and what it reports, shared with the end-to-end tests so the
//! story a user watches is the one CI checks.

pub mod corpus;
pub mod people;
pub mod scenario;
pub mod stack;
pub mod summary;

pub use people::{Engineer, SalesUser};
pub use scenario::{Outcome, Progress, Scenario};
pub use stack::Deployment;
pub use summary::Summary;
