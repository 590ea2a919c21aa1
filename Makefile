# gluteflow — every target sets up what it needs (Python >= 3.11 and make are the only prerequisites).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: setup run test bench lint format browser clean prism flink kafka kafka-expansion runtimes

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP) ## create .venv and install gluteflow with its dependencies

# Debian's headless Chromium for the report-rendering test (skipped by nothing: installed here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

run: setup ## the whole chain on embedded defaults: broker, simulate, stream, daily, nightly, catalog, report
	$(BIN)/gluteflow run

test: setup browser ## the test suite (starts its own broker; installs the optional runtimes it can)
	@$(MAKE) --no-print-directory runtimes
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: setup ## benchmarks: prints figures and ratios measured in one run
	$(BIN)/python -m pip install -q -e '.[bench]' || echo "gaitmap unavailable: gait comparison will be skipped"
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf data .pytest_cache .ruff_cache

# --- optional runtimes (docs/runners.md): Beam's streaming runners and Apache Kafka, built or fetched into
# .cache/ from the Go module proxy and Maven Central. `make run` needs none of them. `make runtimes` (run by
# `make test`) installs what this machine can and never fails: a runtime it could not install makes its
# tests skip, saying why.
BEAM_VERSION := $(shell sed -n 's/.*"apache-beam\[[a-z,]*\]==\([0-9.]*\)".*/\1/p' pyproject.toml)
CACHE := $(CURDIR)/.cache
MVN := mvn -q -B
PRISM := $(CACHE)/prism/v$(BEAM_VERSION)/prism
FLINK_JAR := $(CACHE)/flink/beam-flink-job-server.jar
EXPANSION_JAR := $(CACHE)/kafka-expansion/beam-kafka-expansion-service.jar
KAFKA_LIB := $(CACHE)/kafka/lib

prism: $(PRISM) ## Beam's Prism runner, built from Beam's Go module at the Python SDK's version
$(PRISM):
	GOBIN=$(dir $@) go install github.com/apache/beam/sdks/v2/go/cmd/prism@v$(BEAM_VERSION)

flink: $(FLINK_JAR) ## Beam's Flink job server (embedded Flink), from its Maven modules
$(FLINK_JAR): infra/java/flink-job-server/pom.xml
	$(MVN) -f $< package -Dcache.dir=$(CACHE)/flink

kafka-expansion: $(EXPANSION_JAR) ## Beam's Java KafkaIO expansion service, for ReadFromKafka
$(EXPANSION_JAR): infra/java/kafka-expansion/pom.xml
	$(MVN) -f $< package -Dcache.dir=$(CACHE)/kafka-expansion

kafka: $(KAFKA_LIB)/.complete ## Apache Kafka's broker jars (KRaft, single node: infra/apache_kafka.py)
$(KAFKA_LIB)/.complete: infra/java/kafka/pom.xml
	rm -rf $(KAFKA_LIB) && $(MVN) -f $< package -DoutputDir=$(KAFKA_LIB) && touch $@

runtimes:
	@command -v go >/dev/null && { $(MAKE) --no-print-directory prism || echo "prism: build failed: its tests will skip"; } \
	  || echo "prism: no Go toolchain: its tests will skip"
	@if command -v java >/dev/null && command -v mvn >/dev/null; then \
	  for t in kafka flink kafka-expansion; do $(MAKE) --no-print-directory $$t || echo "$$t: fetch failed: its tests will skip"; done; \
	else echo "kafka, flink, kafka-expansion: no java/mvn: their tests will skip"; fi
