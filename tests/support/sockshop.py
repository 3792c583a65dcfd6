"""The tutorial's sockshop story for tests: where the clone and the examples are, the carts
image, the three-stage shipyard, the staging SLO, a fake test runner that makes 0.10.2 slow, and
a helper that seeds a project into a store the way ``sluice create project`` and ``onboard`` do."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from sluice.core.verdict import Verdict
from sluice.services.records import Records
from sluice.services.testflow import TestOutcome

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SOCKSHOP = EXAMPLES / "sockshop"
CARTS = "docker.io/keptnexamples/carts"
SHIPYARD = """
stages:
  - name: dev
    deployment_strategy: direct
    test_strategy: functional
  - name: staging
    deployment_strategy: blue_green_service
    test_strategy: performance
  - name: production
    deployment_strategy: blue_green_service
"""
SLO = """
spec_version: '0.1.1'
comparison:
  compare_with: single_result
  include_result_with_score: pass
  aggregate_function: avg
objectives:
  - sli: response_time_p95
    pass:
      - criteria: ["<600", "<=+10%"]
    warning:
      - criteria: ["<=800"]
total_score:
  pass: "90%"
  warning: "75%"
"""


def fake_runner(deployed: Any, context: str) -> TestOutcome:
    """p95 of 1,050 ms for the slow build 0.10.2, 50 ms for the others; 0.0.1-broken fails its tests."""
    return TestOutcome(
        result=Verdict.FAIL if deployed.tag == "0.0.1-broken" else Verdict.PASS,
        start="2026-01-01T00:00:00Z",
        end="2026-01-01T00:01:00Z",
        measurements={"response_time_p95": 1050.0 if deployed.tag == "0.10.2" else 50.0, "error_rate": 0.0},
    )


def seed_project(records: Records, shipyard: str, *, tests_yaml: str | None = None,
                 test_stages: Iterable[str] = (), project: str = "sockshop", service: str = "carts") -> None:
    """Create ``project`` with ``shipyard``, onboard ``service`` and give ``test_stages`` its tests."""
    records.create_project(project, shipyard, yaml.safe_load(shipyard))
    records.onboard(project, service)
    for stage in test_stages:
        records.put_resource(project, stage, service, "tests.yaml", tests_yaml or "")
