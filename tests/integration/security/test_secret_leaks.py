"""Planted secrets never leave the secret store: a run that uses every one of them — the CLI, a
registry push, a delivery with an approval, the web view, a Prometheus query — is grepped, and
no log line, event, stored record, CLI output or page holds any of them."""

from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from tests.support.flow import FakeClock, Flow, by_type
from tests.support.sockshop import CARTS, fake_runner

from sluice.adapters.backends.noop import NoopBackend
from sluice.adapters.secrets.local import LocalSecrets
from sluice.adapters.state.local import LocalStore
from sluice.bridge.app import Bridge
from sluice.bridge.guard import Auth
from sluice.cli.main import main
from sluice.compose import sli_provider
from sluice.config import Settings
from sluice.core.events import ConfigurationChange, Event, EventType, GetSli
from sluice.core.intake import Trigger
from sluice.services.approvals import key_lookup, key_name, sign_approval
from sluice.services.intake import IntakeRequest, IntakeService, add_trigger
from sluice.services.records import Records
from sluice.services.sli import SliService

ROOT = Path(__file__).resolve().parents[3]
INTAKE_SECRET = "planted-intake-secret-7c1e55aa"
PROM_TOKEN = "planted-prometheus-token-9b0d"
PROM_PASSWORD = "planted-prometheus-password-31f"
BRIDGE_TOKEN = "planted-bridge-token-0a4e77"
MANUAL = (ROOT / "examples" / "sockshop" / "shipyard.yaml").read_text().replace("pass: automatic", "pass: manual")


