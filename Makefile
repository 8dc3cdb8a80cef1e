# sfjira entry points. `make demo` and `make test` are all a fresh machine needs (README.md).
SHELL := /bin/bash
CARGO ?= cargo
CONFIG ?= config/sfjira.yaml

.PHONY: help infra-up infra-down test demo sandbox bench build lint fmt errors-doc clean-run

help:
	@echo "make demo        start Kafka + registry, create topics, prove an Avro round trip"
	@echo "make test        run every test against a real Kafka and registry (started and stopped for you)"
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

demo: infra-up
	$(CARGO) build -q -p sfjira
	target/debug/sfjira --config $(CONFIG) topics apply
	target/debug/sfjira --config $(CONFIG) doctor
	@echo
	@echo "Kafka and the registry are still running: look around with"
	@echo "  infra/kafka/tool kafka-topics --list"
	@echo "and stop them with 'make infra-down'."

sandbox:
	$(CARGO) run -q -p sfjira-sandbox

bench:
	$(CARGO) bench -p sfjira-core --bench codec
	$(CARGO) build --release -p sfjira-transformer
	infra/with-stack $(CARGO) bench -p sfjira-transformer --bench throughput

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# docs/errors.md is generated from the catalog in services/core/src/errors.rs.
errors-doc:
	$(CARGO) run -q -p sfjira -- errors --markdown > docs/errors.md

clean-run: infra-down
	rm -rf .run
