"""When the gate could not judge: the rules that make an evaluation inconclusive, and what a
stage does then (its ``on_inconclusive`` policy). Pure.

An evaluation is *inconclusive* (its verdict and score stay exactly Keptn's) when a scored or
key SLI could not be measured, when fewer than ``min_samples`` requests stand behind an
indicator whose provider counts them, or — only when the stage asks — when a relative criterion
had no baseline to compare with (Keptn lets it pass; so do we by default).

A stage's shipyard entry chooses what happens to an inconclusive evaluation::

    - name: staging
      on_inconclusive: retry           # fail (default) | hold | retry
    - name: production
      on_inconclusive:                 # or the long form, with the rules
        action: retry                  # fail | hold | retry
        max_retries: 2                 # retry: re-run tests + evaluation at most this often, then fail
        min_samples: 100               # requests behind a builtin indicator (0 = no minimum)
        no_baseline: inconclusive      # pass (default, Keptn's) | inconclusive

- ``fail`` — Keptn's behaviour: the verdict stands (an unmeasured SLI scored 0);
- ``hold`` — the promotion waits for a person (the stage's approval, with its timeout);
- ``retry`` — re-run the tests and the evaluation, at most ``max_retries`` times; then ``fail``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from sluice.core.fastenum import FastStrEnum
from sluice.core.frozen import frozen
from sluice.core.verdict import Verdict

__all__ = [
    "ATTEMPT_LABEL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MIN_SAMPLES",
    "DataRules",
    "InconclusiveAction",
    "InconclusivePolicy",
    "attempt_of",
    "comparison_history",
    "inconclusive_action",
    "inconclusive_in",
    "next_attempt",
    "parse_on_inconclusive",
]

DEFAULT_MIN_SAMPLES = 100
DEFAULT_MAX_RETRIES = 1
#: The most retries a stage may ask for (each re-runs the whole test).
MAX_RETRIES_LIMIT = 10


class InconclusiveAction(FastStrEnum):
    """What a stage does with an inconclusive evaluation."""

    FAIL = "fail"
    HOLD = "hold"
    RETRY = "retry"


@frozen(slots=True)
class DataRules:
    """When the evaluator marks an evaluation inconclusive (the verdict never changes).

    ``min_samples``: fewer requests than this behind an indicator whose provider reports its
    sample count make it inconclusive (0 turns the rule off). ``no_baseline_inconclusive``: a
    relative criterion with nothing to compare with makes it inconclusive (default: Keptn's pass).
    """

    min_samples: int = DEFAULT_MIN_SAMPLES
    no_baseline_inconclusive: bool = False


@frozen(slots=True)
class InconclusivePolicy:
    """A stage's ``on_inconclusive``: the action, its retry budget and the data rules."""

    action: InconclusiveAction = InconclusiveAction.FAIL
    max_retries: int = DEFAULT_MAX_RETRIES
    rules: DataRules = DataRules()

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action.value,
            "max_retries": self.max_retries,
            "min_samples": self.rules.min_samples,
            "no_baseline": "inconclusive" if self.rules.no_baseline_inconclusive else "pass",
        }


def inconclusive_action(policy: InconclusivePolicy, attempt: int) -> InconclusiveAction:
    """What to do with an inconclusive evaluation of attempt number ``attempt`` (1 = the first run).

    ``retry`` while fewer than ``max_retries`` retries were made (attempt ≤ max_retries), then
    ``fail``; ``fail`` and ``hold`` as asked. A conclusive evaluation never asks this.
    """
    if policy.action is InconclusiveAction.RETRY:
        return InconclusiveAction.RETRY if attempt <= policy.max_retries else InconclusiveAction.FAIL
    return policy.action


_KEYS = ("action", "max_retries", "min_samples", "no_baseline")


