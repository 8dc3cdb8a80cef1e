# shellcheck shell=bash
# What `make demo` shares between its scripts: where the demo's processes keep their PID files
# and logs, which ports the services' health endpoints use, and the sandbox's demo credentials
# in the variables config/sfjira.yaml names for its secrets. The credentials are the sandbox's
# published defaults (sandbox/README.md), not secrets of any real system.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DEMO_RUN="$SFJIRA_RUN_DIR/demo"
DEMO_CONFIG="${SFJIRA_DEMO_CONFIG:-$SFJIRA_ROOT/config/sfjira.yaml}"
DEMO_SANDBOX_CONFIG="$SFJIRA_ROOT/config/sandbox.yaml"
DEMO_BIN="$SFJIRA_ROOT/target/debug"

# Each fresh demo (a sandbox started empty) gets topics of its own, named with a prefix kept in
# $DEMO_RUN/topic_prefix: checkpoints, links and commands left in Kafka by an earlier demo would
# otherwise point at records and replay ids the new sandbox never had.
if [ -f "$DEMO_RUN/topic_prefix" ]; then
  export SFJIRA_KAFKA__TOPIC_PREFIX="$(cat "$DEMO_RUN/topic_prefix")"
fi

export SFJIRA_SALESFORCE_CLIENT_SECRET=sfjira-sandbox-consumer-secret
export SFJIRA_JIRA_API_TOKEN=sandbox-token
export SFJIRA_JIRA_WEBHOOK_SECRET=sfjira-demo-webhook-secret

# name:binary:health port — started in this order (the sinks first, so no command waits).
DEMO_SERVICES=(
  "jira-sink:sfjira-jira-sink:9401"
  "salesforce-sink:sfjira-salesforce-sink:9402"
  "transformer:sfjira-transformer:9403"
  "jira-source:sfjira-jira-source:9404"
  "salesforce-source:sfjira-salesforce-source:9405"
)

# SFJIRA_DEMO_SERVICES="transformer jira-sink" limits the demo to those services (e.g. to run
# one from your IDE instead).
if [ -n "${SFJIRA_DEMO_SERVICES:-}" ]; then
  only=()
  for entry in "${DEMO_SERVICES[@]}"; do
    [[ " $SFJIRA_DEMO_SERVICES " == *" ${entry%%:*} "* ]] && only+=("$entry")
  done
  DEMO_SERVICES=("${only[@]}")
fi

# `sfjira status` asks each demo service for its readiness and headline gauges.
SFJIRA_STATUS_SERVICES="$(for e in "${DEMO_SERVICES[@]}"; do IFS=: read -r n _ p <<<"$e"; printf '%s=http://127.0.0.1:%s,' "$n" "$p"; done)"
export SFJIRA_STATUS_SERVICES="${SFJIRA_STATUS_SERVICES%,}"
