"""What-if replay: re-score stored evaluations under another SLO, as if it had always been in place.

Pure. It takes the stored evaluations of one project/stage/service (oldest first) with the
values they measured, and a new SLO; it scores each one again in order, rebuilding the comparison
history from the *replayed* verdicts (relative criteria and ``include_result_with_score`` depend on
earlier verdicts, which the new SLO may change), and reports per build what changed.

What was measured then is all it uses: an indicator the new SLO names but a stored evaluation
lacks is "not measured then" (scored as unmeasured, as the evaluator does, and listed), never
guessed. Nothing is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from sluice.core.frozen import frozen
from sluice.core.inconclusive import DataRules, comparison_history
from sluice.core.scoring import EvaluationResult, IndicatorStatus, Measurement, Verdict, evaluate
from sluice.core.slo import Slo

__all__ = ["NOT_MEASURED_THEN", "Flip", "ReplayReport", "ReplayedBuild", "StoredEvaluation", "replay"]

NOT_MEASURED_THEN = "not measured then: the stored evaluation has no value for this indicator"


@frozen
class StoredEvaluation:
    """One stored evaluation as replay needs it: the result (with its measured values) and the build."""

    result: EvaluationResult
    image: str = ""
    time: str = ""


@frozen(slots=True)
class Flip:
    """One objective whose status differs: ``before`` under the stored SLO (``None``: it had no such
    objective), ``after`` under the new one."""

    sli: str
    before: IndicatorStatus | None
    after: IndicatorStatus

    def to_dict(self) -> dict[str, object]:
        return {"sli": self.sli, "before": None if self.before is None else self.before.value, "after": self.after.value}


@frozen
class ReplayedBuild:
    """One build: the stored verdict and score, the replayed ones, and which objectives flipped."""

    id: str
    image: str
    time: str
    stored: Verdict
    stored_score: float
    stored_inconclusive: bool
    replayed: EvaluationResult
    flips: tuple[Flip, ...]
    not_measured_then: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.stored is not self.replayed.result

    @property
    def for_lack_of_data(self) -> bool:
        """The verdict changed and the new SLO names indicators this build never measured: the
        change may say more about the missing data than about the build."""
        return self.changed and bool(self.not_measured_then)

    @property
    def transition(self) -> str:
        """``pass→fail`` and the like; ``unchanged`` when the verdict stayed."""
        return f"{self.stored.value}→{self.replayed.result.value}" if self.changed else "unchanged"

    def to_dict(self) -> dict[str, object]:
        r = self.replayed
        return {
            "id": self.id, "image": self.image, "time": self.time,
            "stored": {"result": self.stored.value, "score": self.stored_score, "inconclusive": self.stored_inconclusive},
            "replayed": {
                "result": r.result.value, "score": r.score, "inconclusive": r.inconclusive,
                "inconclusive_reasons": [x.to_dict() for x in r.inconclusive_reasons],
                "compared_with": [] if r.comparison is None else list(r.comparison.compared_evaluations),
            },
            "transition": self.transition,
            "for_lack_of_data": self.for_lack_of_data,
            "flips": [f.to_dict() for f in self.flips],
            "not_measured_then": list(self.not_measured_then),
            "evaluation": r.to_dict(),
        }


@frozen
class ReplayReport:
    """Every replayed build (oldest first) and the counts of each verdict transition."""

    builds: tuple[ReplayedBuild, ...]

    @property
    def transitions(self) -> Mapping[str, int]:
        """``{"pass→fail": 2, "fail→pass": 1, "unchanged": 5, ...}``."""
        return dict(Counter(b.transition for b in self.builds))

    @property
    def missing_data(self) -> tuple[str, ...]:
        """Indicators of the new SLO that at least one stored evaluation lacks."""
        return tuple(dict.fromkeys(n for b in self.builds for n in b.not_measured_then))

    def last(self, count: int | None) -> ReplayReport:
        """Only the newest ``count`` builds (all when None) — replayed with their whole history before."""
        if count is None or count >= len(self.builds):
            return self
        return ReplayReport(self.builds[len(self.builds) - count:] if count > 0 else ())

    def to_dict(self) -> dict[str, object]:
        t = self.transitions
        return {
            "builds": [b.to_dict() for b in self.builds],
            "summary": {
                "builds": len(self.builds),
                "unchanged": t.get("unchanged", 0),
                "pass_to_fail": t.get("pass→fail", 0),
                "fail_to_pass": t.get("fail→pass", 0),
                "transitions": dict(sorted(t.items())),
                "changed_for_lack_of_data": sum(1 for b in self.builds if b.for_lack_of_data),
                "inconclusive": sum(1 for b in self.builds if b.replayed.inconclusive),
                "not_measured_then": list(self.missing_data),
            },
        }


def _measurements(stored: EvaluationResult) -> dict[str, Measurement]:
    out: dict[str, Measurement] = {}
    for ind in stored.indicators:
        if ind.name in out:
            continue
        if ind.success and ind.value is not None:
            out[ind.name] = Measurement(ind.name, ind.value, True, "", ind.samples, ind.distribution)
        else:
            out[ind.name] = Measurement(ind.name, None, False, _unmeasured(ind.message))
    return out


def _unmeasured(message: str) -> str:
    return message.removeprefix("could not measure: ") or "could not be measured then"


def replay(
    slo: Slo,
    stored: Sequence[StoredEvaluation],
    *,
    rules: DataRules | None = None,
    exclude_inconclusive: bool = True,
) -> ReplayReport:
    """Re-score ``stored`` (oldest first) under ``slo``.

    The comparison history of each build is the replayed results before it (leaving out what
    ``comparison_history`` leaves out when ``exclude_inconclusive``, as the evaluate service
    does). Failed tests stay failed. ``rules``: the stage's data rules (for the inconclusive marker).
    """
    replayed: list[EvaluationResult] = []
    builds: list[ReplayedBuild] = []
    for item in stored:
        old = item.result
        values = _measurements(old)
        missing = tuple(dict.fromkeys(o.sli for o in slo.objectives if o.sli not in values))
        measurements = [*values.values(), *(Measurement(n, None, False, NOT_MEASURED_THEN) for n in missing)]
        history = comparison_history(replayed) if exclude_inconclusive else list(replayed)
        new = evaluate(
            slo, measurements, history, old.test_failed, subject=old.subject, rules=rules,
        )
        replayed.append(new)
        before = {i.name: i.status for i in old.indicators}
        flips = tuple(  # an indicator missing then is reported once, as not measured then
            Flip(ind.name, before.get(ind.name), ind.status)
            for ind in new.indicators
            if before.get(ind.name) is not ind.status and ind.name not in missing
        )
        builds.append(
            ReplayedBuild(
                id=old.id, image=item.image, time=item.time, stored=old.result, stored_score=old.score,
                stored_inconclusive=old.inconclusive, replayed=new, flips=flips, not_measured_then=missing,
            )
        )
    return ReplayReport(tuple(builds))
