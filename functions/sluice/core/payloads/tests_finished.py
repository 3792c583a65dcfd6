"""The ``TestsFinished`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from typing import Any, ClassVar

from sluice.core.events import EventType, Staged, _f, _lag, _time, _verdict
from sluice.core.frozen import frozen
from sluice.core.verdict import Verdict


@frozen(kw_only=True)
class TestsFinished(Staged):
    """The test window and its result.

    ``inconclusive`` (Sluice extension, ``sluice.inconclusive`` on the wire; absent in Keptn's
    events and in older ones, which read as ``""``): why the tests' measurement cannot be trusted
    although they did not fail — e.g. the load generator fell behind its schedule on a starved
    machine. ``result`` stays Keptn's pass/fail; the evaluation becomes inconclusive with this reason.
    ``lag_ms`` (``sluice.lag_ms``): the generator's worst stall, the most any latency it measured
    is over-stated by (0: not known).
    """

    __test__ = False  # not a pytest test class
    TYPE: ClassVar[EventType] = EventType.TESTS_FINISHED
    start: str = _f("start", read=_time)
    end: str = _f("end", read=_time)
    result: Verdict = _f("result", Verdict.PASS, read=_verdict)
    message: str = _f("message", "")
    inconclusive: str = _f("sluice.inconclusive", "")
    lag_ms: float = _f("sluice.lag_ms", 0.0, read=_lag)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if not self.inconclusive:
            del out["sluice"]  # absent, as in Keptn's event: an old event encodes to the same JSON
        return out
