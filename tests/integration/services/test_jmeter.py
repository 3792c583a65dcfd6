"""JMeter plans in tests.yaml: a real Apache JMeter 5 (installed by `make jmeter`) runs a real
small .jmx against a real local HTTP target; results become the report and the measurements."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.httptarget import TargetServer

from sluice.core.strategies import DeploymentStrategy, TestStrategy
from sluice.core.testspec import JMeterPlans, parse_test_spec
from sluice.errors import ValidationError
from sluice.services.jmeter import DEFAULT_JMETER, parse_results
from sluice.services.testing import run_tests

ROOT = Path(__file__).resolve().parents[3]
BASICCHECK = (ROOT / "examples" / "keptn-tutorial" / "jmeter" / "basiccheck.jmx").read_text()
LOAD = (ROOT / "examples" / "keptn-tutorial" / "jmeter" / "load.jmx").read_text()



@pytest.fixture(scope="module")
def jmeter() -> str:
    assert DEFAULT_JMETER.exists(), f"Apache JMeter is missing at {DEFAULT_JMETER}: 'make jmeter' installs it (make test does)"
    return str(DEFAULT_JMETER)


def _spec(**jmeter: object) -> object:
    return parse_test_spec({"health": {"path": "/health"}, "jmeter": jmeter})


def test_health_and_load_plans_pass_with_measurements(jmeter) -> None:  # type: ignore[no-untyped-def]
    """basiccheck.jmx then load.jmx (2 users x 5 loops each): every sample reaches the target (with server, port and
    protocol passed as Keptn did), the report counts them, the measurements give percentiles."""
    spec = _spec(health="jmeter/basiccheck.jmx", performance="jmeter/load.jmx", properties={"VUCount": 2, "LoopCount": 5})
    with TargetServer() as server:
        report = run_tests(spec, "performance", server.url, 300, jmeter=jmeter,  # type: ignore[arg-type]
                           plans={"jmeter/basiccheck.jmx": BASICCHECK, "jmeter/load.jmx": LOAD})
        answered = server.requests
    assert report.passed, report.message
    assert "jmeter/basiccheck.jmx: 10 requests, 0 errors" in report.message
    assert "jmeter/load.jmx: 10 requests, 0 errors" in report.message
    assert report.measurements["requests"] == 10 and report.measurements["error_rate"] == 0
    assert 0 < report.measurements["response_time_p50"] <= report.measurements["response_time_p95"]
    assert answered >= 21  # the health poll, 10 basic checks, 10 load requests: all reached the target


def test_errors_fail_the_plan_with_the_failures(jmeter) -> None:  # type: ignore[no-untyped-def]
    """A health plan whose requests get 500s fails the run, quoting what failed."""
    spec = _spec(functional="jmeter/basiccheck.jmx", properties={"CHECK_PATH": "/status/500", "LoopCount": 3})
    with TargetServer() as server:
        report = run_tests(spec, "functional", server.url, 300, jmeter=jmeter,  # type: ignore[arg-type]
                           plans={"jmeter/basiccheck.jmx": BASICCHECK})
    assert not report.passed
    assert "3 requests, 3 errors (100.0%)" in report.message and "500" in report.message


def test_the_time_limit_stops_jmeter(jmeter) -> None:  # type: ignore[no-untyped-def]
    """A plan longer than the hard limit is stopped, and the run fails saying so."""
    spec = _spec(performance="jmeter/load.jmx", properties={"VUCount": 1, "LoopCount": 100000, "THINK_MS": 100})
    with TargetServer() as server:
        report = run_tests(spec, "performance", server.url, 25, jmeter=jmeter,  # type: ignore[arg-type]
                           plans={"jmeter/load.jmx": LOAD})
    assert not report.passed and "stopped at the hard time limit" in report.message


def test_without_jmeter_the_message_names_what_to_install(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No JMeter at the configured place: the test fails naming `make jmeter` and the packages."""
    spec = _spec(performance="jmeter/load.jmx")
    with TargetServer() as server:
        report = run_tests(spec, "performance", server.url, 60, jmeter=str(tmp_path / "jmeter"),  # type: ignore[arg-type]
                           plans={"jmeter/load.jmx": LOAD})
    assert not report.passed
    assert "JMeter is not installed" in report.message and "make jmeter" in report.message and "maven" in report.message


