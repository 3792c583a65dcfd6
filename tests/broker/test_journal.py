"""The broker's journal: an accepted event survives a crash until every delivery of it has ended."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.broker.conftest import process_alive, read_jsonl, start_broker, wait_for
from tests.broker.fixtures import ksvc_ref, trigger, write_functions, write_knative

from sluice.broker.cloudevent import RawEvent
from sluice.broker.journal import DELIVERED, Journal, _accept_line, read_open
from sluice.broker.processes import free_port

TRIGGERS = ("a", "b", "c")

# An operation: ("accept", data, triggers) | ("finish", pick, trigger) | ("crash",)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("accept"), st.binary(max_size=300), st.sets(st.sampled_from(TRIGGERS), min_size=1)),
        st.tuples(st.just("finish"), st.integers(min_value=0, max_value=50), st.sampled_from(TRIGGERS)),
        st.tuples(st.just("crash")),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(ops=_ops, compact_bytes=st.sampled_from([256, 2048, 1 << 20]))
def test_what_reopens_is_exactly_what_was_accepted_and_not_finished(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[object, ...]], compact_bytes: int
) -> None:
    """Through random accepts, finishes and crashes (no close), reopening yields exactly the open
    deliveries, byte for byte; and the file stays bounded by what is open, never by history."""
    path = tmp_path_factory.mktemp("journal") / "journal.jsonl"

    async def run() -> None:
        journal = Journal(path, compact_bytes)
        journal.open()
        model: dict[int, tuple[RawEvent, set[str]]] = {}
        for op in ops:
            if op[0] == "accept":
                raw = RawEvent({"id": f"e{len(model)}", "type": "t", "source": "s", "specversion": "1.0"}, op[1])  # type: ignore[arg-type]
                seq = await journal.accept(raw, tuple(sorted(op[2])))  # type: ignore[arg-type]
                model[seq] = (raw, set(op[2]))  # type: ignore[arg-type]
            elif op[0] == "finish" and model:
                seq = sorted(model)[int(op[1]) % len(model)]  # type: ignore[call-overload]
                journal.finish(seq, str(op[2]), DELIVERED)
                model[seq][1].discard(str(op[2]))
                if not model[seq][1]:
                    del model[seq]
            elif op[0] == "crash":
                await journal.flush()
                os.close(journal._fd)  # the process dies: nothing more is written, nothing closed cleanly
                journal = Journal(path, compact_bytes)
                reopened = {e.seq: (e.event, e.open) for e in journal.open()}
                assert reopened == model
            await journal.flush()
            open_bytes = sum(len(_accept_line(e)) for e in journal._entries.values())
            assert path.stat().st_size <= compact_bytes + open_bytes + 2048
        assert {e.seq: (e.event, e.open) for e in read_open(path)} == model
        journal.close()

    asyncio.run(run())


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    """A crash in the middle of a write leaves a partial line; it is skipped, the entries before it kept."""
    path = tmp_path / "journal.jsonl"

    async def run() -> None:
        journal = Journal(path)
        journal.open()
        await journal.accept(RawEvent({"id": "1", "type": "t", "source": "s", "specversion": "1.0"}, b"{}"), ("a",))
        journal.close()

    asyncio.run(run())
    with open(path, "ab") as out:
        out.write(b'{"a": 2, "t": ["a"], "e": {"attrs": {"id": "2"')
    assert [e.event.id for e in read_open(path)] == ["1"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_event_accepted_before_a_sigkill_is_delivered_after_sluice_up(tmp_path: Path) -> None:
    """The broker is killed (SIGKILL) while the only delivery of an accepted event is in flight;
    after ``sluice up`` the event is delivered, and the journal holds nothing open any more."""
    record = tmp_path / "record.jsonl"
    source = write_functions(tmp_path, record)
    write_knative(tmp_path / "knative", ["gate"])
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "gate.yaml").write_text(
        trigger("gate", "filters:\n  - exact:\n      source: test/gate\n" + ksvc_ref("fn-gate"))
    )
    hold = Path(str(record) + ".hold")
    hold.touch()
    broker = start_broker(tmp_path, record, source)
    headers = {"ce-specversion": "1.0", "ce-type": "sh.keptn.events.tests-finished", "ce-source": "test/gate",
               "ce-id": "after-202", "content-type": "application/json"}
    assert broker.post(headers, '{"project": "sockshop"}').status_code == 202
    wait_for(lambda: broker.received("after-202", "gate"), what="the delivery to start")
    broker.process.send_signal(signal.SIGKILL)
    broker.process.wait(timeout=10)
    hold.unlink()  # the old gate answers now, to a broker that is gone
    journal = broker.state_dir / "broker" / "journal.jsonl"
    assert [e.event.id for e in read_open(journal)] == ["after-202"]

    env = {k: v for k, v in os.environ.items() if k != "SLUICE_STATE_DIR"}
    cli = [sys.executable, "-m", "sluice.cli.main"]
    port = free_port()
    up = subprocess.run(
        [*cli, "up", "--port", str(port), "--state-dir", str(broker.state_dir), "--knative", str(tmp_path / "knative"),
         "--triggers", str(tmp_path / "triggers"), "--source", str(source), "--tick", "0"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        wait_for(lambda: len(broker.received("after-202", "gate")) == 2, 30, "the redelivery")
        state = json.loads((broker.state_dir / "broker" / "state.json").read_text())

        def settled() -> bool:
            import httpx

            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
            return bool(health["journal"]["open"] == 0 and health["metrics"]["redelivered"] == 1)

        wait_for(settled, 30, "the journal to hold nothing open")
        assert read_jsonl(broker.dead_letter_file) == []
    finally:
        subprocess.run([*cli, "down", "--state-dir", str(broker.state_dir)], capture_output=True, timeout=120, env=env)
    wait_for(lambda: not process_alive(state["pid"]), 10, "the broker to stop")
    assert read_open(journal) == []
