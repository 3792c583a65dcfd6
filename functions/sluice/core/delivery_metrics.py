"""Delivery metrics (pure): a bounded summary of a service's deliveries, folded event by event.

One JSON document per project and service holds, whatever the length of history:

- ``open``: the newest ``OPEN_LIMIT`` deliveries (by last activity) with what each of their
  stages has seen so far (``marks``), the facts later steps need (stage start, first failure,
  failing SLIs) — this is what makes a duplicate of any age harmless: an event whose mark is
  there changes nothing, and an event of a delivery that left the table is older than
  ``horizon`` (the last activity of the newest delivery evicted) and is ignored;
- ``days``: per UTC day (the newest ``DAYS_KEPT``) and stage, counts of outcomes, gate catches
  by reason, evaluations by verdict and histogram buckets of stage durations and lead times —
  what ``sluice get metrics --since`` sums;
- ``totals``: the same since the record was created (monotonic: Prometheus' counters and
  histograms are read from here).

``observe(doc, fact)`` returns whether the fact was new; the caller writes the document back in
the same compare-and-swap write that read it.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.core.fastenum import FastStrEnum
from sluice.core.frozen import frozen

#: Deliveries remembered per service (their stages' marks), by last activity.
OPEN_LIMIT = 150
#: UTC days of counts kept (``--since`` can reach this far back).
DAYS_KEPT = 90
#: Failing SLIs remembered per stage of a delivery (for notifications), and their text length.
FAILING_LIMIT = 5
TEXT_LIMIT = 160
#: SLI providers counted separately (the rest are counted as ``other``).
PROVIDERS_LIMIT = 16
#: Stages counted separately per service (a shipyard has a handful).
STAGES_LIMIT = 8
#: The document's size budget (UTF-8 JSON bytes): past it, the least recently active
#: deliveries leave the table first (a ConfigMap holds 1 MiB; the outbox shares the record).
BYTES_BUDGET = 600 * 1024

#: Histogram buckets (upper bounds, seconds) of stage durations, lead times and evaluation durations.
SECONDS_BUCKETS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400, 172800, 604800,
)
#: Histogram buckets of the evaluation score as a ratio (score / 100).
SCORE_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 1.0)


class FactKind(FastStrEnum):
    """What one event tells the metrics."""

    STAGE_STARTED = "set"  # configuration.change (set): a stage's part of a delivery begins
    DEPLOYED = "deployed"  # deployment-finished
    TESTED = "tested"  # tests-finished
    SLI_FETCHED = "sli"  # get-sli.done
    EVALUATED = "evaluated"  # evaluation-done
    APPROVAL_HELD = "approval"  # approval.triggered
    PROMOTING = "promote"  # configuration.change (promote): the gate (or a person) let the build on
    DONE = "done"  # done


class Reason(FastStrEnum):
    """Why the gate stopped a build in a stage."""

    EVALUATION_FAIL = "evaluation_fail"
    TEST_FAIL = "test_fail"
    INCONCLUSIVE = "inconclusive"
    APPROVAL = "approval_declined_or_expired"
    DEPLOY_ERROR = "deploy_error"
    OTHER = "other"


#: Outcomes of ``done`` that are not a catch (the build went on, or a newer one replaced it).
NOT_CAUGHT = frozenset({"promoted", "superseded"})


@frozen
class Failing:
    """One SLI that failed (or could not be measured) in an evaluation."""

    name: str
    value: float | None
    criteria: str
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "criteria": self.criteria, "status": self.status}


@frozen
class Fact:
    """One event, as the metrics see it."""

    kind: FactKind
    context: str
    stage: str
    time: datetime
    image: str = ""
    result: str = ""  # pass / warning / fail (deployed, tested, evaluated, done)
    outcome: str = ""  # done
    message: str = ""
    score: float | None = None  # evaluated (0–100)
    reason: Reason | None = None  # evaluated fail: evaluation_fail or inconclusive
    failing: tuple[Failing, ...] = ()
    provider: str = ""  # sli
    errors: int = 0  # sli: values that could not be fetched
    last_stage: bool = False  # done: the stage is the shipyard's last

    @property
    def mark(self) -> str:
        suffix = f":{self.provider}" if self.kind is FactKind.SLI_FETCHED else ""
        return f"{self.kind.value}:{self.stage}{suffix}"


# --- time helpers ---------------------------------------------------------------------------

def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def day_of(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d")


def parse_window(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` → a duration (at most ``DAYS_KEPT`` days)."""
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    raw = text.strip().lower()
    if len(raw) < 2 or raw[-1] not in units or not raw[:-1].isdigit() or int(raw[:-1]) <= 0:
        raise ValueError(f"expected a positive whole number with a unit m, h, d or w (e.g. 30d), found {text!r}")
    seconds = int(raw[:-1]) * units[raw[-1]]
    if seconds > DAYS_KEPT * 86400:
        raise ValueError(f"at most {DAYS_KEPT}d (the metrics keep {DAYS_KEPT} days of counts), found {text!r}")
    return timedelta(seconds=seconds)