def test_a_plan_not_stored_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A plan named in tests.yaml but not added as a resource: the run says which and how to add it."""
    spec = _spec(performance="jmeter/load.jmx")
    with TargetServer() as server:
        report = run_tests(spec, "performance", server.url, 60, jmeter=str(tmp_path / "jmeter"), plans={})  # type: ignore[arg-type]
    assert not report.passed and "jmeter/load.jmx" in report.message and "--resourceUri=jmeter/load.jmx" in report.message


def test_jmeter_section_is_validated() -> None:
    """Plans must be jmeter/<name>.jmx; server/port/protocol are Sluice's; unknown keys are named."""
    with pytest.raises(ValidationError) as err:
        parse_test_spec({"jmeter": {"performance": "load.jmx", "health": "jmeter/../x.jmx", "properties": {"server": "x"},
                                    "color": 1}})
    text = str(err.value)
    assert "jmeter.performance" in text and "jmeter.health" in text and "'server'" in text and "jmeter.color" in text
    spec = parse_test_spec({"jmeter": {"performance": "jmeter/load.jmx", "max_error_rate": "5%"}})
    assert spec.jmeter == JMeterPlans(performance="jmeter/load.jmx", max_error_rate=0.05)
    assert spec.jmeter.plans("performance") == ("jmeter/load.jmx",) and spec.jmeter.plans("functional") == ()


def test_results_file_parsing() -> None:
    """JMeter's CSV results: requests, errors with their messages, percentiles and throughput."""
    header = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes"
    rows = [f"{1000 + i * 100},{10 + i},get,200,OK,t,text,true,,5" for i in range(9)]
    rows.append("2000,50,post,503,Service Unavailable,t,text,false,boom,5")
    run = parse_results("p.jmx", "\n".join([header, *rows]))
    assert (run.requests, run.errors) == (10, 1) and run.failures == ("post: 503 boom",)
    assert run.measurements["throughput"] == pytest.approx(10 / 1.05, rel=1e-3)
    assert run.measurements["response_time_p95"] >= run.measurements["response_time_p50"] >= 10
    assert parse_results("p.jmx", "").requests == 0


def test_the_test_unit_runs_the_stored_plans(jmeter, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The test unit reads tests.yaml and the plans it names from the stage's resources, runs
    them with the configured JMeter, and reports the plan's measurements for the builtin SLIs."""
    from sluice.config import Settings
    from sluice.core.events import DeploymentFinished
    from sluice.functions.runtime import Runtime
    from sluice.functions.testworker import make_runner

    runtime = Runtime(Settings(state_dir=str(tmp_path), jmeter=jmeter, test_limit_s=300), "test")
    records = runtime.records
    records.create_project("sockshop", "stages: [{name: staging}]", {"stages": [{"name": "staging"}]})
    records.put_resource("sockshop", "staging", "carts", "tests.yaml",
                         "jmeter:\n  performance: jmeter/load.jmx\n  properties: {VUCount: 1, LoopCount: 4}\n")
    records.put_resource("sockshop", "staging", "carts", "jmeter/load.jmx", LOAD)
    with TargetServer() as server:
        deployed = DeploymentFinished(project="sockshop", stage="staging", service="carts", image="carts", tag="1",
                                      teststrategy=TestStrategy.PERFORMANCE, deploymentstrategy=DeploymentStrategy.BLUE_GREEN,
                                      deploymentURILocal=server.url)
        outcome = make_runner(runtime)(deployed, "c1")
    assert outcome.result == "pass", outcome.message
    assert "jmeter/load.jmx: 4 requests, 0 errors" in outcome.message and outcome.measurements["requests"] == 4


def test_sluice_test_runs_the_plans_beside_the_spec(jmeter, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`sluice test --spec examples/keptn-tutorial/tests.yaml` finds jmeter/basiccheck.jmx beside it."""
    from sluice.cli.main import main

    monkeypatch.setenv("SLUICE_JMETER", jmeter)
    with TargetServer() as server:
        code = main(["test", "--spec", str(ROOT / "examples" / "keptn-tutorial" / "tests.yaml"), "--url", server.url,
                     "--strategy", "functional", "--output", "json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "jmeter/basiccheck.jmx: 60 requests, 0 errors" in out