def _whole(value: object, where: str, low: int, high: int | None, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"at least {low}"
        problems.append(f"{where}: expected a whole number {bound}, found {value!r}")
        return None
    return value


def parse_on_inconclusive(raw: object, where: str, problems: list[str]) -> InconclusivePolicy:
    """A stage's ``on_inconclusive`` value (missing → ``fail`` with the default rules).

    Accepts an action name or a mapping with ``action``, ``max_retries``, ``min_samples`` and
    ``no_baseline``. Appends each problem (naming ``where`` and the field) to ``problems`` and
    returns the default policy for what it could not read.
    """
    if raw is None:
        return InconclusivePolicy()
    valid = ", ".join(a.value for a in InconclusiveAction)
    body: Mapping[object, object]
    if isinstance(raw, str):
        body = {"action": raw}
    elif isinstance(raw, Mapping):
        body = raw
        unknown = sorted(str(k) for k in body if k not in _KEYS)
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(unknown)} (expected {', '.join(_KEYS)})")
    else:
        problems.append(f"{where}: expected one of {valid}, or a mapping with {', '.join(_KEYS)}; found {raw!r}")
        return InconclusivePolicy()
    action = InconclusiveAction.FAIL
    if body.get("action") is not None:
        try:
            action = InconclusiveAction(str(body["action"]))
        except ValueError:
            problems.append(f"{where}.action: expected one of {valid}, found {body['action']!r}")
    max_retries = DEFAULT_MAX_RETRIES
    if body.get("max_retries") is not None:
        max_retries = _whole(body["max_retries"], f"{where}.max_retries", 0, MAX_RETRIES_LIMIT, problems) or 0
    min_samples = DEFAULT_MIN_SAMPLES
    if body.get("min_samples") is not None:
        got = _whole(body["min_samples"], f"{where}.min_samples", 0, None, problems)
        min_samples = DEFAULT_MIN_SAMPLES if got is None else got
    no_baseline = False
    if body.get("no_baseline") is not None:
        if body["no_baseline"] not in ("pass", "inconclusive"):
            problems.append(f"{where}.no_baseline: expected pass or inconclusive, found {body['no_baseline']!r}")
        no_baseline = body["no_baseline"] == "inconclusive"
    return InconclusivePolicy(action, max_retries, DataRules(min_samples, no_baseline))


if TYPE_CHECKING:  # cold start: a type only (a Protocol costs a class to create)

    class _Judged(Protocol):
        @property
        def inconclusive(self) -> bool: ...

        @property
        def result(self) -> Verdict: ...


J = TypeVar("J", bound="_Judged")


def comparison_history(previous: Sequence[J]) -> list[J]:
    """The previous evaluations a new one may compare with (oldest first): an inconclusive
    evaluation counts only when it passed — a build the gate could not judge is no baseline."""
    return [p for p in previous if not p.inconclusive or p.result is Verdict.PASS]


#: The label that carries a stage's attempt number through a retried test + evaluation
#: (deployment-finished → tests-finished → evaluation-done copy their labels).
ATTEMPT_LABEL = "sluice.sh/attempt"


def attempt_of(labels: Mapping[str, str]) -> int:
    """The attempt number in ``labels`` (1 when absent or not a whole number ≥ 1)."""
    raw = str(labels.get(ATTEMPT_LABEL, "1"))
    # ASCII digits only: str.isdigit() also accepts '²' or '٣', which int() refuses
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) >= 1 else 1


def next_attempt(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` with the attempt number raised by one (for the retried deployment-finished)."""
    return {**labels, ATTEMPT_LABEL: str(attempt_of(labels) + 1)}


def inconclusive_in(details: Mapping[str, object]) -> tuple[bool, list[str]]:
    """(inconclusive?, the reasons) from an ``evaluation-done`` payload's ``evaluationdetails``
    (Sluice's record is under ``sluice``; an evaluation without it is conclusive)."""
    record = details.get("sluice")
    if not isinstance(record, Mapping) or not record.get("inconclusive"):
        return False, []
    reasons = record.get("inconclusive_reasons")
    texts = [str(r.get("message", "")) for r in reasons if isinstance(r, Mapping)] if isinstance(reasons, list) else []
    return True, texts or ["the gate could not judge"]
