"""``sluice evaluate``: the inconclusive marker and its reasons, ``--strict-data`` (exit 4), and the
what-if ``--replay`` of a stored history, in text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.stories import write_stories

from sluice.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "quality-gate"
SLO = str(EXAMPLES / "slo.yaml")
TUTORIAL_SLO = ROOT / "examples" / "sockshop" / "slo.yaml"


def sluice(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["evaluate", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_unmeasured_prints_the_marker_and_keeps_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    """An unmeasured SLI: the text says INCONCLUSIVE with the reason; the exit code is still the verdict's (1)."""
    code, out, _ = sluice(capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-unmeasured.yaml"))
    assert code == 1
    assert "INCONCLUSIVE" in out and "the gate could not judge" in out
    assert "response_time_p95" in out.split("INCONCLUSIVE", 1)[1]


def test_strict_data_exits_4_on_inconclusive(capsys: pytest.CaptureFixture[str]) -> None:
    """--strict-data: inconclusive exits 4, whatever the verdict; JSON carries the marker and reasons."""
    code, out, _ = sluice(capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-unmeasured.yaml"), "--strict-data", "--output", "json")
    doc = json.loads(out)
    assert code == 4
    assert doc["inconclusive"] is True and doc["inconclusive_reasons"][0]["kind"] == "not_measured"


def test_strict_data_leaves_a_conclusive_gate_alone(capsys: pytest.CaptureFixture[str]) -> None:
    """A fully measured pass exits 0 with or without --strict-data, and prints no marker."""
    for extra in ((), ("--strict-data",)):
        code, out, _ = sluice(capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-pass.yaml"), *extra)
        assert code == 0 and "INCONCLUSIVE" not in out


def test_samples_in_the_values_file_and_min_samples(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A value with samples below --min-samples is inconclusive (exit 4 when strict); enough samples is not."""
    thin = write(tmp_path, "thin.yaml", "response_time_p95: {value: 350, samples: 20}\n")
    code, out, _ = sluice(capsys, "--slo", SLO, "--sli", thin, "--strict-data")
    assert code == 4 and "only 20 request(s) measured, fewer than the 100" in out
    code, _, _ = sluice(capsys, "--slo", SLO, "--sli", thin, "--strict-data", "--min-samples", "20")
    assert code == 0


def test_no_baseline_inconclusive(capsys: pytest.CaptureFixture[str]) -> None:
    """--no-baseline inconclusive: the first evaluation of a relative criterion is inconclusive (exit 4 strict)."""
    code, out, _ = sluice(capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-pass.yaml"), "--strict-data",
                          "--no-baseline", "inconclusive", "--output", "json")
    assert code == 4 and json.loads(out)["inconclusive_reasons"][0]["kind"] == "no_baseline"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("--slo", SLO), "--sli is required"),
        (("--slo", SLO, "--replay", "--project", "p"), "--replay needs --stage, --service"),
        (("--slo", SLO, "--sli", SLO, "--project", "p"), "go with --replay"),
        (("--slo", SLO, "--sli", SLO, "--min-samples", "-1"), "--min-samples: expected a whole number >= 0"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], fragment: str) -> None:
    """Flags that do not go together are one sentence and exit 2."""
    code, _, err = sluice(capsys, *argv)
    assert code == 2 and fragment in err


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_stories(tmp_path_factory.mktemp("state")).state_dir)


def test_replay_text_shows_each_build_and_the_summary(capsys: pytest.CaptureFixture[str], tmp_path: Path, state_dir: str) -> None:
    """The README/docs command: a looser SLO would have let 0.10.2 through — per build and in the summary."""
    looser = TUTORIAL_SLO.read_text().replace('"<600"', '"<1200"').replace('- "<=+10%"', "")
    looser = looser.replace("    comparison:\n      method: mann_whitney\n      confidence: 0.95\n", "")
    new = write(tmp_path, "looser.yaml", looser)
    code, out, err = sluice(capsys, "--replay", "--project", "sockshop", "--stage", "staging", "--service", "carts",
                            "--slo", new, "--state-dir", state_dir)
    assert code == 0, err
    lines = out.splitlines()
    row = next(line for line in lines if "0.10.2" in line)
    assert "fail 0" in row and "pass 100" in row and "fail→pass" in row and "response_time_p95: fail → pass" in row
    assert "Summary: 3 build(s): 2 unchanged, 0 pass→fail, 1 fail→pass" in out


def test_replay_json_last(capsys: pytest.CaptureFixture[str], tmp_path: Path, state_dir: str) -> None:
    """--output json --last 1: the newest build with stored and replayed results, and the summary."""
    stricter = write(tmp_path, "stricter.yaml", TUTORIAL_SLO.read_text().replace('"<=+10%"', '"<=+5%"'))
    code, out, _ = sluice(capsys, "--replay", "--project", "sockshop", "--stage", "staging", "--service", "carts",
                          "--slo", stricter, "--last", "1", "--output", "json", "--state-dir", state_dir)
    doc = json.loads(out)
    assert code == 0
    (build,) = doc["builds"]
    assert build["image"].endswith(":0.10.3") and build["transition"] == "pass→fail"
    assert build["stored"]["result"] == "pass" and build["replayed"]["result"] == "fail"
    assert doc["summary"]["pass_to_fail"] == 1


def test_replay_of_an_unknown_service_exits_2(capsys: pytest.CaptureFixture[str], state_dir: str) -> None:
    """Replaying what does not exist is one sentence naming it, exit 2."""
    code, _, err = sluice(capsys, "--replay", "--project", "sockshop", "--stage", "staging", "--service", "orders",
                          "--slo", str(TUTORIAL_SLO), "--state-dir", state_dir)
    assert code == 2 and "service 'orders' is not onboarded" in err
