"""``sluice up`` / ``sluice down``: the broker and its functions start, answer, and leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.support.broker import process_alive, wait_for
from tests.support.broker_fixtures import ksvc_ref, trigger, write_functions, write_knative

from sluice.embedded.broker.processes import free_port

pytestmark = pytest.mark.slow


def sluice(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_STATE_DIR"}
    return subprocess.run([sys.executable, "-m", "sluice.cli.main", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def system(tmp_path: Path) -> list[str]:
    """Manifests for one function (the ``echo`` target of functions/main.py) and the up options."""
    write_knative(tmp_path / "knative", ["echo"])
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "echo.yaml").write_text(
        trigger("echo", "filters:\n  - exact:\n      source: test/echo\n" + ksvc_ref("fn-echo"))
    )
    return ["--port", str(free_port()), "--state-dir", str(tmp_path / "state"), "--knative", str(tmp_path / "knative"),
            "--triggers", str(tmp_path / "triggers"), "--tick", "0"]


def pids_of(state_dir: Path) -> list[int]:
    state = json.loads((state_dir / "broker" / "state.json").read_text())
    return [state["pid"], *(f["pid"] for f in state["functions"].values())]


def test_up_then_down_leaves_no_process(system: list[str], tmp_path: Path) -> None:
    """``sluice up`` returns once all answer and prints the URL; a second ``up`` says so; ``down`` stops all."""
    state_dir = tmp_path / "state"
    port = system[1]
    up = sluice("up", *system)
    assert up.returncode == 0, up.stderr
    url = up.stdout.strip().splitlines()[-1]
    assert url == f"http://127.0.0.1:{port}/sluice/default"
    pids = pids_of(state_dir)
    assert len(pids) == 2 and all(process_alive(p) for p in pids)
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["functions"].keys() == {"fn-echo"}
    headers = {"ce-specversion": "1.0", "ce-type": "dev.knative.sources.ping", "ce-source": "test/echo", "ce-id": "1",
               "content-type": "application/json"}
    assert httpx.post(url, headers=headers, content="{}", timeout=5).status_code == 202

    again = sluice("up", *system)
    assert again.returncode == 0 and "already up" in again.stdout

    down = sluice("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert "stopped the broker" in down.stdout
    for pid in pids:
        wait_for(lambda p=pid: not process_alive(p), 10, f"process {pid} to end")  # type: ignore[misc]
    assert not (state_dir / "broker" / "state.json").exists()
    assert (state_dir / "logs" / "broker.log").exists() and (state_dir / "logs" / "fn-echo.log").exists()

    twice = sluice("down", "--state-dir", str(state_dir))
    assert twice.returncode == 0 and "not up" in twice.stdout


def test_foreground_stops_everything_on_interrupt(system: list[str], tmp_path: Path) -> None:
    """``sluice up --foreground`` serves until Ctrl-C, then stops its functions too."""
    state_dir = tmp_path / "state"
    process = subprocess.Popen([sys.executable, "-m", "sluice.cli.main", "up", "--foreground", *system],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (state_dir / "broker" / "state.json").exists()
                 and json.loads((state_dir / "broker" / "state.json").read_text()).get("ready"), 60, "ready")
        pids = pids_of(state_dir)
        assert pids[0] == process.pid
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert f"127.0.0.1:{system[1]}/sluice/default" in out
    for pid in pids:
        wait_for(lambda p=pid: not process_alive(p), 10, f"process {pid} to end")  # type: ignore[misc]
    assert not (state_dir / "broker" / "state.json").exists()


def test_port_in_use_is_a_clear_error_and_starts_nothing(system: list[str], tmp_path: Path) -> None:
    """When the port is taken, ``sluice up`` fails with a sentence naming the port and leaves nothing running."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", int(system[1])))
        busy.listen()
        up = sluice("up", *system)
    assert up.returncode != 0
    assert f"port {system[1]}" in up.stderr and "in use" in up.stderr
    assert not (tmp_path / "state" / "broker" / "state.json").exists()


