"""Where a test unit sends its requests: a canary stage's performance test loads the stage's
public address (the split applies, the builtin provider judges the candidate's share); every
other test checks the candidate's own URL."""

from __future__ import annotations

import pytest

from sluice.core.events import DeploymentFinished
from sluice.functions.testworker import loads_public_address


def deployed(strategy: str, tests: str, public: str = "http://127.0.0.1:9000") -> DeploymentFinished:
    return DeploymentFinished(project="sockshop", stage="production", service="carts", image="carts", tag="1",
                              teststrategy=tests, deploymentstrategy=strategy, deploymentURILocal="http://127.0.0.1:9001",
                              deploymentURIPublic=public, result="pass")


@pytest.mark.parametrize(("strategy", "tests", "public", "expected"), [
    ("canary", "performance", "http://127.0.0.1:9000", True),
    ("canary", "functional", "http://127.0.0.1:9000", False),  # correctness of the candidate itself
    ("canary", "performance", "", False),  # no public address known: the candidate's URL
    ("blue_green_service", "performance", "http://127.0.0.1:9000", False),
    ("direct", "performance", "http://127.0.0.1:9000", False),
])
def test_only_a_canary_performance_test_loads_the_public_address(strategy: str, tests: str, public: str,
                                                                  expected: bool) -> None:
    assert loads_public_address(deployed(strategy, tests, public)) is expected
