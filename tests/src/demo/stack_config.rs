//! The configuration file of a [`super::Deployment`]: one `sfjira.yaml` with every service's
//! section, pointing at the deployment's own sandbox ports, topic prefix and consumer groups.

use std::path::Path;

pub(super) struct DeploymentPorts {
    pub sf: u16,
    pub pubsub: u16,
    pub jira: u16,
    pub webhook: u16,
}

/// The deployment's `sfjira.yaml`: every service's section on the sandbox's ports.
pub(super) fn deployment_yaml(
    p: &DeploymentPorts,
    bootstrap: &str,
    registry: &str,
    prefix: &str,
    id: &str,
    mapping: &Path,
) -> String {
    format!(
        r#"service: {{ instance_id: e2e-{id} }}
kafka: {{ bootstrap_servers: "{bootstrap}", topic_prefix: "{prefix}" }}
registry: {{ url: "{registry}" }}
telemetry: {{ log_level: info }}
transformer: {{ mapping: "{mapping}", group_id: "e2e-{id}-transformer" }}
salesforce_source:
  login_url: http://127.0.0.1:{sf}
  auth: {{ type: client_credentials, client_id: sfjira-sandbox-consumer-key, client_secret: {{ env: SFJIRA_SALESFORCE_CLIENT_SECRET }} }}
  pubsub_url: http://127.0.0.1:{pubsub}
  channels: [/data/AccountChangeEvent, /data/OpportunityChangeEvent, /data/TaskChangeEvent]
  start_from: earliest
  enrich_full_state: true
  batch_size: 100
jira_source:
  site_url: http://127.0.0.1:{jira}
  email: sfjira@example.com
  api_token: {{ env: SFJIRA_JIRA_API_TOKEN }}
  webhook_secret: {{ env: SFJIRA_JIRA_WEBHOOK_SECRET }}
  webhook_listen: 127.0.0.1:{webhook}
  projects: [PROJ]
  poll_interval_ms: 5000
jira_sink:
  site_url: http://127.0.0.1:{jira}
  email: sfjira@example.com
  api_token: {{ env: SFJIRA_JIRA_API_TOKEN }}
  group_id: e2e-{id}-jira-sink
  link_wait_ms: 5000
  reconcile_settle_ms: 2000
salesforce_sink:
  login_url: http://127.0.0.1:{sf}
  auth: {{ type: client_credentials, client_id: sfjira-sandbox-consumer-key, client_secret: {{ env: SFJIRA_SALESFORCE_CLIENT_SECRET }} }}
  group_id: e2e-{id}-salesforce-sink
"#,
        mapping = mapping.display(),
        sf = p.sf,
        pubsub = p.pubsub,
        jira = p.jira,
        webhook = p.webhook,
    )
}
