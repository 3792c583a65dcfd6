"""``sluice evaluate``: exit codes, JSON and text output, chained gates and clear errors on bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "quality-gate"
SLO = str(EXAMPLES / "slo.yaml")


def sluice(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["evaluate", *argv])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_tutorial_fast_build_passes(capsys: pytest.CaptureFixture[str]) -> None:
    """The tutorial SLO with p95 350 ms passes with score 100 and exit code 0."""
    code, out, err = sluice(capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-pass.yaml"), "--output", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["result"], doc["score"]) == ("pass", 100)
    ind = doc["indicators"][0]
    assert ind["name"] == "response_time_p95" and ind["status"] == "pass" and ind["value"] == 350
    assert "no baseline yet" in ind["message"]


def test_tutorial_slow_build_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """The tutorial SLO with p95 2021 ms fails with score 0 and exit code 1."""
    code, out, _ = sluice(capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-fail.yaml"), "--output", "json")
    assert code == 1
    doc = json.loads(out)
    assert (doc["result"], doc["score"]) == ("fail", 0)


def test_gates_chain_through_previous_outputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The JSON output of one gate is the --previous of the next; relative criteria use it."""
    code, first, _ = sluice(capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-pass.yaml"), "--output", "json", "--id", "e1")
    assert code == 0
    prev = write(tmp_path, "e1.json", first)
    values = write(tmp_path, "v.yaml", "response_time_p95: 400\n")  # < 600 but > 350 + 10 %
    code, out, _ = sluice(capsys, "--slo", SLO, "--sli", values, "--previous", prev, "--output", "json")
    doc = json.loads(out)
    assert code == 1 and doc["result"] == "fail" and doc["score"] == 50  # one objective in warning: 50 < 75
    assert doc["comparison"]["compared_evaluations"] == ["e1"]
    ind = doc["indicators"][0]
    assert ind["comparison"]["value"] == 350 and ind["comparison"]["evaluations"] == ["e1"]
    assert ind["targets"][0] == {"criteria": "<=+10%", "targetValue": pytest.approx(385), "violated": True, "kind": "pass"}


def test_warning_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A warning verdict exits with code 3."""
    slo = write(
        tmp_path,
        "slo.yaml",
        "objectives:\n  - sli: rt\n    pass: [{criteria: ['<600']}]\n    warning: [{criteria: ['<800']}]\n"
        "total_score: {pass: 90%, warning: 50%}\n",
    )
    values = write(tmp_path, "v.json", '{"rt": 700}')
    code, out, _ = sluice(capsys, "--slo", slo, "--sli", values, "--output", "json")
    assert code == 3 and json.loads(out)["result"] == "warning"


def test_failed_tests_force_fail(capsys: pytest.CaptureFixture[str]) -> None:
    """--test-result fail makes the gate fail even with passing SLIs."""
    code, out, _ = sluice(
        capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-pass.yaml"), "--test-result", "fail", "--output", "json"
    )
    assert code == 1 and json.loads(out)["indicators"][0]["status"] == "pass"


def test_unmeasured_sli_is_shown_as_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An SLI that could not be fetched shows status error with the provider's message."""
    code, out, _ = sluice(capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-unmeasured.yaml"))
    assert code == 1
    assert "error" in out and "could not measure" in out


def test_text_output_is_a_table_with_targets(capsys: pytest.CaptureFixture[str]) -> None:
    """The text output names the verdict, score arithmetic, each target and its threshold."""
    code, out, _ = sluice(capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-fail.yaml"))
    assert code == 1
    assert "Quality gate: FAIL" in out and "100 × 0 / 1 = 0" in out
    assert "response_time_p95" in out and "<600 → 600" in out and "<=800 → 800" in out


@pytest.mark.parametrize(
    ("slo_text", "fragments"),
    [
        ("objectives:\n  - sli: rt\n    pass: [\n", ["slo.yaml", "line", "not valid YAML"]),
        (
            "objectives:\n  - sli: rt\n    pass:\n      - criteria: ['~600']\ntotal_score: {pass: 90}\n",
            ["slo.yaml", "objective 'rt'", "pass[0].criteria[0]", "expected an operator"],
        ),
        (
            "objectives:\n  - sli: rt\n    weight: -1\n    pass:\n      - criteria: ['<600']\ntotal_score: {pass: 90}\n",
            ["slo.yaml", "objective 'rt'", "weight", "expected a number of at least 0"],
        ),
        (
            "objectives:\n  - sli: rt\n    pass:\n      - criteria: ['<600']\ntotal_score: {warning: 75}\n",
            ["slo.yaml", "total_score.pass: missing"],
        ),
    ],
)
def test_bad_slo_files_exit_2_naming_file_objective_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, slo_text: str, fragments: list[str]
) -> None:
    """An invalid SLO exits 2 with one line on stderr naming file, objective and field; no traceback."""
    slo = write(tmp_path, "slo.yaml", slo_text)
    code, out, err = sluice(capsys, "--slo", slo, "--sli", str(EXAMPLES / "sli-pass.yaml"))
    assert code == 2 and out == ""
    assert "Traceback" not in err and err.count("\n") == 1
    for fragment in fragments:
        assert fragment in err


def test_bad_values_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A values file with a non-number exits 2 naming the file and the SLI."""
    values = write(tmp_path, "values.yaml", "response_time_p95: fast\n")
    code, _, err = sluice(capsys, "--slo", SLO, "--sli", values)
    assert code == 2 and "values.yaml" in err and "SLI 'response_time_p95'" in err


def test_bad_previous_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A --previous file that is not an evaluation exits 2 naming it."""
    prev = write(tmp_path, "prev.json", '{"result": "maybe"}')
    code, _, err = sluice(capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-pass.yaml"), "--previous", prev)
    assert code == 2 and "prev.json" in err and "result" in err


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A file that does not exist exits 2 with a sentence saying so."""
    code, _, err = sluice(capsys, "--slo", str(tmp_path / "nope.yaml"), "--sli", str(EXAMPLES / "sli-pass.yaml"))
    assert code == 2 and "nope.yaml" in err and "no such file" in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing required flag or a bad choice is a usage error with exit code 2."""
    assert sluice(capsys, "--slo", SLO)[0] == 2
    assert sluice(capsys, "--slo", SLO, "--sli", SLO, "--output", "xml")[0] == 2


def test_console_script_runs_as_a_subprocess() -> None:
    """The installed ``sluice`` script gives exit code 1 for the slow build and 0 for the fast one."""
    script = Path(sys.executable).parent / "sluice"
    if not script.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    fail = subprocess.run(
        [str(script), "evaluate", "--slo", SLO, "--sli", str(EXAMPLES / "sli-fail.yaml"), "--output", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert fail.returncode == 1, fail.stderr
    assert json.loads(fail.stdout)["score"] == 0
    ok = subprocess.run(
        [str(script), "evaluate", "--slo", SLO, "--sli", str(EXAMPLES / "sli-pass.yaml")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert ok.returncode == 0 and "Quality gate: PASS" in ok.stdout


def test_example_previous_evaluation_loads(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped previous-evaluation example is accepted by --previous."""
    code, out, _ = sluice(
        capsys, "--slo", SLO, "--sli", str(EXAMPLES / "sli-fail.yaml"),
        "--previous", str(EXAMPLES / "previous-pass.json"), "--output", "json",
    )
    assert code == 1 and json.loads(out)["comparison"]["compared_evaluations"] == ["eval-0.10.1"]
