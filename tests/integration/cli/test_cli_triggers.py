"""sluice add-trigger / remove-trigger / get triggers / set intake-secret."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sluice.adapters.secrets.local import LocalSecrets
from sluice.adapters.state.local import LocalStore
from sluice.cli.main import main
from sluice.services.intake import SECRETS

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def state(tmp_path, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """A state dir with project sockshop and service carts onboarded."""
    monkeypatch.delenv("SLUICE_STATE_DIR", raising=False)
    monkeypatch.delenv("SLUICE_STATE", raising=False)
    d = str(tmp_path)
    assert main(["create", "project", "sockshop", "--shipyard", str(ROOT / "examples/sockshop/shipyard.yaml"),
                 "--state-dir", d]) == 0
    assert main(["onboard", "service", "carts", "--project", "sockshop", "--state-dir", d]) == 0
    return d


def test_add_then_get_triggers(state: str, capsys) -> None:  # type: ignore[no-untyped-def]
    """add-trigger stores a normalised trigger with the semver default; get triggers -o json shows it."""
    assert main(["add-trigger", "--project", "sockshop", "--service", "carts", "--repository", "keptnexamples/carts",
                 "--state-dir", state]) == 0
    out = capsys.readouterr()
    assert "docker.io/keptnexamples/carts" in out.out and "no intake secret" in out.err
    assert main(["get", "triggers", "-o", "json", "--state-dir", state]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["triggers"] == [{"project": "sockshop", "service": "carts", "repository": "docker.io/keptnexamples/carts",
                                "tagPattern": r"^v?\d+\.\d+\.\d+$", "source": "", "pinDigest": False}]


def test_add_trigger_for_unknown_service_fails_clearly(state: str, capsys) -> None:  # type: ignore[no-untyped-def]
    """A trigger for a service not onboarded exits 2 and says how to onboard it."""
    assert main(["add-trigger", "--project", "sockshop", "--service", "orders", "--repository", "a/orders",
                 "--state-dir", state]) == 2
    assert "sluice onboard service orders" in capsys.readouterr().err


def test_bad_tag_pattern_exits_2(state: str, capsys) -> None:  # type: ignore[no-untyped-def]
    """An invalid regular expression is refused with exit code 2, naming the flag."""
    assert main(["add-trigger", "--project", "sockshop", "--service", "carts", "--repository", "a/b",
                 "--tag-pattern", "([", "--state-dir", state]) == 2
    assert "tag-pattern" in capsys.readouterr().err


def test_remove_trigger(state: str, capsys) -> None:  # type: ignore[no-untyped-def]
    """remove-trigger deletes an existing trigger and exits 2 for one that does not exist."""
    args = ["--project", "sockshop", "--service", "carts", "--repository", "keptnexamples/carts", "--state-dir", state]
    assert main(["add-trigger", *args]) == 0
    assert main(["remove-trigger", *args]) == 0
    assert main(["remove-trigger", *args]) == 2


def test_set_intake_secret_reads_stdin_and_never_prints_it(state: str, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """set intake-secret stores the line read from stdin; neither it nor get triggers print the secret."""
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-secret-42\n"))
    assert main(["set", "intake-secret", "--source", "github", "--state-dir", state]) == 0
    assert main(["get", "triggers", "--state-dir", state]) == 0
    out = capsys.readouterr()
    assert "a-long-enough-secret-42" not in out.out + out.err and "github" in out.out
    assert LocalStore(directory=state).get(SECRETS) is None  # not in the state records
    assert LocalSecrets(state).get("sluice-intake-github") == {"secret": "a-long-enough-secret-42"}
    path = LocalSecrets(state).directory / "sluice-intake-github.json"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700


def test_short_secret_is_refused(state: str, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A secret under 16 characters is refused with exit code 2."""
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["set", "intake-secret", "--source", "harbor", "--state-dir", state]) == 2
    assert "16 characters" in capsys.readouterr().err


def test_cli_sources_are_the_intake_sources() -> None:
    """The CLI's copy of the source names (kept to spare its start-up the core import) equals intake's."""
    from sluice.cli import triggers
    from sluice.core.intake import SOURCES

    assert triggers.SOURCES == SOURCES
