# sfjira entry points. `make demo` and `make test` are all a fresh machine needs (README.md).
SHELL := /bin/bash
CARGO ?= cargo
CONFIG ?= config/sfjira.yaml

.PHONY: help infra-up infra-down test test-faults demo demo-down sandbox bench build lint fmt errors-doc clean-run

help:
	@echo "make demo        start Kafka, the registry, the sandbox and every service; play the demo scenario"
	@echo "make demo-down   stop everything make demo started (by PID)"
	@echo "make test        run every test against a real Kafka and registry (started and stopped for you)"
	@echo "make test-faults the end-to-end fault test alone (also in make test): kills, a broker restart, API faults"
	@echo "make sandbox     run the Salesforce and Jira stand-ins in the foreground (Ctrl-C stops them)"
	@echo "make bench       benchmarks, with figures against a baseline measured in the same run"
	@echo "make infra-up    start Kafka ($${SFJIRA_KAFKA_PORT:-19092}) and Apicurio ($${SFJIRA_REGISTRY_PORT:-18081})"
	@echo "make infra-down  stop them (by PID)"
	@echo "make lint        clippy and rustfmt check"

infra-up:
	infra/kafka/start
	infra/registry/start

infra-down:
	infra/registry/stop
	infra/kafka/stop

build:
	$(CARGO) build --workspace

test:
	infra/with-stack $(CARGO) test --workspace --no-fail-fast

# The end-to-end fault test alone (kills, a broker restart, API faults; part of `test` too), with
# its progress shown. SFJIRA_E2E_ACCOUNTS sets the volume (default 25: ~2 000 changes).
test-faults:
	$(CARGO) build --workspace --bins
	infra/with-stack $(CARGO) test -p sfjira-tests --test e2e_faults -- --nocapture

# The demo's services read their secrets from the variables infra/demo/env.sh exports.
DEMO_ENV = source infra/demo/env.sh &&

demo: infra-up
	$(CARGO) build -q -p sfjira -p sfjira-sandbox -p sfjira-tests -p sfjira-salesforce-source \
	  -p sfjira-jira-source -p sfjira-transformer -p sfjira-jira-sink -p sfjira-salesforce-sink
	$(DEMO_ENV) target/debug/sfjira --config $(CONFIG) doctor
	infra/demo/up
	$(DEMO_ENV) target/debug/sfjira-demo --config $(CONFIG)
	@echo
	@echo "Everything is still running for you to look around (sandbox admin views:"
	@echo "  http://127.0.0.1:18080/__admin/jira/issues, http://127.0.0.1:18443/__admin/salesforce/state)."
	@echo "Stop it all with 'make demo-down'."

demo-down:
	infra/demo/down
	infra/registry/stop
	infra/kafka/stop

sandbox:
	$(CARGO) run -q -p sfjira-sandbox

bench:
	$(CARGO) bench -p sfjira-core --bench codec
	$(CARGO) build --release -p sfjira-transformer
	infra/with-stack $(CARGO) bench -p sfjira-transformer --bench throughput
	infra/with-stack $(CARGO) bench -p sfjira-jira-sink --bench jira_sink
	infra/with-stack $(CARGO) bench -p sfjira-salesforce-source --bench capture
	infra/with-stack $(CARGO) bench -p sfjira-salesforce-sink --bench sink
	$(CARGO) build --release --workspace --bins
	infra/with-stack $(CARGO) bench -p sfjira-tests --bench e2e

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# docs/errors.md is generated from the catalog in services/core/src/errors.rs.
errors-doc:
	$(CARGO) run -q -p sfjira -- errors --markdown > docs/errors.md

clean-run: infra-down
	rm -rf .run
