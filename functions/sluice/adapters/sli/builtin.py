"""The ``builtin`` SLI provider: the values the test of the same delivery and stage measured.

The test run stores its measurements (``sluice.services.testing.TestReport.measurements``) by
project, stage, service and delivery context; this provider reads them back through the context's
``load_measurements`` (the composition root backs it with the state store), so it does no I/O
of its own and needs no configuration.

Indicators: ``throughput`` (requests/s), ``error_rate`` (fraction 0..1), ``response_time_avg``,
``response_time_p50``, ``response_time_p90``, ``response_time_p95``, ``response_time_p99``
(milliseconds). The window of the query is not used: the measurements belong to the delivery.

Each value says what stands behind it, when the test stored it: ``samples`` (the number of
requests) on every indicator, and ``distribution`` (the latency histogram in milliseconds, at
most a few hundred buckets) on the ``response_time_*`` ones — so the evaluation can mark too few
samples as inconclusive and run a noise-aware comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sluice.errors import RetryableError
from sluice.ports.sli import LoadMeasurements, ProviderContext, SliQuery, SliValue

__all__ = ["INDICATORS", "BuiltinSliProvider", "LoadMeasurements", "create"]

#: The indicators the builtin provider can answer, with their unit.
INDICATORS: Mapping[str, str] = {
    "throughput": "requests/s",
    "error_rate": "fraction 0..1",
    "response_time_avg": "ms",
    "response_time_p50": "ms",
    "response_time_p90": "ms",
    "response_time_p95": "ms",
    "response_time_p99": "ms",
}

#: Keys of the stored measurements that are not indicators: what stands behind the values.
REQUESTS_KEY = "requests"
HISTOGRAM_KEY = "latency_histogram_us"

class BuiltinSliProvider:
    """``SliProvider`` over the tests' stored measurements."""

    name = "builtin"

    def __init__(self, load_measurements: LoadMeasurements) -> None:
        self._load = load_measurements

    def fetch(self, query: SliQuery) -> Sequence[SliValue]:
        """One value per requested indicator, in order; never raises for one indicator.

        A ``RetryableError`` from ``load_measurements`` propagates (try again later); any other
        failure to read becomes ``success=False`` on every builtin indicator, with the reason.
        """
        where = f"{query.project}/{query.stage}/{query.service}, context {query.context or '(none)'}"
        unknown = [name for name in query.indicators if name not in INDICATORS]
        stored: Mapping[str, Any] | None = None
        failure = ""
        if len(unknown) < len(query.indicators):
            try:
                stored = self._load(query.project, query.stage, query.service, query.context)
            except RetryableError:
                raise  # a transient store failure: the sli function answers 5xx and the broker retries
            except Exception as err:  # anything else: the evaluation still gets an answer per indicator
                failure = f"could not read the test measurements for {where}: {type(err).__name__}: {err}"
        values = []
        for name in query.indicators:
            values.append(self._value(name, stored, failure, where))
        return values

    @staticmethod
    def _value(name: str, stored: Mapping[str, Any] | None, failure: str, where: str) -> SliValue:
        if name not in INDICATORS:
            valid = ", ".join(INDICATORS)
            return SliValue(name, None, False, f"{name}: not a builtin indicator (valid: {valid})")
        if failure:
            return SliValue(name, None, False, f"{name}: {failure}")
        if stored is None:
            return SliValue(
                name, None, False,
                f"{name}: no test measurements stored for {where} (was the stage tested, with a test strategy?)",
            )
        if name not in stored:
            measured = ", ".join(sorted(k for k in stored if k in INDICATORS)) or "nothing"
            return SliValue(name, None, False, f"{name}: not measured by the test for {where} (it measured {measured})")
        value = stored[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return SliValue(name, None, False, f"{name}: stored value for {where} is not a finite number: {value!r}")
        return SliValue(name, float(value), samples=_samples(stored), distribution=_distribution(name, stored))


def create(ctx: ProviderContext) -> BuiltinSliProvider:
    """The builtin provider over the context's measurement loader (it needs nothing else)."""
    return BuiltinSliProvider(ctx.load_measurements)


def _samples(stored: Mapping[str, Any]) -> int | None:
    count = stored.get(REQUESTS_KEY)
    if isinstance(count, bool) or not isinstance(count, int | float) or not math.isfinite(count) or count < 0:
        return None  # not stored (an older test run) or malformed: unknown, never guessed
    return int(count)


def _distribution(name: str, stored: Mapping[str, Any]) -> Mapping[str, object] | None:
    """The latency histogram in milliseconds, for a ``response_time_*`` indicator."""
    pairs = stored.get(HISTOGRAM_KEY)
    if not name.startswith("response_time_") or not isinstance(pairs, list) or not pairs:
        return None
    buckets: list[list[float | int]] = []
    for pair in pairs:
        ok = (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
              and pair[0] >= 0 and pair[1] >= 0)
        if not ok:
            return None  # malformed: no distribution rather than a wrong one
        buckets.append([round(pair[0] / 1000.0, 3), pair[1]])
    return {"buckets": buckets}
