# Sluice — two commands for a new user: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_PROMETHEUS := $(findstring prometheus,$(DEMO_ARGS))
DEMO_STAMP := $(VENV)/.installed-demo$(if $(DEMO_PROMETHEUS),-prometheus)
SYSTEM_STAMP := $(VENV)/.system-packages
IMAGE ?= ghcr.io/sluice-dev/sluice:0.1.0

.PHONY: demo test test-kube kube-binaries helm soak lint unit bench venv system-deps jmeter image deploy clean help

help:
	@echo "make demo   - run the quality-gate tutorial locally (no cluster needed)"
	@echo "make test   - install what the tests need, lint, and run every test"
	@echo "make soak   - the delivery-flow model test with many more examples (SLUICE_SOAK_EXAMPLES, default 3000)"
	@echo "make test-kube - only the tests against a real Kubernetes API server (tests/integration/kube, the kube marker)"
	@echo "make lint   - ruff, import-linter and mypy"
	@echo "make bench  - print the benchmark figures"
	@echo "make helm   - build helm 3 (Go module) for 'sluice onboard service --chart' into ~/.cache/sluice"
	@echo "make jmeter - install Apache JMeter 5 (Maven Central) for .jmx tests into ~/.cache/sluice"
	@echo "make image / make deploy - build the function image / install on a cluster"

# The venv's own pip (ensurepip's) installs the demo; make test upgrades it first.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-demo $(VENV)/.installed-demo-prometheus

# The demo needs only the base dependencies (plus the Prometheus client when it is asked for):
# a fresh clone reaches a finished demo without installing the test tools and browsers.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.$(if $(DEMO_PROMETHEUS),[prometheus])'
	touch $@

venv: $(STAMP)

# Real servers the tests start: Prometheus (Debian), wrk and nginx-light (bench) and Chromium (browser tests).
$(SYSTEM_STAMP): | $(BIN)/python
	@if ! command -v prometheus >/dev/null || ! command -v chromium >/dev/null || ! command -v wrk >/dev/null \
	    || ! { command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus chromium chromium-driver wrk nginx-light >/dev/null; \
	  else \
	    echo "prometheus/chromium missing and not root: run 'sudo apt-get install -y prometheus chromium wrk nginx-light'" >&2; exit 1; \
	  fi; \
	fi
	touch $@

system-deps: $(SYSTEM_STAMP)

# etcd, kube-apiserver, kube-controller-manager and kubectl for the `kube` tests, built with Go
# from tests/support/kube/tools into a cache outside the clone (tests/support/kube/build.sh --print shows where).
# The first build takes minutes; afterwards this returns at once.
kube-binaries:
	@bash tests/support/kube/build.sh >/dev/null

# helm 3 for `sluice onboard service --chart` (helm template), built from its Go module into a
# cache outside the clone (tools/helm/build.sh --print shows where). The first build takes minutes
# (about 5.5 measured on a busy 2-core machine); afterwards this returns at once.
helm:
	@bash tools/helm/build.sh >/dev/null

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

test: $(STAMP) $(SYSTEM_STAMP) kube-binaries helm $(JMETER_HOME)/bin/jmeter lint
	$(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# The model-based test of the delivery flow (tests/integration/flow/test_flow_model.py), many more examples
# with random seeds.
soak: $(STAMP)
	SLUICE_SOAK=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/flow/test_flow_model.py::test_delivery_flow_model

test-kube: $(STAMP) kube-binaries helm
	$(BIN)/python -m pytest -q -p no:cacheprovider -m kube; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no kube tests: failing" >&2; exit 1; fi; exit $$rc

demo: $(DEMO_STAMP) $(if $(DEMO_PROMETHEUS),$(SYSTEM_STAMP))
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
