"""The SLI provider port: fetch indicator values for a time window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SliQuery:
    """What to measure: which indicators, for which service and deployment, over which window."""

    project: str
    stage: str
    service: str
    indicators: Sequence[str]
    start: str  # RFC 3339
    end: str  # RFC 3339
    deployment: str = "direct"  # canary | primary | direct
    filters: Mapping[str, str] = field(default_factory=dict)
    context: str = ""  # shkeptncontext of the delivery (the builtin provider reads by it)


@dataclass(frozen=True)
class SliValue:
    """One indicator's value. ``success=False`` means "could not measure": value is None and
    ``message`` says which indicator and why. Never a silent 0.

    Optional, for providers that know them (the builtin one does): ``samples``, how many requests
    stand behind the value; ``distribution``, the latency samples behind it as
    ``{"buckets": [[value in the indicator's unit, count], ...]}`` (bounded, see
    ``sluice.core.samples``). Both are left out of ``to_dict`` when unknown.
    """

    metric: str
    value: float | None
    success: bool = True
    message: str = ""
    samples: int | None = None
    distribution: Mapping[str, object] | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"metric": self.metric, "value": self.value, "success": self.success, "message": self.message}
        if self.samples is not None:
            out["samples"] = self.samples
        if self.distribution is not None:
            out["distribution"] = dict(self.distribution)
        return out


class SliProvider(Protocol):
    """A source of SLI values (builtin, prometheus, cloudwatch)."""

    def fetch(self, query: SliQuery) -> Sequence[SliValue]:
        """One ``SliValue`` per requested indicator, in order.

        Never raises for one indicator's failure (that indicator gets ``success=False``).
        Raises ``ConfigurationError`` when the provider itself is misconfigured, and
        ``RetryableError`` only when its own bookkeeping is briefly unreachable (the sli function
        then answers 5xx and the broker retries); an unreachable metrics backend is a per-indicator
        ``success=False``, never an exception.
        """
        ...
