"""``sluice test``: a spec against a URL, its output and its exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.httptarget import TargetServer

from sluice.cli.main import main


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tests.yaml"
    path.write_text(
        "health: {path: /health}\n"
        "functional:\n  - {method: POST, path: /echo, body: hello, expected_text: hello}\n"
        "performance: {rate: 40, duration: 5s, requests: [{path: /}]}\n"
    )
    return path


def test_functional_pass_prints_a_summary_and_exits_0(target: TargetServer, spec: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A passing functional run exits 0 and prints the verdict and a table of requests."""
    assert main(["test", "--spec", str(spec), "--url", target.url]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "health check" in out and "POST /echo" in out


def test_performance_json_output(target: TargetServer, spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--output json prints the report with the builtin measurements; --duration overrides the file."""
    code = main(["test", "--spec", str(spec), "--url", target.url, "--strategy", "performance",
                 "--duration", "500ms", "--output", "json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["result"] == "pass" and report["strategy"] == "performance"
    assert report["load"]["requests"] == 20
    assert set(report["measurements"]) >= {"throughput", "error_rate", "response_time_p95"}


def test_performance_text_shows_the_load_table(target: TargetServer, spec: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The text summary of a performance run has the load table with the percentiles."""
    assert main(["test", "--spec", str(spec), "--url", target.url, "--strategy", "performance",
                 "--duration", "0.3s"]) == 0
    out = capsys.readouterr().out
    assert "latency p95 (ms)" in out and "throughput (req/s)" in out


def test_failing_test_exits_1(target: TargetServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A failed request makes the exit code 1 and the output says why."""
    path = tmp_path / "tests.yaml"
    path.write_text("functional:\n  - {path: /status/500}\n")
    assert main(["test", "--spec", str(path), "--url", target.url, "--output", "json"]) == 1
    assert "expected status 200, found 500" in json.loads(capsys.readouterr().out)["message"]


def test_default_spec_without_spec_flag(target: TargetServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --spec the default spec runs and the output says so."""
    assert main(["test", "--url", target.url]) == 0
    assert "default test spec" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "extra", "expected"),
    [
        ("performance: {rate: 0}\n", [], "performance.rate: expected a number > 0, found 0"),
        ("health: [\n", [], "not valid YAML"),
        (None, [], "cannot read the file"),
        ("{}\n", ["--duration", "soon"], "--duration"),
        ("{}\n", ["--url", "localhost"], "base URL"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None,
                           extra: list[str], expected: str) -> None:
    """An invalid or unreadable spec, or a bad flag, exits 2 and lists the problem on stderr."""
    path = tmp_path / "tests.yaml"
    if content is not None:
        path.write_text(content)
    args = ["test", "--spec", str(path), "--url", "http://127.0.0.1:1", *extra]
    assert main(args) == 2
    assert expected in capsys.readouterr().err
