"""The CLI's side of approvals: the project's key is created with it (0600, never printed), and
``sluice send event approval`` signs with it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from tests.support.security_world import held_world

from sluice.adapters.secrets.local import LocalSecrets
from sluice.adapters.state.local import LocalStore
from sluice.cli.main import main
from sluice.core.approval_auth import check_approval
from sluice.core.events import Event
from sluice.services.approvals import key_lookup, key_name
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[3]
SHIPYARD = ROOT / "examples" / "sockshop" / "shipyard.yaml"


@pytest.fixture
def state(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_create_project_makes_a_private_approver_key_and_never_prints_it(state: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The key is a 0600 file in a 0700 folder; the output says where, not what."""
    assert main(["create", "project", "sockshop", "--shipyard", str(SHIPYARD)]) == 0
    secrets = LocalSecrets(state)
    key = (secrets.get(key_name("sockshop")) or {})["key"]
    path = secrets.directory / f"{key_name('sockshop')}.json"
    assert len(key) == 64 and path.stat().st_mode & 0o777 == 0o600 and secrets.directory.stat().st_mode & 0o777 == 0o700
    assert main(["approver-key", "create", "--project", "sockshop"]) == 0  # kept
    assert (secrets.get(key_name("sockshop")) or {})["key"] == key
    assert main(["approver-key", "rotate", "--project", "sockshop"]) == 0
    assert (secrets.get(key_name("sockshop")) or {})["key"] != key
    out = capsys.readouterr()
    assert key not in out.out + out.err and "0600" in out.out
    assert main(["approver-key", "create", "--project", "nosuch"]) == 2
    assert secrets.get(key_name("nosuch")) is None


def test_send_event_approval_signs_with_the_project_key(state: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The posted approval.finished carries a signature the gate accepts, naming the approver."""
    sent: list[Event] = []
    monkeypatch.setattr("sluice.adapters.publish.post_event", lambda url, event: sent.append(event))
    _, _, _, context = held_world(records=Records(LocalStore(state)))
    assert main(["approver-key", "create", "--project", "sockshop"]) == 0
    assert main(["send", "event", "approval", "--project", "sockshop", "--service", "carts", "--stage", "production",
                 "--context", context, "--approve", "--approver", "carol"]) == 0
    assert main(["send", "event", "approval", "--stage", "production", "--context", context, "--decline"]) == 0
    event = sent[0]
    assert sent[1].extensions["sluiceapprover"]  # the user's name by default
    now = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    assert check_approval(event, key_lookup(LocalSecrets(state)), now).approver == "carol"


def test_send_event_approval_without_the_key_is_refused(state: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """Someone who cannot read the project's key cannot send an approval (exit 2, how to get one)."""
    sent: list[Any] = []
    monkeypatch.setattr("sluice.adapters.publish.post_event", lambda url, event: sent.append(event))
    _, _, _, context = held_world(records=Records(LocalStore(state)))
    assert main(["send", "event", "approval", "--project", "sockshop", "--service", "carts", "--stage", "production",
                 "--context", context, "--approve", "--approver", "carol"]) == 2
    assert "no approver key" in capsys.readouterr().err and sent == []


def test_send_event_approval_for_a_delivery_that_does_not_wait_sends_nothing(state: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """A random context (it made a phantom failed delivery before): exit 2, nothing sent."""
    sent: list[Any] = []
    monkeypatch.setattr("sluice.adapters.publish.post_event", lambda url, event: sent.append(event))
    held_world(records=Records(LocalStore(state)))
    assert main(["approver-key", "create", "--project", "sockshop"]) == 0
    assert main(["send", "event", "approval", "--project", "sockshop", "--service", "carts", "--stage", "production",
                 "--context", "0f6ad3c2-6b48-4b7e-9c43-123456789abc", "--approve", "--approver", "carol"]) == 2
    assert "waits for approval" in capsys.readouterr().err and sent == []
