"""The project commands: create, onboard, add-resource, set, status, get — with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "sockshop"


@pytest.fixture
def state(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def test_create_onboard_and_status(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """A new project shows its stages with no versions yet, in text and JSON."""
    assert main(["create", "project", "sockshop", "--shipyard", str(EXAMPLE / "shipyard.yaml")]) == 0
    assert main(["onboard", "service", "carts", "--project", "sockshop"]) == 0
    capsys.readouterr()
    assert main(["status", "--project", "sockshop", "--output", "json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in view["stages"]] == ["dev", "staging", "production"]
    carts = view["stages"][0]["services"][0]
    assert carts["name"] == "carts" and carts["primary"] is None and carts["last_evaluation"] is None


def test_bad_shipyard_names_the_stage_and_field(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """An invalid shipyard is refused with exit 2 and a sentence naming the stage and field."""
    bad = state / "shipyard.yaml"
    bad.write_text("stages:\n  - name: dev\n    deployment_strategy: rolling\n")  # canary is a strategy since issue 19
    assert main(["create", "project", "p", "--shipyard", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "stage 'dev'.deployment_strategy" in err and "direct, blue_green_service, canary" in err


def test_invalid_slo_is_refused_at_add_resource(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """add-resource checks an slo.yaml before storing it."""
    main(["create", "project", "p", "--shipyard", str(EXAMPLE / "shipyard.yaml")])
    bad = state / "slo.yaml"
    bad.write_text("objectives:\n  - sli: x\n    pass:\n      - criteria: ['<<5']\n")
    assert main(["add-resource", "--project", "p", "--stage", "dev", "--resource", str(bad), "--resourceUri", "slo.yaml"]) == 2
    assert "slo.yaml" in capsys.readouterr().err


def test_unknown_project_is_one_sentence(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """Asking about a project that does not exist says so, with exit 2 and no traceback."""
    assert main(["status", "--project", "nope"]) == 2
    err = capsys.readouterr().err
    assert "project 'nope' does not exist" in err and "Traceback" not in err


def test_set_prometheus_keeps_the_token_out_of_output(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """The Prometheus connection is stored from files; the token never appears in the output."""
    main(["create", "project", "p", "--shipyard", str(EXAMPLE / "shipyard.yaml")])
    token = state / "token"
    token.write_text("s3cr3t-t0ken\n")
    assert main(["set", "prometheus", "--project", "p", "--url", "http://127.0.0.1:9090", "--token-file", str(token)]) == 0
    out = capsys.readouterr()
    assert "s3cr3t" not in out.out + out.err and "bearer token" in out.out


def test_send_needs_the_project_to_exist(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """A new artifact for an unknown project is refused before anything is sent."""
    code = main(["send", "event", "new-artifact", "--project", "nope", "--service", "carts",
                 "--image", "docker.io/keptnexamples/carts", "--tag", "0.10.1", "--broker", "http://127.0.0.1:9/x"])
    assert code == 2 and "project 'nope' does not exist" in capsys.readouterr().err


def test_send_timeframe_must_be_a_duration(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """--timeframe takes 30s, 5m, 2h or 1d, and says so."""
    code = main(["send", "event", "start-evaluation", "--project", "p", "--stage", "dev", "--service", "carts",
                 "--timeframe", "five minutes", "--broker", "http://127.0.0.1:9/x"])
    assert code == 2 and "30s, 5m, 2h, 1d" in capsys.readouterr().err


def test_send_file_that_is_not_json_is_one_sentence(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """send event --file with a broken file names the file and exits 2, no traceback."""
    bad = state / "event.json"
    bad.write_text("{not json")
    assert main(["send", "event", "--file", str(bad), "--broker", "http://127.0.0.1:9/x"]) == 2
    err = capsys.readouterr().err
    assert "event.json is not JSON" in err and "Traceback" not in err


def test_create_project_refuses_names_whose_namespaces_would_be_invalid(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """A project name valid alone but whose namespace <project>-<stage> passes 63 characters is refused, naming it."""
    name = "p" * 53  # with "-production": 64 characters
    assert main(["create", "project", name, "--shipyard", str(EXAMPLE / "shipyard.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"namespace '{name}-production'" in err and "63" in err
    assert main(["status", "--project", name]) == 2  # nothing was created
    assert main(["create", "project", "p" * 52, "--shipyard", str(EXAMPLE / "shipyard.yaml")]) == 0


def test_onboard_refuses_service_names_whose_objects_would_be_invalid(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """A service name that is a valid label but makes <svc>-primary past 63, or starts with a digit, is refused."""
    main(["create", "project", "p", "--shipyard", str(EXAMPLE / "shipyard.yaml")])
    capsys.readouterr()
    assert main(["onboard", "service", "s" * 56, "--project", "p"]) == 2
    assert "-primary" in capsys.readouterr().err
    assert main(["onboard", "service", "1carts", "--project", "p"]) == 2
    assert "DNS-1035" in capsys.readouterr().err
    assert main(["onboard", "service", "s" * 55, "--project", "p"]) == 0
