"""Keptn 0.6's quality-gates tutorial, literally: the `sluice` lines of
examples/keptn-tutorial/tutorial.sh run in order on the embedded default (`sluice up` with a real
Prometheus; the tests are the tutorial's JMeter plans, run by a real JMeter), waiting for each
delivery to end, then the story is checked."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sluice.adapters.state.local import LocalStore
from sluice.core.sli_config import SliConfig
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "examples" / "keptn-tutorial"
CARTS = "docker.io/keptnexamples/carts"

def sli_config_for(records: Records, project: str, stage: str, service: str, provider: str) -> SliConfig:
    """The merged queries ``provider`` reads for a service in a stage, as its module parses them."""
    from sluice.adapters.secrets.memory import MemorySecrets
    from sluice.adapters.sli import dynatrace, prometheus
    from sluice.config import Settings
    from sluice.services.sli_config import provider_context

    ctx = provider_context(Settings(), records, MemorySecrets, project, stage, service)
    return {"prometheus": prometheus.queries, "dynatrace": dynatrace.queries}[provider](ctx)


pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tutorial_commands() -> list[list[str]]:
    """The script's commands, in order (comments and shell settings left out)."""
    lines = [line.strip() for line in (TUTORIAL / "tutorial.sh").read_text().splitlines()]
    return [shlex.split(line) for line in lines if line.startswith("sluice ")]


def wait_for_end(records: Records, context: str, timeout_s: float = 300.0) -> None:
    """Until the delivery's last `done` (rolled back / failed anywhere, or promoted in production)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in records.events(context):
            data = event.get("data") or {}
            if event.get("type") == "sh.keptn.events.done" and (
                data.get("outcome") != "promoted" or data.get("stage") == "production"
            ):
                return
        time.sleep(0.5)
    raise AssertionError(f"delivery {context} did not end within {timeout_s:g} s: {records.events(context)[-3:]}")


@pytest.fixture(scope="module")
def story(tmp_path_factory):  # type: ignore[no-untyped-def]
    assert shutil.which("prometheus"), "the prometheus binary is missing: 'make test' installs it (apt-get install prometheus)"
    from sluice.services.jmeter import DEFAULT_JMETER

    assert DEFAULT_JMETER.exists(), "Apache JMeter is missing: 'make jmeter' installs it (make test does)"
    state = tmp_path_factory.mktemp("tutorial") / "state"
    port = free_port()
    env = {**os.environ, "SLUICE_STATE_DIR": str(state), "SLUICE_BROKER_URL": f"http://127.0.0.1:{port}/sluice/default",
           "SLUICE_IMAGE_MAP": str(ROOT / "examples" / "sockshop" / "images.yaml")}
    sluice = [sys.executable, "-m", "sluice.cli.main"]
    up = subprocess.run([*sluice, "up", "--port", str(port), "--tick", "2", "--perf-duration", "5",
                         "--sli-provider", "prometheus"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    records = Records(LocalStore(state))
    transcript: list[tuple[list[str], str]] = []
    try:
        for argv in tutorial_commands():
            run = subprocess.run([*sluice, *argv[1:]], cwd=TUTORIAL, env=env, capture_output=True, text=True, timeout=120)
            assert run.returncode == 0, f"{shlex.join(argv)} failed:\n{run.stdout}\n{run.stderr}"
            transcript.append((argv, run.stdout))
            if argv[1:3] == ["send", "event"]:
                found = re.search(r"Delivery context: (\S+)", run.stdout)
                assert found, run.stdout
                wait_for_end(records, found.group(1))
        yield transcript, records
    finally:
        subprocess.run([*sluice, "down"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def contexts_by_tag(records: Records) -> dict[str, str]:
    out = {}
    for context in records.contexts("sockshop", "carts"):
        first = records.events(context)[0]
        out[first["data"]["valuesCanary"]["image"].rsplit(":", 1)[1]] = context
    return out


def test_the_commands_are_the_tutorials(story) -> None:  # type: ignore[no-untyped-def]
    """Every step the issue names ran: create, onboard --chart, slo.yaml, prometheus/sli.yaml, 0.10.2, 0.10.3."""
    transcript, _ = story
    ran = [shlex.join(argv) for argv, _ in transcript]
    assert ran[0] == "sluice create project sockshop --shipyard=./shipyard.yaml"
    assert ran[1] == "sluice onboard service carts --project=sockshop --chart=./carts"
    assert any(r.endswith("--resourceUri=slo.yaml") for r in ran)
    assert any(r.endswith("--resourceUri=prometheus/sli.yaml") for r in ran)
    assert [r.rsplit("--tag=", 1)[1] for r in ran if "new-artifact" in r] == ["0.10.1", "0.10.2", "0.10.3"]
    assert "Workload from --chart ./carts for stages dev, staging, production" in transcript[1][1]
    assert any(r.endswith("--resourceUri=jmeter/load.jmx") for r in ran)


def test_the_jmeter_plans_ran(story) -> None:  # type: ignore[no-untyped-def]
    """dev ran jmeter/basiccheck.jmx and staging jmeter/load.jmx with a real JMeter (2 users x 30)."""
    _, records = story
    for context in records.contexts("sockshop", "carts"):
        tested = {e["data"]["stage"]: e["data"]["message"] for e in records.events(context)
                  if e["type"] == "sh.keptn.events.tests-finished"}
        assert "jmeter/basiccheck.jmx: 60 requests, 0 errors" in tested["dev"]
        assert "jmeter/load.jmx: 60 requests" in tested["staging"]


def test_slow_build_is_stopped_by_the_users_promql(story) -> None:  # type: ignore[no-untyped-def]
    """0.10.2 fails the staging gate on response_time_p95, measured by the tutorial's own
    prometheus/sli.yaml query (its handler label), and never reaches production."""
    _, records = story
    context = contexts_by_tag(records)["0.10.2"]
    [evaluation] = [e for e in records.evaluations("sockshop", "staging", "carts") if e["context"] == context]
    assert evaluation["result"] == "fail"
    p95 = next(i for i in evaluation["indicators"] if i["name"] == "response_time_p95")
    assert p95["status"] == "fail" and p95["value"] > 1000
    asked = [e["data"] for e in records.events(context) if e["type"].endswith("get-sli") and e["data"]["stage"] == "staging"]
    assert asked and all(d["sliProvider"] == "prometheus" for d in asked)
    query = sli_config_for(records, "sockshop", "staging", "carts", "prometheus").query("response_time_p95")
    assert query is not None and 'handler="/carts/{id}/items"' in query  # the tutorial's file, not the built-in
    for c in records.contexts("sockshop", "carts"):
        for e in records.events(c):
            if (e.get("data") or {}).get("stage") == "production":
                assert "0.10.2" not in str(e["data"]), "production saw 0.10.2"


def test_fast_build_reaches_production(story) -> None:  # type: ignore[no-untyped-def]
    """At the end every stage serves 0.10.3 and staging's last evaluation passed."""
    _, records = story
    from sluice.services.readmodel import project_status

    view = project_status(records, "sockshop")
    primaries = {s["name"]: s["services"][0]["primary"]["image"] for s in view["stages"]}
    assert primaries == {"dev": f"{CARTS}:0.10.3", "staging": f"{CARTS}:0.10.3", "production": f"{CARTS}:0.10.3"}
    staging = next(s for s in view["stages"] if s["name"] == "staging")["services"][0]
    assert staging["last_evaluation"]["result"] == "pass"
