"""Parts of a ledger run most events never build: a test unit, a pending evaluation, a hold, a
queued delivery (see ``sluice.core.ledger``, whose module ``__getattr__`` loads them on first
use, so ``from sluice.core.ledger import Hold`` works as if they were defined there).

A cold start creates only the classes its first event needs: a ``set`` on a free stage, a
failed deployment's "not tested" or a gate's promotion build none of these.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from sluice.core.frozen import frozen
from sluice.core.ledger import HoldDecision
from sluice.core.strategies import DeploymentStrategy, OnTimeout, TestStrategy
from sluice.core.verdict import Verdict


@frozen
class TestRun:
    """A test unit: the deployment-finished event it runs for, its deadline."""

    __test__ = False
    key: str
    started: str
    deadline: str
    limit_s: float
    event: dict[str, Any]
    soak: bool = False  # a canary step without tests: it waits under real traffic, and passes at its deadline


@frozen
class PendingEvaluation:
    """An evaluation waiting for its SLIs: the window, the SLO it asked with, the provider."""

    start: str
    end: str
    slo: str
    provider: str
    request_id: str
    deadline: str
    test_failed: bool = False
    test_message: str = ""
    #: Why the tests' measurement cannot be trusted (``TestsFinished.inconclusive``; empty: it can).
    test_inconclusive: str = ""
    #: The tests' load generator's worst stall (ms): how much its latencies may be over-stated.
    test_lag_ms: float = 0.0
    teststrategy: TestStrategy = TestStrategy.NONE
    #: ``None`` when the evaluation's cause did not say (stored as ``""``).
    deploymentstrategy: DeploymentStrategy | None = field(default=None, metadata={"none_as": ""})


@frozen
class Hold:
    """A promotion held for a person, and how it ended."""

    result: Verdict
    held_at: str
    deadline: str
    on_timeout: OnTimeout = OnTimeout.DECLINE
    decision: HoldDecision | None = None
    by: str = ""
    decided_at: str = ""
    reason: str = ""


@frozen
class Queued:
    """A delivery waiting for the stage: the event that asked for it, re-sent when its turn comes."""

    context: str
    image: str
    event: dict[str, Any]
    queued_at: str