def test_a_function_that_cannot_start_fails_up_with_its_log(system: list[str], tmp_path: Path) -> None:
    """A subscribed function that dies while starting makes ``sluice up`` fail, showing its log, nothing left."""
    bad = tmp_path / "bad.py"
    bad.write_text("raise SystemExit('this source is broken on purpose')\n")
    up = sluice("up", *system, "--source", str(bad))
    assert up.returncode != 0
    assert "fn-echo" in up.stderr
    assert not (tmp_path / "state" / "broker" / "state.json").exists()


def test_down_stops_the_functions_of_a_killed_broker(system: list[str], tmp_path: Path) -> None:
    """If the broker was killed (SIGKILL), ``sluice down`` still stops the functions it had started."""
    state_dir = tmp_path / "state"
    assert sluice("up", *system).returncode == 0
    broker_pid, *functions = pids_of(state_dir)
    os.kill(broker_pid, signal.SIGKILL)
    wait_for(lambda: not process_alive(broker_pid), 10, "the broker to die")
    assert all(process_alive(p) for p in functions)
    down = sluice("down", "--state-dir", str(state_dir))
    assert down.returncode == 0 and "left behind" in down.stdout
    for pid in functions:
        wait_for(lambda p=pid: not process_alive(p), 10, f"process {pid} to end")  # type: ignore[misc]


def _health(port: str) -> dict[str, object]:
    return dict(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json())


def test_a_dead_function_is_visible_restarted_and_up_repairs(tmp_path: Path) -> None:
    """A function process that dies is reported (``/health`` is not ok while it cannot start), restarted by
    the broker's supervisor, and ``sluice up`` on the half-dead system waits for it and says it repaired it
    (defect 8: it said "already up" while the function stayed dead)."""
    record = tmp_path / "record.jsonl"
    source = write_functions(tmp_path, record)
    good = source.read_text()
    write_knative(tmp_path / "knative", ["recorder"])
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "rec.yaml").write_text(
        trigger("rec", "filters:\n  - exact:\n      source: test/rec\n" + ksvc_ref("fn-recorder"))
    )
    port = str(free_port())
    state_dir = tmp_path / "state"
    args = ["--port", port, "--state-dir", str(state_dir), "--knative", str(tmp_path / "knative"),
            "--triggers", str(tmp_path / "triggers"), "--source", str(source), "--tick", "0"]
    assert sluice("up", *args).returncode == 0
    try:
        first = pids_of(state_dir)[1]
        source.write_text("raise SystemExit('broken on purpose while the test kills the function')\n")
        os.killpg(first, signal.SIGKILL)

        def reported_dead() -> bool:
            health = _health(port)
            fn = health["function_health"]["fn-recorder"]  # type: ignore[index]
            return bool(health["status"] == "degraded" and fn["state"] == "dead" and fn["restarts"] >= 1)

        wait_for(reported_dead, 30, "/health to report the dead function")
        source.write_text(good)
        repaired = sluice("up", *args)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert "fn-recorder" in repaired.stdout and "repaired" in repaired.stdout
        assert "already up" not in repaired.stdout
        health = _health(port)
        assert health["status"] == "ok"
        now = pids_of(state_dir)[1]
        assert now != first and process_alive(now)
        headers = {"ce-specversion": "1.0", "ce-type": "t", "ce-source": "test/rec", "ce-id": "after-restart",
                   "content-type": "application/json"}
        assert httpx.post(f"http://127.0.0.1:{port}/sluice/default", headers=headers, content="{}", timeout=5).status_code == 202
        wait_for(lambda: record.exists() and "after-restart" in record.read_text(), 20, "the delivery")
    finally:
        sluice("down", "--state-dir", str(state_dir))


def test_up_restarts_a_broker_that_does_not_answer(system: list[str], tmp_path: Path) -> None:
    """A broker process that is alive but answers nothing (stopped with SIGSTOP) is replaced by ``sluice up``."""
    state_dir = tmp_path / "state"
    assert sluice("up", *system).returncode == 0
    try:
        hung = pids_of(state_dir)[0]
        os.kill(hung, signal.SIGSTOP)
        again = sluice("up", *system)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "does not answer" in again.stdout
        assert pids_of(state_dir)[0] != hung
        assert not process_alive(hung)
        assert httpx.get(f"http://127.0.0.1:{system[1]}/health", timeout=5).json()["status"] == "ok"
    finally:
        sluice("down", "--state-dir", str(state_dir))
