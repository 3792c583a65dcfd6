# Sluice — two commands for a new user: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-packages
IMAGE ?= ghcr.io/sluice-dev/sluice:0.1.0

.PHONY: demo test lint unit bench venv system-deps jmeter image deploy clean help

help:
	@echo "make demo   - run the quality-gate tutorial locally (no cluster needed)"
	@echo "make test   - install what the tests need, lint, and run every test"
	@echo "make lint   - ruff, import-linter and mypy"
	@echo "make bench  - print the benchmark figures"
	@echo "make jmeter - install Apache JMeter 5 (Maven Central) for .jmx tests into ~/.cache/sluice"
	@echo "make image / make deploy - build the function image / install on a cluster"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP)

# Real servers the tests start: Prometheus (Debian), wrk (bench) and Chromium (browser tests).
$(SYSTEM_STAMP): | $(BIN)/python
	@if ! command -v prometheus >/dev/null || ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus chromium chromium-driver wrk >/dev/null; \
	  else \
	    echo "prometheus/chromium missing and not root: run 'sudo apt-get install -y prometheus chromium wrk'" >&2; exit 1; \
	  fi; \
	fi
	touch $@

system-deps: $(SYSTEM_STAMP)

# Apache JMeter 5.x for .jmx tests, from Maven Central (tools/jmeter), cached outside the clone.
# Debian's jmeter (2.13) cannot load plans on this machine's Java: it is not used.
JMETER_HOME ?= $(HOME)/.cache/sluice/jmeter-5.6.3
$(JMETER_HOME)/bin/jmeter: tools/jmeter/pom.xml tools/jmeter/install.sh
	@if ! command -v mvn >/dev/null || ! command -v java >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven default-jdk-headless >/dev/null; \
	  else \
	    echo "maven/java missing and not root: run 'sudo apt-get install -y maven default-jdk-headless'" >&2; exit 1; \
	  fi; \
	fi
	tools/jmeter/install.sh $(JMETER_HOME)

jmeter: $(JMETER_HOME)/bin/jmeter

lint: $(STAMP)
	$(BIN)/ruff check functions tests bench examples
	$(BIN)/lint-imports
	$(BIN)/mypy

test: $(STAMP) $(SYSTEM_STAMP) $(JMETER_HOME)/bin/jmeter lint
	$(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

demo: $(STAMP) $(if $(findstring prometheus,$(DEMO_ARGS)),$(SYSTEM_STAMP))
	$(BIN)/python -m sluice.cli.demo $(DEMO_ARGS)

bench: $(STAMP) $(SYSTEM_STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

image:
	@command -v docker >/dev/null || { echo "make image needs docker (or set DOCKER=podman)" >&2; exit 1; }
	docker build -t $(IMAGE) .

deploy:
	kubectl apply -k knative/

clean:
	rm -rf $(VENV) .sluice .pytest_cache
