"""The ``EvaluationDone`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from typing import Any, ClassVar

from sluice.core.events import EventType, Staged, _f, _object, _verdict
from sluice.core.frozen import frozen
from sluice.core.verdict import Verdict


@frozen(kw_only=True)
class EvaluationDone(Staged):
    """The gate's verdict, in the seed's shape."""

    TYPE: ClassVar[EventType] = EventType.EVALUATION_DONE
    result: Verdict = _f("result", read=_verdict)
    evaluationdetails: dict[str, Any] = _f("evaluationdetails", {}, read=_object)
    message: str = _f("message", "")
