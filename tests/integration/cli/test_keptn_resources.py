"""Keptn's resource paths: provider files honoured with Keptn's precedence, unread URIs and
unknown SLI providers refused before anything is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.adapters.state.local import LocalStore
from sluice.cli.main import main
from sluice.core.resources import READ_URIS, check_resource_uri
from sluice.core.sli_config import SliConfig
from sluice.core.testspec import JMX_URI
from sluice.errors import ValidationError
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[3]
SHIPYARD = ROOT / "examples" / "sockshop" / "shipyard.yaml"


@pytest.fixture
def state(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path / "state"))
    assert main(["create", "project", "sockshop", "--shipyard", str(SHIPYARD)]) == 0
    assert main(["onboard", "service", "carts", "--project", "sockshop"]) == 0
    return tmp_path


def sli_config_for(records: Records, project: str, stage: str, service: str, provider: str) -> SliConfig:
    """The merged queries ``provider`` reads for a service in a stage, as its module parses them."""
    from sluice.adapters.secrets.memory import MemorySecrets
    from sluice.adapters.sli import dynatrace, prometheus
    from sluice.config import Settings
    from sluice.services.sli_config import provider_context

    ctx = provider_context(Settings(), records, MemorySecrets, project, stage, service)
    return {"prometheus": prometheus.queries, "dynatrace": dynatrace.queries}[provider](ctx)


def _records(state: Path) -> Records:
    return Records(LocalStore(state / "state"))


def _add(state: Path, uri: str, text: str, *where: str) -> int:
    path = state / "resource.yaml"
    path.write_text(text)
    return main(["add-resource", "--project", "sockshop", *where, "--resource", str(path), f"--resourceUri={uri}"])


def _sli(**queries: str) -> str:
    return "spec_version: '1.0'\nindicators:\n" + "".join(f"  {k}: {v!r}\n" for k, v in queries.items())


def test_tutorial_prometheus_sli_yaml_is_read(state) -> None:  # type: ignore[no-untyped-def]
    """The tutorial's `--resourceUri=prometheus/sli.yaml` reaches the prometheus provider."""
    assert _add(state, "prometheus/sli.yaml", _sli(throughput="sum(rate(x[$DURATION_SECONDS]))"),
                "--stage=staging", "--service=carts") == 0
    config = sli_config_for(_records(state), "sockshop", "staging", "carts", "prometheus")
    assert config.query("throughput") == "sum(rate(x[$DURATION_SECONDS]))"


def test_precedence_level_then_provider_file(state) -> None:  # type: ignore[no-untyped-def]
    """Service over stage over project; within a level prometheus/sli.yaml over sli.yaml."""
    assert _add(state, "sli.yaml", _sli(a="project-shared", b="project-shared", c="project-shared")) == 0
    assert _add(state, "prometheus/sli.yaml", _sli(a="project-own", b="project-own")) == 0
    assert _add(state, "sli.yaml", _sli(a="stage-shared"), "--stage=staging") == 0
    assert _add(state, "/prometheus/sli.yaml", _sli(d="service-own"), "--stage=staging", "--service=carts") == 0
    config = sli_config_for(_records(state), "sockshop", "staging", "carts", "prometheus")
    assert dict(config.indicators) == {"a": "stage-shared", "b": "project-own", "c": "project-shared", "d": "service-own"}
    # the dynatrace provider reads only its own file: PromQL in sli.yaml is not a metric selector
    assert dict(sli_config_for(_records(state), "sockshop", "staging", "carts", "dynatrace").indicators) == {}
    assert _add(state, "dynatrace/sli.yaml", _sli(a="metricSelector=builtin:x"), "--stage=staging") == 0
    assert dict(sli_config_for(_records(state), "sockshop", "staging", "carts", "dynatrace").indicators) == {
        "a": "metricSelector=builtin:x"}


def test_unread_uri_is_refused_and_not_stored(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """A URI nothing reads is refused with the list of those read; nothing is written."""
    before = sorted(p.name for p in (state / "state").rglob("*"))
    assert _add(state, "helm/carts.tgz", "x", "--stage=staging", "--service=carts") == 2
    err = capsys.readouterr().err
    assert "helm/carts.tgz" in err and all(uri in err for uri in READ_URIS)
    assert sorted(p.name for p in (state / "state").rglob("*")) == before


def test_invalid_sli_file_is_refused(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """A provider SLI file that is not a valid sli.yaml is refused at add-resource."""
    assert _add(state, "prometheus/sli.yaml", "indicators: [a, b]\n", "--stage=staging") == 2
    assert "prometheus/sli.yaml" in capsys.readouterr().err


def test_unknown_sli_provider_is_refused(state, capsys) -> None:  # type: ignore[no-untyped-def]
    """`set sli-provider nosuchprovider` names the valid providers and changes nothing."""
    capsys.readouterr()
    assert main(["set", "sli-provider", "nosuchprovider", "--project", "sockshop"]) == 2
    err = capsys.readouterr().err
    assert "nosuchprovider" in err and all(p in err for p in ("builtin", "prometheus", "cloudwatch", "dynatrace"))
    assert _records(state).project_setting("sockshop", "sli-provider") is None
    assert main(["set", "sli-provider", "dynatrace", "--project", "sockshop"]) == 0
    assert _records(state).project_setting("sockshop", "sli-provider") == "dynatrace"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_only_read_uris_pass(uri: str) -> None:
    """Whatever the text, the check passes exactly the read URIs (leading '/' and blanks aside)."""
    try:
        normal = check_resource_uri(uri)
    except ValidationError as err:
        assert uri.strip().lstrip("/") not in READ_URIS and "tests.yaml" in str(err)
    else:
        assert normal == uri.strip().lstrip("/")
        assert (normal in READ_URIS and "<" not in normal) or JMX_URI.fullmatch(normal)


def test_jmeter_plans_are_accepted_by_keptns_layout() -> None:
    """jmeter/<name>.jmx is read (when tests.yaml names it); other places for a plan are not."""
    assert check_resource_uri("jmeter/load.jmx") == "jmeter/load.jmx"
    for bad in ("load.jmx", "jmeter/../x.jmx", "jmeter/a/b.jmx", "jmeter/<name>.jmx", "jmeter/.jmx"):
        with pytest.raises(ValidationError):
            check_resource_uri(bad)


def test_onboard_with_a_chart(state, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`--chart` renders the chart (helm template) for every stage and stores it; locally it says
    the image map runs the service; a folder without Chart.yaml is refused and nothing is
    onboarded; a cluster backend takes the chart (tests/integration/cli/test_onboard_workload.py)."""
    chart = ROOT / "examples" / "keptn-tutorial" / "carts"
    capsys.readouterr()
    assert main(["onboard", "service", "orders", "--project", "sockshop", f"--chart={chart}"]) == 0
    out = capsys.readouterr().out
    assert f"Workload from --chart {chart}" in out and "image map" in out
    assert _records(state).workload("sockshop", "staging", "orders") is not None
    assert main(["onboard", "service", "users", "--project", "sockshop", f"--chart={state}"]) == 2
    assert "Chart.yaml" in capsys.readouterr().err
    monkeypatch.setenv("SLUICE_BACKEND", "kubernetes")
    assert main(["onboard", "service", "payment", "--project", "sockshop", f"--chart={chart}"]) == 0
    assert "derives payment-primary/payment-canary" in capsys.readouterr().out
    assert _records(state).project("sockshop").services == ("carts", "orders", "payment")
