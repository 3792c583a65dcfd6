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

Canary steps (docs/canary.md): the performance test of a canary stage loads the stage's
*public* address, where the weighted router splits the real traffic and names the slot that
answered each request (``x-sluice-slot``); the test stores each slot's share apart
(``slots.canary``, ``slots.primary``). An indicator then reads the share of the query's
``deployment`` (``canary`` during a step), and ``<indicator>_primary`` / ``<indicator>_canary``
(e.g. ``response_time_p95_primary``) read one slot explicitly, so an SLO can show the primary
beside the candidate. A slot's share is a sample of the load: with fewer than
``MIN_SLOT_SAMPLES`` answers (20 — below that a p95 is the largest value seen) every indicator
of that slot is "could not measure", never a pass; a load on the public address whose answers
name no slot (a router that does not say, e.g. Istio or Knative) is "could not measure" too.
The canary's ``error_rate`` counts the requests that got no answer at all (they cannot be put
down to a slot) against the canary: the worst case, never flattering the candidate.
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
#: Per-slot measurements of a load on the stage's public address, and where the load went.
SLOTS_KEY = "slots"
MEASURED_AT_KEY = "measured_at"
UNATTRIBUTED_KEY = "unattributed"
#: The slots an indicator can name (``response_time_p95_canary``).
SLOT_NAMES = ("primary", "canary")
#: Fewer answers than this from a slot and its indicators are "could not measure": the p95 of
#: fewer than 20 values is simply the largest one (nearest rank: ceil(0.95 × n) = n for n < 20).
MIN_SLOT_SAMPLES = 20

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
        unknown = [name for name in query.indicators if _parse(name) is None]
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
            values.append(self._value(name, stored, failure, where, query.deployment))
        return values

    @staticmethod
    def _value(name: str, stored: Mapping[str, Any] | None, failure: str, where: str, deployment: str = "") -> SliValue:
        parsed = _parse(name)
        if parsed is None:
            valid = ", ".join(INDICATORS)
            return SliValue(name, None, False, f"{name}: not a builtin indicator (valid: {valid}, each also with "
                                               "_primary or _canary for one slot of a canary step)")
        base, slot = parsed
        if not failure and stored is not None and (slot or _per_slot(stored)):
            return _slot_value(name, base, slot or deployment, stored, where)
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


def _parse(name: str) -> tuple[str, str] | None:
    """(indicator, slot) for ``name``: slot '' for a plain indicator; None when unknown."""
    if name in INDICATORS:
        return name, ""
    base, _, slot = name.rpartition("_")
    return (base, slot) if base in INDICATORS and slot in SLOT_NAMES else None


def _per_slot(stored: Mapping[str, Any]) -> bool:
    """Whether the stored load went to the stage's public address (so only per-slot values count).
    A load on a candidate's own URL may name its slot too (the local backend's stable slot URLs
    go through the router): that is the candidate's whole measurement, read as before."""
    return stored.get(MEASURED_AT_KEY) == "public"


def _slot_value(name: str, base: str, slot: str, stored: Mapping[str, Any], where: str) -> SliValue:
    """``base`` for one slot's share of a load on the stage's public address."""
    if slot not in SLOT_NAMES:
        return SliValue(name, None, False, f"{name}: the load went to the stage's public address and the query asks "
                                           f"for deployment {slot!r}: expected canary or primary")
    slots = stored.get(SLOTS_KEY)
    if not isinstance(slots, Mapping) or not slots:
        return SliValue(name, None, False, f"{name}: the load on the public address of {where} was not split by slot "
                                           "(the router did not name the slot that answered, x-sluice-slot); the "
                                           "builtin provider cannot tell the canary's share — use the prometheus "
                                           "provider with $DEPLOYMENT")
    share = slots.get(slot)
    count = share.get(REQUESTS_KEY) if isinstance(share, Mapping) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < MIN_SLOT_SAMPLES:
        got = count if isinstance(count, int) and not isinstance(count, bool) else 0
        return SliValue(name, None, False, f"{name}: only {got} request(s) of the load on the public address of "
                                           f"{where} were answered by the {slot}; at least {MIN_SLOT_SAMPLES} are "
                                           "needed to measure it (a longer or faster test gives more)", samples=got)
    assert isinstance(share, Mapping)
    value = share.get(base)
    if base == "error_rate" and slot == "canary":
        value = _worst_case_error_rate(share, stored, value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return SliValue(name, None, False, f"{name}: not measured for the {slot} of {where}")
    return SliValue(name, float(value), samples=count, distribution=_distribution(base, share),
                    message=f"the {slot}'s share of the load on the public address ({count} requests)")


def _worst_case_error_rate(share: Mapping[str, Any], stored: Mapping[str, Any], value: object) -> object:
    """The canary's error rate with every unanswered request of the run counted against it."""
    lost, count, errors = stored.get(UNATTRIBUTED_KEY), share.get(REQUESTS_KEY), share.get("errors")
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in (lost, count, errors)):
        return value
    assert isinstance(lost, int) and isinstance(count, int) and isinstance(errors, int)
    return round((errors + lost) / (count + lost), 6) if count + lost else value


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
