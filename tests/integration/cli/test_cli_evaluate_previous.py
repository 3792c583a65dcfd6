"""``sluice evaluate --previous``: both forms of the flag give the gate every earlier evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.cli.main import main

SLO = """
comparison: {compare_with: several_results, number_of_comparison_results: 3, include_result_with_score: all}
objectives:
  - sli: rt
    pass: [{criteria: ["<=+10%"]}]
total_score: {pass: "90%"}
"""


def _evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main(["evaluate", *argv])
    out, err = capsys.readouterr()
    assert code in (0, 1, 3), err
    return code, json.loads(out)


def _history(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[str, str, str, str]:
    slo = tmp_path / "slo.yaml"
    slo.write_text(SLO, encoding="utf-8")
    paths = []
    for name, value in (("eval1", 100), ("eval2", 300)):
        values = tmp_path / f"{name}-values.json"
        values.write_text(json.dumps({"rt": value}), encoding="utf-8")
        _, doc = _evaluate(capsys, "--slo", str(slo), "--sli", str(values), "--output", "json", "--id", name)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        paths.append(str(path))
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"rt": 215}), encoding="utf-8")
    return str(slo), str(values), paths[0], paths[1]


def test_readme_form_repeated_previous_keeps_every_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The README's form ``--previous eval1.json --previous eval2.json`` compares with both evaluations."""
    slo, values, eval1, eval2 = _history(capsys, tmp_path)
    # exactly the README's command line, with the files in a temporary directory
    code, doc = _evaluate(capsys, "--slo", slo, "--sli", values, "--previous", eval1, "--previous", eval2, "--output", "json")
    assert doc["comparison"]["compared_evaluations"] == ["eval2", "eval1"]  # type: ignore[index]
    # the average of 100 and 300 is 200; 215 <= 220 passes (with eval2 alone, 300, it would pass too;
    # with eval1 alone, 100 → 110, it would fail): the baseline value proves both were used
    assert doc["indicators"][0]["comparison"]["value"] == 200  # type: ignore[index]
    assert code == 0


def test_space_separated_previous_keeps_every_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--previous a b`` (one flag, several files) compares with both evaluations too."""
    slo, values, eval1, eval2 = _history(capsys, tmp_path)
    _, doc = _evaluate(capsys, "--slo", slo, "--sli", values, "--previous", eval1, eval2, "--output", "json")
    assert doc["comparison"]["compared_evaluations"] == ["eval2", "eval1"]  # type: ignore[index]


def test_mixed_forms_keep_order_oldest_first(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--previous a --previous b c`` keeps a, b, c in that order (oldest first)."""
    slo, values, eval1, eval2 = _history(capsys, tmp_path)
    _, doc = _evaluate(
        capsys, "--slo", slo, "--sli", values, "--previous", eval1, "--previous", eval2, eval1, "--output", "json"
    )
    # newest first: the last file named comes first
    assert doc["comparison"]["compared_evaluations"] == ["eval1", "eval2", "eval1"]  # type: ignore[index]
