#!/usr/bin/env bash
# Keptn 0.6's "Deployments with Quality Gates" tutorial, command for command, with `sluice` for
# `keptn` on the embedded default. Run it from this folder after `make jmeter` and `sluice up --sli-provider prometheus`
# (Debian's prometheus scrapes every local deployment). tests/e2e/test_keptn_tutorial.py runs
# these very lines in order and checks the story. What differs from Keptn: docs/coming-from-keptn.md.
#
# After each `send event new-artifact`, wait for the delivery to end before the next one:
#   sluice get event --context <the printed delivery context>      (or watch `sluice status --project=sockshop`)
set -euo pipefail

# 1. The project and its service (Keptn: keptn create project / keptn onboard service --chart)
sluice create project sockshop --shipyard=./shipyard.yaml
sluice onboard service carts --project=sockshop --chart=./carts

# 2. The tests: Keptn's JMeter plans (jmeter/basiccheck.jmx for dev, jmeter/load.jmx for staging),
#    and tests.yaml naming them (Keptn's jmeter-service found them by name; Sluice is told)
sluice add-resource --project=sockshop --stage=dev --service=carts --resource=jmeter/basiccheck.jmx --resourceUri=jmeter/basiccheck.jmx
sluice add-resource --project=sockshop --stage=staging --service=carts --resource=jmeter/load.jmx --resourceUri=jmeter/load.jmx
sluice add-resource --project=sockshop --stage=dev --service=carts --resource=tests.yaml --resourceUri=tests.yaml
sluice add-resource --project=sockshop --stage=staging --service=carts --resource=tests.yaml --resourceUri=tests.yaml

# 3. The first version goes through every stage
sluice send event new-artifact --project=sockshop --service=carts --image=docker.io/keptnexamples/carts --tag=0.10.1

# 4. Quality gates with Prometheus (Keptn: kubectl apply -f lighthouse-config-prometheus.yaml)
sluice set sli-provider prometheus --project=sockshop
sluice add-resource --project=sockshop --stage=staging --service=carts --resource=slo.yaml --resourceUri=slo.yaml
sluice add-resource --project=sockshop --stage=staging --service=carts --resource=sli-config-prometheus.yaml --resourceUri=prometheus/sli.yaml

# 5. The slow build is stopped in staging; the fast one reaches production
sluice send event new-artifact --project=sockshop --service=carts --image=docker.io/keptnexamples/carts --tag=0.10.2
sluice send event new-artifact --project=sockshop --service=carts --image=docker.io/keptnexamples/carts --tag=0.10.3
