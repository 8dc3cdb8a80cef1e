//! Jira Cloud admin webhooks (jira-api.md §5, https://developer.atlassian.com/cloud/jira/platform/webhooks/):
//! registrations ([`registry`]), the event envelopes ([`payload`]), their HMAC signature
//! ([`sign`]), and at-least-once, unordered delivery with retries and injectable faults
//! ([`deliver`]). J1's site model calls [`deliver::WebhookDispatcher::dispatch`] after each
//! change.

pub mod deliver;
pub mod payload;
pub mod registry;
pub mod sign;

pub use deliver::{
    DeliveryConfig, DeliveryFaults, DeliveryRecord, Flow, WebhookDispatcher, WebhookEvent,
};
pub use registry::{WebhookConfig, WebhookRegistry, router};
