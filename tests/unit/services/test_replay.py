"""What-if replay of the tutorial's stored history (0.10.1 pass, 0.10.2 fail, 0.10.3 pass, written
by the real services) under a looser and a stricter SLO: the flips, the rebuilt comparison history,
"not measured then", and nothing written."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.stories import Stories, write_stories

from sluice.adapters.state.local import LocalStore
from sluice.core.replay import NOT_MEASURED_THEN, StoredEvaluation, replay
from sluice.core.scoring import EvaluationResult, IndicatorStatus, Measurement, Subject, Verdict, evaluate
from sluice.core.slo import Slo, parse_slo
from sluice.errors import NotFoundError
from sluice.services.records import Records
from sluice.services.replay import replay_history

ROOT = Path(__file__).resolve().parents[3]
TUTORIAL: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "sockshop" / "slo.yaml").read_text())


def variant(p95_pass: list[str], **comparison: Any) -> Slo:
    doc = copy.deepcopy(TUTORIAL)
    doc["comparison"].update(comparison)
    for obj in doc["objectives"]:
        if obj["sli"] == "response_time_p95":
            obj["pass"] = [{"criteria": p95_pass}]
            if not any(c.startswith(("<=+", "<+", ">=-", ">-")) for c in p95_pass):
                obj.pop("comparison", None)
    return parse_slo(doc, "new-slo.yaml")


LOOSER = variant(["<1200"])  # no relative criterion, a far higher bound: 0.10.2 would have passed
STRICTER = variant(["<=+5%", "<600"])  # 0.10.3's +8 % over 0.10.1 is now too much


@pytest.fixture(scope="module")
def stories(tmp_path_factory: pytest.TempPathFactory) -> Stories:
    return write_stories(tmp_path_factory.mktemp("state"))


@pytest.fixture
def records(stories: Stories) -> Records:
    return Records(LocalStore(stories.state_dir))


def tags(report: Any) -> list[str]:
    return [b.image.rsplit(":", 1)[-1] for b in report.builds]


def test_the_same_slo_changes_nothing(records: Records) -> None:
    """Replayed under the SLO it was judged with, every build keeps its verdict and score."""
    report, skipped = replay_history(records, "sockshop", "staging", "carts", parse_slo(TUTORIAL, "slo.yaml"))
    assert skipped == []
    assert tags(report) == ["0.10.1", "0.10.2", "0.10.3"]
    assert [(b.stored.value, b.replayed.result.value) for b in report.builds] == [
        ("pass", "pass"), ("fail", "fail"), ("pass", "pass")]
    assert all(b.stored_score == b.replayed.score and not b.flips for b in report.builds)
    assert report.transitions == {"unchanged": 3}


def test_looser_slo_lets_the_slow_build_through(records: Records) -> None:
    """Without the relative criterion and with < 1200 ms, 0.10.2 flips fail → pass on its p95 objective;
    the comparison history is rebuilt from the replayed verdicts (0.10.3 now compares with 0.10.2)."""
    report, _ = replay_history(records, "sockshop", "staging", "carts", LOOSER)
    slow = report.builds[1]
    assert slow.transition == "fail→pass"
    assert [(f.sli, f.before, f.after) for f in slow.flips] == [
        ("response_time_p95", IndicatorStatus.FAIL, IndicatorStatus.PASS)]
    fast = report.builds[2]
    assert fast.transition == "unchanged"
    assert fast.replayed.comparison is not None
    assert fast.replayed.comparison.compared_evaluations == (slow.id,)  # include_result_with_score: pass
    summary = report.to_dict()["summary"]
    assert summary["fail_to_pass"] == 1 and summary["pass_to_fail"] == 0 and summary["unchanged"] == 2  # type: ignore[index]


def test_stricter_slo_rejects_the_fast_build(records: Records) -> None:
    """With <=+5 %, 0.10.3 (52 ms against 48 ms) flips pass → fail (its p95 falls to warning, score 50)."""
    report, _ = replay_history(records, "sockshop", "staging", "carts", STRICTER)
    assert [b.transition for b in report.builds] == ["unchanged", "unchanged", "pass→fail"]
    fast = report.builds[2]
    assert fast.replayed.score == 50
    assert [(f.sli, f.before, f.after) for f in fast.flips] == [
        ("response_time_p95", IndicatorStatus.PASS, IndicatorStatus.WARNING)]
    assert report.to_dict()["summary"]["pass_to_fail"] == 1  # type: ignore[index]


def test_last_shows_the_newest_but_replays_everything(records: Records) -> None:
    """--last 1 shows 0.10.3 only, judged against the history replayed before it."""
    report, _ = replay_history(records, "sockshop", "staging", "carts", LOOSER, last=1)
    assert tags(report) == ["0.10.3"]
    assert report.builds[0].replayed.comparison is not None and report.builds[0].replayed.comparison.compared_evaluations


def test_indicators_missing_then_are_reported_never_guessed(records: Records) -> None:
    """An objective on response_time_p99 (never measured then) is 'not measured then' for every build:
    it scores as unmeasured and makes the replay inconclusive — no value is invented."""
    doc = copy.deepcopy(TUTORIAL)
    doc["objectives"].append({"sli": "response_time_p99", "pass": [{"criteria": ["<800"]}]})
    report, _ = replay_history(records, "sockshop", "staging", "carts", parse_slo(doc, "p99.yaml"))
    assert report.missing_data == ("response_time_p99",)
    for b in report.builds:
        assert b.not_measured_then == ("response_time_p99",)
        ind = b.replayed.indicator("response_time_p99")
        assert ind is not None and ind.status is IndicatorStatus.ERROR and ind.value is None
        assert NOT_MEASURED_THEN in ind.message
        assert b.replayed.inconclusive
        assert all(f.sli != "response_time_p99" for f in b.flips)  # reported once, as not measured then
    assert [b.for_lack_of_data for b in report.builds] == [True, False, True]  # pass→fail twice, fail stays fail
    assert report.to_dict()["summary"]["changed_for_lack_of_data"] == 2  # type: ignore[index]


def test_replay_writes_nothing(records: Records, stories: Stories) -> None:
    """The store's files are byte for byte the same after a replay."""
    before = {p: p.read_bytes() for p in stories.state_dir.rglob("*") if p.is_file()}
    replay_history(records, "sockshop", "staging", "carts", STRICTER)
    after = {p: p.read_bytes() for p in stories.state_dir.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize(
    ("project", "stage", "service", "fragment"),
    [("nope", "staging", "carts", "project 'nope' does not exist"),
     ("sockshop", "qa", "carts", "stage 'qa' is not in the shipyard"),
     ("sockshop", "staging", "orders", "service 'orders' is not onboarded")],
)
def test_unknown_names_are_not_found(records: Records, project: str, stage: str, service: str, fragment: str) -> None:
    """Replaying something that does not exist names it; nothing is created."""
    with pytest.raises(NotFoundError, match=fragment):
        replay_history(records, project, stage, service, LOOSER)


def test_inconclusive_replayed_builds_leave_the_comparison_history() -> None:
    """A build the new SLO cannot judge (an unmeasured scored SLI) and that fails is no baseline for the next."""
    slo = parse_slo({
        "comparison": {"compare_with": "single_result", "include_result_with_score": "all"},
        "objectives": [{"sli": "rt", "pass": [{"criteria": ["<=+10%"]}]}, {"sli": "err", "pass": [{"criteria": ["<1"]}]}],
        "total_score": {"pass": "90%"},
    }, "s")

    def stored(ident: str, **values: float | None) -> StoredEvaluation:
        ms = [Measurement(k, v, v is not None, "" if v is not None else "timeout") for k, v in values.items()]
        return StoredEvaluation(evaluate(slo, ms, subject=Subject(id=ident)), image=f"img:{ident}")
    report = replay(slo, [stored("a", rt=100, err=0), stored("b", rt=50, err=None), stored("c", rt=105, err=0)])
    b, c = report.builds[1], report.builds[2]
    assert b.replayed.inconclusive and b.replayed.result is Verdict.FAIL
    assert c.replayed.comparison is not None and c.replayed.comparison.compared_evaluations == ("a",)
    assert c.replayed.result is Verdict.PASS
    kept = replay(slo, [stored("a", rt=100, err=0), stored("b", rt=50, err=None), stored("c", rt=105, err=0)],
                  exclude_inconclusive=False)
    assert kept.builds[2].replayed.result is Verdict.FAIL  # Keptn's history: 105 against b's 50 + 10 %
    assert kept.builds[2].replayed.comparison.compared_evaluations == ("b",)  # type: ignore[union-attr]


def test_round_trip_of_a_replayed_result() -> None:
    """A replayed result is an ordinary evaluation result (JSON round trip)."""
    slo = parse_slo(TUTORIAL, "s")
    r = evaluate(slo, [Measurement("response_time_p95", 50)], subject=Subject(id="x"))
    report = replay(slo, [StoredEvaluation(r, "img", "t")])
    assert EvaluationResult.from_dict(report.builds[0].replayed.to_dict()) == report.builds[0].replayed
