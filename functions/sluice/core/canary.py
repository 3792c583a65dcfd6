"""Progressive canary (pure): a stage's steps, and where a run is in them.

A stage with ``deployment_strategy: canary`` gives the candidate a growing share of the real
traffic, judging it at every step::

    - name: production
      deployment_strategy: canary
      canary: {steps: [10, 25, 50], step_duration: 2m, max_failed_steps: 0}

At each step the backend sets the weight, the stage's tests run (with no tests the step waits
``step_duration`` under real traffic), SLIs are fetched for the step's window and the SLO is
evaluated. Pass → the next step; after the last one → promote (100 %, the candidate becomes the
primary). A failed step (or an inconclusive one under ``fail``) is repeated while fewer than
``max_failed_steps`` steps failed, otherwise the weight goes back to 0 and the candidate is
discarded. Each step is the next *attempt* of the run (``Run.attempt``), so its transitions and
events are stored apart from the previous step's.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sluice.core.frozen import frozen
from sluice.core.verdict import Verdict

#: The longest a step may wait under real traffic.
MAX_STEP_DURATION_S = 24 * 3600.0
#: The default wait of a step without tests.
DEFAULT_STEP_DURATION_S = 120.0
#: At most this many steps (each one a full test and evaluation).
MAX_STEPS = 20
#: At most this many failed steps may be repeated before the roll-back.
MAX_FAILED_STEPS_LIMIT = 10
_KEYS = ("steps", "step_duration", "max_failed_steps")
#: How ``CanaryState.stopped`` begins when a person aborted the run.
ABORTED_PREFIX = "aborted by "


@frozen
class CanaryPolicy:
    """A canary stage's steps (candidate weights in %, strictly increasing, 1..99), the wait of
    a step without tests, and how many failed steps may be repeated before the roll-back."""

    steps: tuple[int, ...] = (10, 25, 50)
    step_duration_s: float = DEFAULT_STEP_DURATION_S
    max_failed_steps: int = 0

    def weight(self, step: int) -> int:
        """The candidate's weight at ``step`` (0-based); 100 past the last one (promotion)."""
        return self.steps[step] if 0 <= step < len(self.steps) else 100

    def last(self, step: int) -> bool:
        return step >= len(self.steps) - 1

    def to_dict(self) -> dict[str, object]:
        return {"steps": list(self.steps), "step_duration": f"{self.step_duration_s:g}s",
                "max_failed_steps": self.max_failed_steps}


@frozen
class CanaryStep:
    """One judged step of a run: its weight, attempt, window and the gate's verdict."""

    step: int
    weight: int
    attempt: int
    started: str
    ended: str
    result: Verdict
    score: float = 0.0
    evaluation_id: str = ""
    reason: str = ""


@frozen
class CanaryState:
    """Where a canary run is: the current step (0-based), its weight, the attempt that step
    began with (inconclusive retries within a step count from it), when the step began, the
    failed steps so far, the history of judged steps, why it stopped (empty while it goes; an
    abort by a person starts with "aborted by"), whether a person paused it, and the newest
    steering event applied."""

    step: int = 0
    weight: int = 0
    first_attempt: int = 1
    started: str = ""
    failed: int = 0
    history: tuple[CanaryStep, ...] = ()
    stopped: str = ""
    paused: bool = False
    #: The newest pause/resume applied (``<time>|<event id>``): an older one changes nothing.
    steered: str = ""

    @property
    def aborted(self) -> bool:
        """True once a person aborted the run (``sluice send event canary --abort``)."""
        return self.stopped.startswith(ABORTED_PREFIX)

    def judged(self, entry: CanaryStep) -> CanaryState:
        return replace(self, history=(*self.history, entry))

    def next(self, policy: CanaryPolicy, attempt: int, now: str) -> CanaryState:
        """The next step, begun with ``attempt``."""
        step = self.step + 1
        return replace(self, step=step, weight=policy.weight(step), first_attempt=attempt, started=now)

    def again(self, attempt: int, now: str) -> CanaryState:
        """The same step once more (a failed step within ``max_failed_steps``)."""
        return replace(self, failed=self.failed + 1, first_attempt=attempt, started=now)

    def attempt_in_step(self, attempt: int) -> int:
        """``attempt`` counted from this step's first one (1 = the step's first run)."""
        return max(1, attempt - self.first_attempt + 1)

    @staticmethod
    def from_dict(doc: Mapping[str, Any]) -> CanaryState:
        raw = doc.get("history")
        history = tuple(
            CanaryStep(**{k: v for k, v in h.items() if k in CanaryStep.__dataclass_fields__ and k != "result"},
                       result=Verdict(h["result"]))
            for h in (raw if isinstance(raw, list) else ())
            if isinstance(h, Mapping)
        )
        known = {k: v for k, v in doc.items() if k in CanaryState.__dataclass_fields__ and k != "history"}
        return CanaryState(**known, history=history)


def parse_canary(raw: object, where: str, problems: list[str]) -> CanaryPolicy:
    """A stage's ``canary`` mapping (missing → the defaults). Each problem names ``where`` and
    the field; what could not be read keeps its default."""
    from sluice.core.validation import parse_duration

    if raw is None:
        return CanaryPolicy()
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping like {{steps: [10, 25, 50], step_duration: 2m, "
                        f"max_failed_steps: 0}}, found {raw!r}")
        return CanaryPolicy()
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(unknown)} (expected {', '.join(_KEYS)})")
    default = CanaryPolicy()
    steps = default.steps
    if "steps" in raw:
        given = raw["steps"]
        shape = f"{where}.steps: expected a list of 1 to {MAX_STEPS} whole percentages, strictly increasing, each 1..99"
        if not isinstance(given, list) or not given or len(given) > MAX_STEPS:
            problems.append(f"{shape}, found {given!r}")
        elif bad := [s for s in given if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 99]:
            problems.append(f"{shape}; {bad[0]!r} is not a whole number 1..99")
        elif any(b <= a for a, b in itertools.pairwise(given)):
            problems.append(f"{shape}; {given!r} is not strictly increasing")
        else:
            steps = tuple(given)
    duration = default.step_duration_s
    if "step_duration" in raw:
        seconds = parse_duration(raw["step_duration"])
        if seconds is None or not 0 < seconds <= MAX_STEP_DURATION_S:
            problems.append(f"{where}.step_duration: expected a duration like 30s or 2m, more than 0 and at most 24h, "
                            f"found {raw['step_duration']!r}")
        else:
            duration = seconds
    failed = default.max_failed_steps
    if "max_failed_steps" in raw:
        value = raw["max_failed_steps"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FAILED_STEPS_LIMIT:
            problems.append(f"{where}.max_failed_steps: expected a whole number 0..{MAX_FAILED_STEPS_LIMIT}, found {value!r}")
        else:
            failed = value
    return CanaryPolicy(steps, duration, failed)
