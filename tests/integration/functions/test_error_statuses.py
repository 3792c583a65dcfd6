"""One error → HTTP status map for every HTTP entry point (``sluice.errors.status_for``): bad
input 400, permanent and configuration errors 422 (final: Knative does not retry them),
temporary errors 503 (the broker or the registry retries), bugs 500."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app

from sluice.bridge.app import Bridge
from sluice.core.events import EventType
from sluice.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermanentError,
    RetryableError,
    TooLargeError,
    ValidationError,
    status_for,
)
from sluice.ports.state import Record
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[3]
SOURCE = str(ROOT / "functions" / "main.py")
#: Statuses a Knative broker retries (5xx, 404, 408, 409, 429); every other 4xx is final.
RETRIED = {404, 408, 409, 429}


@pytest.mark.parametrize(("error", "status"), [
    (ValidationError("event", ["data.project: required"]), 400),
    (PermanentError("image gone"), 422),
    (NotFoundError("no project x"), 422),
    (TooLargeError("record past 1 MiB"), 422),
    (ConfigurationError("SLUICE_STATE: unknown store"), 422),
    (RetryableError("broker unreachable"), 503),
    (ConflictError("r", "1", "2"), 503),
    (KeyError("bug"), 500),
])
def test_status_for_each_kind_of_error(error: Exception, status: int) -> None:
    """Each branch of the error tree has one status; what cannot succeed is final for Knative."""
    assert status_for(error) == status
    final = 400 <= status < 500 and status not in RETRIED
    assert final == isinstance(error, ValidationError | PermanentError | ConfigurationError)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SLUICE_BROKER_URL", "http://127.0.0.1:9/unused")
    monkeypatch.delenv("K_SINK", raising=False)
    from sluice.functions import runtime

    runtime._RUNTIMES.clear()
    yield monkeypatch
    runtime._RUNTIMES.clear()


class Raising:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def handle(self, request: Any) -> Any:
        raise self.error


@pytest.mark.parametrize("error", [PermanentError("the image is gone"), ConfigurationError("no such secret store")])
def test_intake_answers_a_final_error_with_422_not_a_retried_500(env, error: Exception) -> None:  # type: ignore[no-untyped-def]
    """A webhook that can never succeed is not answered 500 (which Knative and registries retry)."""
    from sluice.functions import intake

    env.setattr(intake, "service_for", lambda runtime: Raising(error))
    response = create_app("intake", SOURCE, "http").test_client().post("/dockerhub", data=b"{}")
    assert response.status_code == 422
    assert str(error) in json.loads(response.data)["message"]


def test_intake_answers_a_temporary_error_with_503(env) -> None:  # type: ignore[no-untyped-def]
    """A registry is asked to retry what may succeed later."""
    from sluice.functions import intake

    env.setattr(intake, "service_for", lambda runtime: Raising(RetryableError("store unreachable")))
    response = create_app("intake", SOURCE, "http").test_client().post("/dockerhub", data=b"{}")
    assert response.status_code == 503


class BrokenStore:
    """A state store whose every call meets a configuration error (e.g. no RBAC on ConfigMaps)."""

    def get(self, name: str) -> Record | None:
        raise ConfigurationError("cannot read ConfigMap sluice/x: the Kubernetes API answered 403")

    def put(self, record: Record) -> Record:
        raise ConfigurationError("cannot write")

    def list(self, labels: Mapping[str, str]) -> Sequence[Record]:
        raise ConfigurationError("cannot list ConfigMaps: the Kubernetes API answered 403")

    def delete(self, name: str, resource_version: str | None = None) -> bool:
        raise ConfigurationError("cannot delete")


def test_bridge_answers_a_configuration_error_like_every_entry_point(env) -> None:  # type: ignore[no-untyped-def]
    """The web view's API answers a configuration error 422 with its message, not 503 ("try again")."""
    bridge = Bridge(Records(BrokenStore()), lambda event: None)
    body, status, _ = bridge.handle("GET", "/api/projects", {}, {})
    assert status == 422 and "403" in str(body)


def test_a_function_with_an_unknown_setting_says_so(env) -> None:  # type: ignore[no-untyped-def]
    """A misspelt SLUICE_ variable in a function's environment is answered 422 naming it (not a bare 500)."""
    env.setenv("SLUICE_SLI_TIMOUT", "30")
    headers = {"ce-specversion": "1.0", "ce-type": EventType.PING.value, "ce-source": "test", "ce-id": "1",
               "Content-Type": "application/json"}
    response = create_app("evaluate", SOURCE, "http").test_client().post("/", data=b"{}", headers=headers)
    assert response.status_code == 422
    assert b"SLUICE_SLI_TIMOUT (did you mean SLUICE_SLI_TIMEOUT?)" in response.data
