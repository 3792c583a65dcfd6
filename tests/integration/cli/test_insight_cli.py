"""``sluice get metrics``, ``add notification``, ``get notifications``, ``set notification-secret``."""

from __future__ import annotations

import io
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support.insight_world import Receiver, make_world

from sluice.adapters.notify.webhook import HttpWebhookSender
from sluice.adapters.state.local import LocalStore
from sluice.cli import insight as cli_insight
from sluice.cli.main import main
from sluice.core import notification as nt


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_cli_names_match_the_core() -> None:
    """The CLI's copies of the trigger and format names are the core's."""
    assert cli_insight.TRIGGERS == nt.TRIGGERS and cli_insight.FORMATS == nt.FORMATS


def test_get_metrics_text_and_json(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After the tutorial's three builds, the CLI prints frequency, lead time and staging's catch."""
    world = make_world(store=LocalStore(state), start=datetime.now(UTC) - timedelta(hours=2))
    for tag in ("0.10.1", "0.10.2", "0.10.3"):
        world.deliver(tag)
    assert main(["get", "metrics", "--project", "sockshop", "--service", "carts", "--output", "json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["deployment_frequency"]["deployments"] == 2
    assert next(s for s in m["stages"] if s["stage"] == "staging")["reasons"] == {"evaluation_fail": 1}
    assert main(["get", "metrics", "--project", "sockshop", "--since", "7d"]) == 0
    out = capsys.readouterr().out
    assert "deployments to production: 2" in out and "evaluation fail 1" in out and "staging" in out


@pytest.mark.parametrize(("argv", "needle"), [
    (["--since", "30x"], "--since"),
    (["--since", "400d"], "at most 90d"),
    (["--service", "ghost"], "service 'ghost' is not onboarded"),
])
def test_get_metrics_bad_input(state: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    """Bad input: exit 2 and a sentence naming it."""
    make_world(store=LocalStore(state))
    assert main(["get", "metrics", "--project", "sockshop", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_add_notification_validates_and_nothing_is_created(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """http to a public host, unknown outcomes and unknown stages are refused; nothing is stored."""
    world = make_world(store=LocalStore(state))
    for argv, needle in [
        (["--url", "http://hooks.example/x", "--on", "promoted"], "https is required"),
        (["--url", "https://hooks.example/x", "--on", "promoted,exploded"], "'exploded'"),
        (["--url", "https://hooks.example/x", "--on", "promoted", "--stage", "qa"], "stage 'qa' is not in project"),
    ]:
        assert main(["add", "notification", "--project", "sockshop", *argv]) == 2
        assert needle in capsys.readouterr().err
    assert world.records.store.get("notifications.sockshop") is None
    assert main(["add", "notification", "--project", "nope", "--url", "https://h.example/x", "--on", "promoted"]) == 2
    assert world.records.store.get("notifications.nope") is None


def test_add_then_get_notifications(state: Path, capsys: pytest.CaptureFixture[str], receiver: Receiver,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A notification added by the CLI is sent; ``get notifications`` shows when and the answer."""
    monkeypatch.setattr("sys.stdin", io.StringIO("k" * 32 + "\n"))
    assert main(["set", "notification-secret", "team-key"]) == 0
    secret_file = state / "secrets" / "team-key.json"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600 and "k" * 32 not in capsys.readouterr().out
    assert main(["add", "notification", "--project", "sockshop", "--url", receiver.url, "--on", "rolled_back",
                 "--stage", "staging", "--secret", "team-key", "--name", "team"]) == 2  # no project yet
    capsys.readouterr()
    from sluice.adapters.notify.secretfiles import SecretFiles

    world = make_world(store=LocalStore(state), sender=HttpWebhookSender, secrets=SecretFiles(state / "secrets"))
    assert main(["add", "notification", "--project", "sockshop", "--url", receiver.url, "--on", "rolled_back",
                 "--stage", "staging", "--secret", "team-key", "--name", "team"]) == 0
    assert "Notification team added: slack" in capsys.readouterr().out
    world.deliver("0.10.1")
    world.deliver("0.10.2")
    assert len(receiver.delivered()) == 1 and "X-Sluice-Signature-256" in receiver.delivered()[0]["headers"]
    assert main(["get", "notifications", "--project", "sockshop"]) == 0
    out = capsys.readouterr().out
    assert "team" in out and "sent" in out and "answer 200" in out and "staging rolled_back" in out
    assert "k" * 32 not in out
    assert main(["get", "notifications", "--project", "sockshop", "-o", "json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["phase"] == "sent" and entry["code"] == 200 and "body" not in entry


def test_links_follow_the_local_broker_port() -> None:
    """Messages link to the web view of the local broker they came through, unless set."""
    from sluice.config import Settings
    from sluice.functions.eventlog import web_view_url

    assert web_view_url(Settings(broker_url="http://127.0.0.1:33517/sluice/default")) == "http://127.0.0.1:33517/bridge"
    assert web_view_url(Settings(bridge_url="https://sluice.example.com")) == "https://sluice.example.com"
    assert web_view_url(Settings(broker_url="http://broker-ingress.knative-eventing.svc.cluster.local/sluice/default")) == \
        Settings().bridge_url
