"""One smoke test against the real thing: the local broker (``python -m sluice.embedded.broker``) with the
repository's own knative/ and triggers/, every function a real functions-framework process. The
hostile requests of the in-process corpus that failed before get a 4xx, and nothing is stored."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
import yaml
from tests.support.broker import start_broker

from sluice.adapters.secrets.local import LocalSecrets
from sluice.adapters.state.local import LocalStore
from sluice.services.approvals import ensure_key
from sluice.services.intake import set_secret
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[3]
SECRET = "smoke-intake-secret-0123456789"


def _records_digest(state: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((state / "configmaps").rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_hostile_requests_to_a_real_local_system(tmp_path: Path) -> None:
    """Deep JSON to the ingress and to intake, a NUL in a web view path, a cross-origin approval:
    4xx each, the records unchanged, no traceback in any log."""
    (tmp_path / "knative").symlink_to(ROOT / "knative")
    (tmp_path / "triggers").symlink_to(ROOT / "triggers")
    state = tmp_path / "state"
    records = Records(LocalStore(state))
    shipyard = (ROOT / "examples" / "sockshop" / "shipyard.yaml").read_text()
    records.create_project("sockshop", shipyard, yaml.safe_load(shipyard))
    records.onboard("sockshop", "carts")
    ensure_key(LocalSecrets(state), "sockshop")
    set_secret(LocalSecrets(state), "dockerhub", SECRET)
    broker = start_broker(tmp_path, tmp_path / "record.jsonl", ROOT / "functions" / "main.py",
                          extra_env={"SLUICE_BACKEND": "noop", "SLUICE_STATE": "local", "SLUICE_STATE_DIR": str(state)})
    try:
        before = _records_digest(state)
        base = f"http://127.0.0.1:{broker.port}"
        deep = b"[" * 10_000 + b"]" * 10_000
        answers = {
            "ingress deep JSON": httpx.post(broker.url, content=deep, timeout=30,
                                            headers={"content-type": "application/cloudevents+json"}),
            "intake deep JSON": httpx.post(f"{base}/intake/dockerhub", content=deep, timeout=30,
                                           headers={"content-type": "application/json", "x-sluice-token": SECRET}),
            "bridge NUL": httpx.get(f"{base}/bridge/delivery/%00", timeout=30),
            "cross-origin approval": httpx.post(
                f"{base}/bridge/approve", timeout=30, headers={"origin": "http://evil.example"},
                data={"project": "sockshop", "stage": "production", "service": "carts", "context": "c", "decision": "approve"}),
        }
        for what, response in answers.items():
            assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:300])
        page = httpx.get(f"{base}/bridge/project/sockshop", timeout=30)
        assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]
        # the same site through the broker's /bridge proxy passes the Origin and CSRF checks (then: sign in)
        csrf = page.cookies["sluice_csrf"]
        # each browser gets its own token: the proxy keeps no cookie jar shared between them
        assert httpx.get(f"{base}/bridge/", timeout=30).cookies["sluice_csrf"] != csrf
        same_site = httpx.post(
            f"{base}/bridge/approve", timeout=30, headers={"origin": base}, cookies={"sluice_csrf": csrf},
            data={"project": "sockshop", "stage": "production", "service": "carts", "context": "c",
                  "decision": "approve", "csrf": csrf})
        assert same_site.status_code == 401 and "authenticated user" in same_site.text
        assert _records_digest(state) == before
    finally:
        broker.stop()
    logs = [p.read_text(errors="replace") for p in tmp_path.rglob("*.log")] + [(tmp_path / "broker.out").read_text()]
    assert not any("Traceback" in log for log in logs)