def test_no_secret_reaches_a_log_an_event_a_record_or_a_page(tmp_path: Path, monkeypatch, capsys, caplog) -> None:  # type: ignore[no-untyped-def]
    """Every secret is used for real in this run; none of them shows anywhere but the secret store."""
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state"
    monkeypatch.setenv("SLUICE_STATE_DIR", str(state))
    monkeypatch.setenv("SLUICE_STATE", "local")
    shipyard = tmp_path / "shipyard.yaml"
    shipyard.write_text(MANUAL)
    texts: list[str] = []

    # the CLI: project (approver key), Prometheus with token and password, intake secret, listings
    token_file, password_file = tmp_path / "token", tmp_path / "password"
    token_file.write_text(PROM_TOKEN + "\n")
    password_file.write_text(PROM_PASSWORD + "\n")
    assert main(["create", "project", "sockshop", "--shipyard", str(shipyard)]) == 0
    assert main(["onboard", "service", "carts", "--project", "sockshop"]) == 0
    assert main(["set", "prometheus", "--project", "sockshop", "--url", "http://127.0.0.1:9", "--token-file", str(token_file)]) == 0
    assert main(["set", "prometheus", "--project", "sockshop", "--url", "http://127.0.0.1:9", "--user", "u",
                 "--password-file", str(password_file)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(INTAKE_SECRET + "\n"))
    assert main(["set", "intake-secret", "--source", "dockerhub"]) == 0
    for argv in (["get", "triggers"], ["get", "triggers", "-o", "json"], ["status", "--project", "sockshop", "-o", "json"]):
        assert main(argv) == 0
    secrets = LocalSecrets(state)
    secrets.put("sluice-bridge-token", {"token": BRIDGE_TOKEN, "user": "release-bot"})
    approver_key = (secrets.get(key_name("sockshop")) or {})["key"]
    assert main(["set", "prometheus", "--project", "sockshop", "--url", "http://127.0.0.1:9", "--token-file", str(token_file)]) == 0

    # a registry push (good and bad token), then the delivery it starts, held for approval
    records = Records(LocalStore(state))
    add_trigger(records.store, Trigger.create("sockshop", "carts", "keptnexamples/carts"))
    events: list[Event] = []
    intake = IntakeService(records.store, events.extend, lambda: "2026-01-01T00:00:00Z", "sluice/intake", secrets=secrets)
    push = (ROOT / "tests" / "fixtures" / "webhooks" / "dockerhub_push.json").read_bytes()
    answers = [intake.handle(IntakeRequest("dockerhub", {}, {"token": t}, push)) for t in (INTAKE_SECRET, "not-it-" * 3)]
    assert [a.status for a in answers] == [200, 401]
    texts.extend(a.to_json() for a in answers)
    clock = FakeClock()
    flow = Flow(records, NoopBackend(), fake_runner, clock, approver_keys=key_lookup(secrets))
    change = ConfigurationChange(project="sockshop", service="carts", image=f"{CARTS}:0.10.1")
    events += flow.send(Event.new(change, source="test", id=str(uuid.uuid4()), time=clock()))
    context = next(by_type(events, EventType.APPROVAL_TRIGGERED)).shkeptncontext

    # the web view: every page, and an approval by the bridge's token, which the gate obeys
    sent: list[Event] = []
    bridge = Bridge(records, sent.append, auth=Auth(token=lambda: (BRIDGE_TOKEN, "release-bot")),
                    sign=lambda event, user: sign_approval(event, secrets, user))
    for path in ("/", "/project/sockshop", "/project/sockshop/service/carts", f"/delivery/{context}",
                 "/api/projects/sockshop", f"/api/deliveries/{context}", "/history/sockshop/staging/carts"):
        body, status, headers = bridge.handle("GET", path, {}, {})
        assert status == 200, path
        texts.append(str(body) + json.dumps(headers))
    form = {"project": "sockshop", "stage": "production", "service": "carts", "context": context, "decision": "approve"}
    for token in (BRIDGE_TOKEN, "wrong"):
        body, status, headers = bridge.handle("POST", "/api/approve", {}, form, {"Authorization": f"Bearer {token}"})
        texts.append(str(body) + json.dumps(headers))
    (approval,) = sent
    clock.current = datetime.fromisoformat(approval.time.replace("Z", "+00:00"))
    after = flow.send(approval)
    events += after
    assert next(c.data.approver for c in by_type(after, EventType.CONFIGURATION_CHANGE)) == "release-bot"  # type: ignore[attr-defined]

    # a Prometheus query with the stored credentials (the server is not there: an error message)
    get_sli = GetSli(project="sockshop", stage="staging", service="carts", sliProvider="prometheus",
                     start="2026-01-01T00:00:00Z", end="2026-01-01T00:01:00Z", indicators=["response_time_p95"])
    sli = SliService(lambda name, request: sli_provider(Settings(prometheus_url="http://127.0.0.1:9"), records,
                                                        lambda: secrets, name, request.project, request.stage,
                                                        request.service),
                     clock, "sluice/sli")
    events += sli.handle(Event.new(get_sli, source="test", id="g-1", time=clock()))

    out = capsys.readouterr()
    texts += [out.out, out.err, caplog.text, *(json.dumps(e.to_json_dict()) for e in events + sent)]
    texts += [r.getMessage() for r in caplog.records]
    stored = [p for p in state.rglob("*") if p.is_file() and LocalSecrets(state).directory not in p.parents]
    texts += [p.read_bytes().decode(errors="replace") for p in stored]
    assert stored and len(events) > 10
    planted = {"intake secret": INTAKE_SECRET, "Prometheus token": PROM_TOKEN, "Prometheus password": PROM_PASSWORD,
               "bridge token": BRIDGE_TOKEN, "approver key": approver_key}
    for what, secret in planted.items():
        leaks = [t[max(0, t.find(secret) - 80):t.find(secret) + 40] for t in texts if secret in t]
        assert leaks == [], f"the {what} leaked: {leaks[:2]}"


@pytest.mark.parametrize("name", ["sluice-approver-sockshop", "sluice-intake-dockerhub", "sluice-prometheus-sockshop"])
def test_secret_files_are_private(tmp_path: Path, name: str) -> None:
    """Each secret is a 0600 file in a 0700 folder, whatever the umask."""
    import os

    old = os.umask(0)
    try:
        LocalSecrets(tmp_path).put(name, {"v": "x"})
    finally:
        os.umask(old)
    path = LocalSecrets(tmp_path).directory / f"{name}.json"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700


def test_the_state_dir_is_private(tmp_path: Path) -> None:
    """A state dir Sluice creates, and its records' folder, are 0700; an old 0755 folder is closed."""
    import os

    from sluice.ports.state import Record

    state = tmp_path / "new" / "state"
    LocalStore(state).put(Record("r", {"a": "b"}))
    assert state.stat().st_mode & 0o777 == 0o700 and (state / "configmaps").stat().st_mode & 0o777 == 0o700
    os.chmod(state / "configmaps", 0o755)
    LocalStore(state).put(Record("s", {"a": "b"}))
    assert (state / "configmaps").stat().st_mode & 0o777 == 0o700
