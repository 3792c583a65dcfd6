"""``sluice get event`` lists events in time order whatever the precision of their RFC 3339 times:
it sorted the texts, so ``…:13Z`` (the CLI's whole seconds) came after ``…:13.410Z`` and a
delivery's first event was shown after what it caused (seen in the demo's state)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.adapters.state.memory import MemoryStore
from sluice.cli import common
from sluice.cli.main import main
from sluice.services.records import Records

SHIPYARD = "stages:\n  - name: dev\n    deployment_strategy: direct\n"
BASE = datetime(2026, 12, 2, 6, 50, 13, tzinfo=UTC)


def written(moment: datetime, form: int) -> str:
    """One instant in one of the forms RFC 3339 allows (whole seconds, ms, µs, an offset)."""
    if form == 0 and moment.microsecond == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == 1 and moment.microsecond % 1000 == 0:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if form == 2:
        return moment.astimezone(datetime.now(UTC).astimezone().tzinfo).isoformat(timespec="microseconds")
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 3_000_000), st.integers(0, 3)), min_size=2, max_size=8, unique_by=lambda t: t[0]))
def test_events_are_listed_in_time_order(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                         times: list[tuple[int, int]]) -> None:
    records = Records(MemoryStore())
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    context = "00000000-0000-0000-0000-000000000001"
    moments = {}
    for n, (micros, form) in enumerate(times):
        moment = BASE + timedelta(microseconds=micros - micros % (1_000_000 if form == 0 else 1000 if form == 1 else 1))
        moments[str(n)] = moment
        records.append_event(context, {"id": str(n), "source": "test", "type": "sh.keptn.events.done", "shkeptncontext": context,
                                       "time": written(moment, form), "data": {"project": "sockshop"}})
    monkeypatch.setattr(common, "records", lambda _args: records)
    assert main(["get", "event", "--project", "sockshop", "--output", "json"]) == 0
    shown = [moments[e["id"]] for e in json.loads(capsys.readouterr().out)]
    assert shown == sorted(shown)


def test_the_demo_case(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    records = Records(MemoryStore())
    records.create_project("sockshop", SHIPYARD, yaml.safe_load(SHIPYARD))
    context = "00000000-0000-0000-0000-000000000002"
    for eid, time in (("deployed", "2026-12-02T06:50:13.410Z"), ("trigger", "2026-12-02T06:50:13Z")):
        records.append_event(context, {"id": eid, "source": "test", "type": "sh.keptn.events.done", "shkeptncontext": context,
                                       "time": time, "data": {"project": "sockshop"}})
    monkeypatch.setattr(common, "records", lambda _args: records)
    assert main(["get", "event", "--project", "sockshop", "--output", "json"]) == 0
    assert [e["id"] for e in json.loads(capsys.readouterr().out)] == ["trigger", "deployed"]


def test_dead_letters_are_listed_in_time_order(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    """The local broker stamps its dead letters in milliseconds; a cluster's sink keeps the event's
    own time, in whatever form its producer wrote it: both are listed by instant."""
    from sluice.embedded.broker import deadletters

    path = deadletters.path_for(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"time": "2026-12-02T06:50:13.410Z", "trigger": "local", "event": {"id": "later"}}) + "\n")
    records = Records(MemoryStore())
    records.append_dead_letter({"time": "2026-12-02T06:50:13Z", "trigger": "sink", "event": {"id": "earlier"}})
    monkeypatch.setattr(common, "records", lambda _args: records)
    assert main(["get", "dead-letters", "--state-dir", str(tmp_path), "--output", "json"]) == 0
    assert [r["event"]["id"] for r in json.loads(capsys.readouterr().out)] == ["earlier", "later"]
