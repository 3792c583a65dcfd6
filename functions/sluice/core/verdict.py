"""The one verdict of a quality gate — an evaluation's, a test run's, a deployment's result.

Its values are the wire's (``result`` in events, evaluation records and the ledger), so a
``StrEnum`` member encodes to exactly the string it was decoded from.
"""

from __future__ import annotations

from sluice.core.fastenum import FastStrEnum


class Verdict(FastStrEnum):
    """``pass`` / ``warning`` / ``fail``: what the gate, a test run or a deployment concluded."""

    PASS = "pass"
    WARNING = "warning"
    FAIL = "fail"
