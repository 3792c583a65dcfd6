"""``sluice get event`` without ``--context`` reads a bounded number of records (issue 17): the
project indexes, then at most ``--deliveries`` event logs, whatever the length of history."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from sluice.adapters.state.local import LocalStore
from sluice.cli import common
from sluice.cli.main import main
from sluice.ports.state import Record
from sluice.services.records import Records

SHIPYARD = "stages:\n  - name: dev\n    deployment_strategy: direct\n"


class Counting(LocalStore):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.gets: list[str] = []
        self.listed: list[str] = []

    def get(self, name: str) -> Record | None:
        self.gets.append(name)
        return super().get(name)

    def list(self, labels: Mapping[str, str]) -> Sequence[Record]:
        found = super().list(labels)
        self.listed.extend(r.name for r in found)
        return found


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Counting:
    """Two projects, 15 deliveries each (interleaved in time), one evaluation-done per delivery."""
    store = Counting(tmp_path)
    records = Records(store)
    for project in ("alpha", "beta"):
        records.create_project(project, SHIPYARD, yaml.safe_load(SHIPYARD))
    for n in range(30):
        project = ("alpha", "beta")[n % 2]
        context = f"00000000-0000-0000-0000-{n:012d}"
        for k, etype in enumerate(("sh.keptn.events.configuration-change", "sh.keptn.events.evaluation-done")):
            records.append_event(context, {"id": f"{n}-{k}", "source": "test", "type": etype, "shkeptncontext": context,
                                           "time": f"2026-01-01T00:{n:02d}:0{k}Z", "data": {"project": project}})
    monkeypatch.setattr(common, "records", lambda _args: Records(store))
    store.gets.clear()
    store.listed.clear()
    return store


def events(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:  # type: ignore[type-arg]
    assert main(["get", "event", "--output", "json", *argv]) == 0
    return list(json.loads(capsys.readouterr().out))


def test_without_a_project_the_newest_deliveries_of_every_project(history: Counting, capsys: pytest.CaptureFixture[str]) -> None:
    """Across projects: the newest events come from the newest deliveries of both projects, and
    no event log is listed (only the indexes)."""
    found = events(capsys, "--limit", "4")
    assert [e["id"] for e in found] == ["28-0", "28-1", "29-0", "29-1"]
    assert all(not name.startswith("context.") for name in history.listed)
    assert len([g for g in history.gets if g.startswith("context.")]) == 2


def test_a_type_filter_reads_at_most_the_window(history: Counting, capsys: pytest.CaptureFixture[str]) -> None:
    """``--type`` looks through the newest ``--deliveries`` deliveries and no further."""
    found = events(capsys, "--project", "alpha", "--type", "sh.keptn.events.evaluation-done", "--deliveries", "3")
    assert [e["id"] for e in found] == ["24-1", "26-1", "28-1"]
    assert len([g for g in history.gets if g.startswith("context.")]) == 3
    assert all(record.startswith("deliveries") or record.startswith("project") for record in history.listed)