# --- histograms -----------------------------------------------------------------------------

def _empty_hist(bounds: Sequence[float]) -> dict[str, Any]:
    return {"b": [0] * (len(bounds) + 1), "sum": 0.0, "n": 0}


def _hist_add(hist: dict[str, Any], bounds: Sequence[float], value: float) -> None:
    buckets = hist.get("b")
    if not isinstance(buckets, list) or len(buckets) != len(bounds) + 1:
        hist.clear()
        hist.update(_empty_hist(bounds))
        buckets = hist["b"]
    buckets[bisect.bisect_left(bounds, value)] += 1
    hist["sum"] = round(float(hist.get("sum", 0.0)) + value, 3)
    hist["n"] = int(hist.get("n", 0)) + 1


def merge_hists(hists: Iterable[Mapping[str, Any]], bounds: Sequence[float]) -> dict[str, Any]:
    out = _empty_hist(bounds)
    for h in hists:
        for i, c in enumerate(h.get("b", [])[: len(bounds) + 1]):
            out["b"][i] += int(c)
        out["sum"] += float(h.get("sum", 0.0))
        out["n"] += int(h.get("n", 0))
    return out


def quantile(hist: Mapping[str, Any], bounds: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of a bucketed histogram, interpolated linearly inside its bucket
    (Prometheus' ``histogram_quantile``); ``None`` without observations."""
    buckets = list(hist.get("b", []))
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            if i >= len(bounds):  # the +Inf bucket: its lower bound is the best estimate
                return float(bounds[-1])
            lower = float(bounds[i - 1]) if i > 0 else 0.0
            upper = float(bounds[i])
            return lower + (upper - lower) * ((rank - seen) / count)
        seen += count
    return float(bounds[-1])


# --- the document ---------------------------------------------------------------------------

def _stage_counts(container: dict[str, Any], stage: str) -> dict[str, Any] | None:
    """The counts of ``stage`` in ``container`` (a day or the totals); None past STAGES_LIMIT."""
    if stage not in container and len(container) >= STAGES_LIMIT:
        return None
    return container.setdefault(stage, {})


def _count(counts: dict[str, Any], group: str, key: str, n: int = 1) -> None:
    bucket = counts.setdefault(group, {})
    bucket[key] = int(bucket.get(key, 0)) + n


def _pair(doc: dict[str, Any], stage: str, t: datetime) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The day's and the totals' counts of ``stage`` (None past ``STAGES_LIMIT``)."""
    day = doc.setdefault("days", {}).setdefault(day_of(t), {})
    return _stage_counts(day, stage), _stage_counts(doc.setdefault("totals", {}), stage)


def _both(doc: dict[str, Any], stage: str, t: datetime) -> list[dict[str, Any]]:
    return [c for c in _pair(doc, stage, t) if c is not None]


def _trim_days(doc: dict[str, Any]) -> None:
    days = doc.get("days", {})
    for old in sorted(days)[:-DAYS_KEPT]:
        del days[old]


def size_of(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def _drop_oldest(doc: dict[str, Any]) -> int:
    """Drop the least recently active delivery; the horizon moves to its last activity.
    Returns the bytes it took (approximately)."""
    open_ = doc["open"]
    oldest = min(open_, key=lambda c: (str(open_[c].get("last", "")), c))
    gone = open_.pop(oldest)
    last = str(gone.get("last", ""))
    if last > str(doc.get("horizon", "")):
        doc["horizon"] = last
    return size_of({oldest: gone})


def _evict(doc: dict[str, Any]) -> None:
    open_ = doc.setdefault("open", {})
    while len(open_) > OPEN_LIMIT:
        _drop_oldest(doc)


def fit(doc: dict[str, Any], budget: int = BYTES_BUDGET) -> None:
    """Drop the least recently active deliveries until ``doc`` is within ``budget`` bytes (the
    caller checks the size of what it writes anyway, so this runs only when it is too big)."""
    size = size_of(doc)
    while size > budget and doc.get("open"):
        size -= _drop_oldest(doc)


def _short(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def observe(doc: dict[str, Any], fact: Fact) -> dict[str, Any] | None:
    """Fold ``fact`` into ``doc`` (in place). Returns the delivery's stage entry when the fact
    was new, ``None`` when it changed nothing (a duplicate, or an event older than the horizon)."""
    open_ = doc.setdefault("open", {})
    when = iso(fact.time)
    delivery = open_.get(fact.context)
    if delivery is None:
        if doc.get("horizon") and when <= str(doc["horizon"]):
            return None  # a delivery that left the table long ago: its events are old news
        delivery = open_.setdefault(fact.context, {"first": when, "last": when, "marks": [], "stages": {}})
    marks: list[str] = delivery.setdefault("marks", [])
    if fact.mark in marks:
        return None
    stages = delivery.setdefault("stages", {})
    if fact.stage not in stages and len(stages) >= STAGES_LIMIT:
        return None
    marks.append(fact.mark)
    delivery["first"] = min(str(delivery.get("first") or when), when)
    delivery["last"] = max(str(delivery.get("last") or when), when)
    entry: dict[str, Any] = stages.setdefault(fact.stage, {})
    if fact.image:
        entry["image"] = _short(fact.image)
    _apply(doc, delivery, entry, fact)
    seen = dict(entry)
    if fact.kind is FactKind.DONE:  # what only the stage's notifications needed
        entry.pop("failing", None)
        entry.pop("image", None)
    _trim_days(doc)
    _evict(doc)
    return seen


def _apply(doc: dict[str, Any], delivery: dict[str, Any], entry: dict[str, Any], fact: Fact) -> None:
    when = iso(fact.time)
    kind = fact.kind
    if kind is FactKind.STAGE_STARTED:
        entry["start"] = min(str(entry.get("start") or when), when)
    elif kind is FactKind.DEPLOYED:
        entry.setdefault("start", when)
        if fact.result == "fail":
            entry.setdefault("reason", Reason.DEPLOY_ERROR.value)
    elif kind is FactKind.TESTED:
        entry["tested"] = when
        if fact.result == "fail":
            entry.setdefault("reason", Reason.TEST_FAIL.value)
    elif kind is FactKind.SLI_FETCHED:
        if fact.errors:
            provider = _short(fact.provider or "unknown")[:63]
            errors = doc.setdefault("totals_sli_errors", {})
            if provider not in errors and len(errors) >= PROVIDERS_LIMIT:
                provider = "other"
            errors[provider] = int(errors.get(provider, 0)) + fact.errors
    elif kind is FactKind.EVALUATED:
        entry["verdict"] = fact.result
        if fact.failing:
            entry["failing"] = [f.to_dict() for f in fact.failing[:FAILING_LIMIT]]
        if fact.result == "fail":
            entry.setdefault("reason", (fact.reason or Reason.EVALUATION_FAIL).value)
        day, total = _pair(doc, fact.stage, fact.time)
        for counts in (day, total):
            if counts is not None:
                _count(counts, "v", fact.result or "unknown")
        if day is not None and fact.score is not None and math.isfinite(fact.score):
            day["ss"] = round(float(day.get("ss", 0.0)) + fact.score, 3)
            day["sn"] = int(day.get("sn", 0)) + 1
        if total is not None:  # score and evaluation-time histograms: totals only (Prometheus reads them)
            if fact.score is not None and math.isfinite(fact.score):
                _hist_add(total.setdefault("score", {}), SCORE_BUCKETS, max(0.0, min(fact.score, 100.0)) / 100.0)
            started = parse_time(str(entry.get("tested") or ""))
            if started is not None and fact.time >= started:
                _hist_add(total.setdefault("eval", {}), SECONDS_BUCKETS, (fact.time - started).total_seconds())
    elif kind is FactKind.APPROVAL_HELD:
        entry["held"] = when
        for counts in _both(doc, fact.stage, fact.time):
            _count(counts, "a", "held")
    elif kind is FactKind.PROMOTING:
        entry["promoting"] = when
    elif kind is FactKind.DONE:
        _done(doc, delivery, entry, fact)


def _done(doc: dict[str, Any], delivery: dict[str, Any], entry: dict[str, Any], fact: Fact) -> None:
    entry["outcome"] = fact.outcome
    entry["ended"] = iso(fact.time)
    caught = fact.outcome not in NOT_CAUGHT
    reason = ""
    if caught:
        if fact.outcome in ("declined", "expired") or "expired" in fact.message.lower():
            reason = Reason.APPROVAL.value
        elif entry.get("reason"):
            reason = str(entry["reason"])
        elif entry.get("held") and not entry.get("promoting"):  # held for a person, never let on
            reason = Reason.APPROVAL.value
        elif fact.outcome == "failed":
            reason = Reason.DEPLOY_ERROR.value
        else:
            reason = Reason.OTHER.value
        entry["reason"] = reason
    if fact.last_stage:
        doc["last_stage"] = fact.stage
    start = parse_time(str(entry.get("start") or ""))
    first = parse_time(str(delivery.get("first") or ""))
    for counts in _both(doc, fact.stage, fact.time):
        _count(counts, "o", fact.outcome)
        if caught:
            _count(counts, "r", reason)
        if start is not None and fact.time >= start:
            _hist_add(counts.setdefault("sd", {}), SECONDS_BUCKETS, (fact.time - start).total_seconds())
        if fact.last_stage and fact.outcome == "promoted" and first is not None and fact.time >= first:
            _hist_add(counts.setdefault("lt", {}), SECONDS_BUCKETS, (fact.time - first).total_seconds())


# --- reading --------------------------------------------------------------------------------

class _Sum:
    """One stage's totals while summarizing (a plain class: a dataclass would compile three
    methods on every import, and the event log, which only folds events in, never reads)."""

    __slots__ = ("approvals", "durations", "leads", "outcomes", "reasons", "score_sum", "scored", "verdicts")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.reasons: dict[str, int] = {}
        self.verdicts: dict[str, int] = {}
        self.approvals = 0
        self.durations: list[Mapping[str, Any]] = []
        self.leads: list[Mapping[str, Any]] = []
        self.score_sum = 0.0
        self.scored = 0


def _add(into: dict[str, int], counts: Mapping[str, Any]) -> None:
    for k, v in counts.items():
        into[k] = into.get(k, 0) + int(v)


def _hist_summary(hists: list[Mapping[str, Any]], bounds: Sequence[float]) -> dict[str, Any]:
    merged = merge_hists(hists, bounds)
    n = merged["n"]
    return {
        "count": n,
        "median_s": _round(quantile(merged, bounds, 0.5)),
        "p90_s": _round(quantile(merged, bounds, 0.9)),
        "mean_s": _round(merged["sum"] / n) if n else None,
        "buckets": merged["b"],
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def summarize(
    docs: Sequence[Mapping[str, Any]], stages: Sequence[str], since: datetime, until: datetime
) -> dict[str, Any]:
    """Metrics of the deliveries in ``docs`` (one service's, or every service of a project)
    between ``since`` and ``until`` (whole UTC days: the day of ``since`` counts in full)."""
    first_day, last_day = day_of(since), day_of(until)
    per_stage: dict[str, _Sum] = {s: _Sum() for s in stages}
    last_stage = stages[-1] if stages else ""
    daily: dict[str, dict[str, int]] = {}
    for doc in docs:
        last_stage = str(doc.get("last_stage") or last_stage)
        for day, by_stage in (doc.get("days") or {}).items():
            if not first_day <= day <= last_day:
                continue
            for stage, counts in by_stage.items():
                s = per_stage.setdefault(stage, _Sum())
                _add(s.outcomes, counts.get("o", {}))
                _add(s.reasons, counts.get("r", {}))
                _add(s.verdicts, counts.get("v", {}))
                s.approvals += int(counts.get("a", {}).get("held", 0))
                for key, target in (("sd", s.durations), ("lt", s.leads)):
                    if key in counts:
                        target.append(counts[key])
                s.score_sum += float(counts.get("ss", 0.0))
                s.scored += int(counts.get("sn", 0))
                d = daily.setdefault(day, {"promoted": 0, "caught": 0})
                d["caught"] += sum(int(v) for v in counts.get("r", {}).values())
                if stage == last_stage:
                    d["promoted"] += int(counts.get("o", {}).get("promoted", 0))
    days = max(1, (until.date() - since.date()).days + 1)
    out_stages = []
    for stage, s in per_stage.items():
        ended = sum(s.outcomes.values())
        caught = sum(s.reasons.values())
        out_stages.append({
            "stage": stage,
            "ended": ended,
            "outcomes": dict(sorted(s.outcomes.items())),
            "caught": caught,
            "catch_rate": round(caught / ended, 4) if ended else None,
            "reasons": dict(sorted(s.reasons.items())),
            "evaluations": dict(sorted(s.verdicts.items())),
            "mean_score": round(s.score_sum / s.scored, 1) if s.scored else None,
            "approvals_held": s.approvals,
            "duration": _hist_summary(s.durations, SECONDS_BUCKETS),
        })
    last = per_stage.get(last_stage, _Sum())
    deployments = int(last.outcomes.get("promoted", 0))
    timeline = []
    cursor = since.date()
    while cursor <= until.date():
        key = cursor.isoformat()
        timeline.append({"day": key, **daily.get(key, {"promoted": 0, "caught": 0})})
        cursor += timedelta(days=1)
    return {
        "since": iso(since),
        "until": iso(until),
        "last_stage": last_stage,
        "deployment_frequency": {"deployments": deployments, "days": days, "per_day": round(deployments / days, 3)},
        "lead_time": _hist_summary(last.leads, SECONDS_BUCKETS),
        "stages": out_stages,
        "daily": timeline,
    }


def duration_text(seconds: object) -> str:
    """A duration as people read it on the web view and in ``sluice get insight``: seconds below
    two minutes, then minutes, hours and days with one decimal; ``–`` when there is no figure."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
