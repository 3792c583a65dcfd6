"""End to end: the tutorial through `sluice up` — the real broker, function processes, local backend."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.adapters.state.local import LocalStore
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[2]
CARTS = "docker.io/keptnexamples/carts"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["builtin", "prometheus"])
def story(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    """The demo, with SLIs from the test's own measurements and from a real Prometheus."""
    if request.param == "prometheus":
        import shutil

        assert shutil.which("prometheus"), "the prometheus binary is missing: 'make test' installs it (apt-get install prometheus)"
    state = tmp_path_factory.mktemp("demo") / "state"
    run = subprocess.run(
        [sys.executable, "-m", "sluice.cli.demo", "--state-dir", str(state), "--port", str(free_port()),
         "--perf-duration", "5", "--sli-provider", request.param],
        cwd=ROOT, capture_output=True, text=True, timeout=540,
    )
    assert run.returncode == 0, f"demo failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    return run.stdout, Records(LocalStore(state))


def contexts_by_image(records: Records) -> dict[str, str]:
    out = {}
    for context in records.contexts("sockshop", "carts"):
        first = records.events(context)[0]
        out[first["data"]["valuesCanary"]["image"].rsplit(":", 1)[1]] = context
    return out


def test_slow_build_is_rejected_in_staging_and_never_reaches_production(story) -> None:  # type: ignore[no-untyped-def]
    """0.10.2 fails the staging gate on response_time_p95; staging goes back to 0.10.1; production never gets it."""
    _, records = story
    context = contexts_by_image(records)["0.10.2"]
    evaluations = [e for e in records.evaluations("sockshop", "staging", "carts") if e["context"] == context]
    assert [e["result"] for e in evaluations] == ["fail"]
    failing = [i["name"] for i in evaluations[0]["indicators"] if i["status"] == "fail"]
    assert failing == ["response_time_p95"]
    assert next(i for i in evaluations[0]["indicators"] if i["name"] == "response_time_p95")["value"] > 1000
    events = records.events(context)
    rolled = [e for e in events if e["type"] == "sh.keptn.events.done" and e["data"]["stage"] == "staging"]
    assert [e["data"]["outcome"] for e in rolled] == ["rolled_back"]
    assert f"serves {CARTS}:0.10.1 again" in rolled[0]["data"]["message"]
    for c in records.contexts("sockshop", "carts"):
        for e in records.events(c):
            if e["data"].get("stage") == "production":
                assert "0.10.2" not in str(e["data"]), "production saw 0.10.2"


def test_fast_build_reaches_production(story) -> None:  # type: ignore[no-untyped-def]
    """At the end every stage runs 0.10.3 as its primary, and the state says so after the demo."""
    _, records = story
    from sluice.services.readmodel import project_status

    view = project_status(records, "sockshop")
    primaries = {s["name"]: s["services"][0]["primary"]["image"] for s in view["stages"]}
    assert primaries == {"dev": f"{CARTS}:0.10.3", "staging": f"{CARTS}:0.10.3", "production": f"{CARTS}:0.10.3"}
    staging = next(s for s in view["stages"] if s["name"] == "staging")["services"][0]
    assert staging["candidate"] is None and staging["last_evaluation"]["result"] == "pass"


def test_every_delivery_log_is_a_chain_without_gaps(story) -> None:  # type: ignore[no-untyped-def]
    """Each delivery's log starts with the CLI's event and every later event's cause is in the log."""
    _, records = story
    for tag, context in contexts_by_image(records).items():
        events = records.events(context)
        assert events[0]["source"] == "sluice/cli", tag
        ids = {e["id"] for e in events}
        assert all(e.get("triggeredid") in ids for e in events[1:]), tag
        assert events[-1]["type"] == "sh.keptn.events.done", tag


def test_demo_prints_the_timeline_and_the_final_state(story) -> None:  # type: ignore[no-untyped-def]
    """The demo's output tells the story: the rollback, the failing SLI and the final primaries."""
    stdout, _ = story
    assert "ROLLED BACK in staging" in stdout
    assert "evaluation FAIL in staging" in stdout and "failing: response_time_p95" in stdout
    assert "PROMOTED in production: docker.io/keptnexamples/carts:0.10.3" in stdout


def test_recorded_urls_serve_their_versions_after_sluice_up(story) -> None:  # type: ignore[no-untyped-def]
    """After the demo (which ends with `sluice down`), `sluice up` brings back every recorded stage and primary
    URL serving the recorded image, blue/green promotions included (defect 10: the recorded primary_url
    pointed at a stopped process after a promotion, and every stage URL refused after down/up)."""
    import httpx

    from sluice.services.readmodel import project_status

    _, records = story
    state = Path(records.store.directory).parent  # type: ignore[attr-defined]  # <state>/configmaps
    sluice = [sys.executable, "-m", "sluice.cli.main"]
    up = subprocess.run([*sluice, "up", "--state-dir", str(state), "--port", str(free_port()), "--tick", "0"],
                        cwd=ROOT, capture_output=True, text=True, timeout=180)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        served, wanted = {}, {}
        for stage in project_status(records, "sockshop")["stages"]:
            carts = stage["services"][0]
            for what, url in (("primary", carts["primary"]["url"]), ("public", carts["public_url"])):
                if url:
                    wanted[(stage["name"], what)] = carts["primary"]["image"].rsplit(":", 1)[1]
                    served[(stage["name"], what)] = httpx.get(f"{url}/version", timeout=10).json()["version"]
        assert served == wanted and ("production", "primary") in served
    finally:
        subprocess.run([*sluice, "down", "--state-dir", str(state)], cwd=ROOT, capture_output=True, timeout=180)
