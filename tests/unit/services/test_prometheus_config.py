"""The prometheus provider as the sli function builds it: connection record + merged sli.yaml."""

from __future__ import annotations

import pytest

from sluice.adapters.secrets.memory import MemorySecrets
from sluice.adapters.sli.prometheus import PrometheusSliProvider
from sluice.adapters.state.memory import MemoryStore
from sluice.core.events import GetSli
from sluice.errors import ConfigurationError, ValidationError
from sluice.services.prometheus_config import (
    connection_for,
    prometheus_provider,
    record_name,
    secret_name,
    store_connection,
)
from sluice.services.records import Records
from sluice.services.sli_config import load_sli_config, merged_sli_config, sli_config_for

TOKEN = "tok-3f9a-secret"


def request(**changes: str) -> GetSli:
    fields = {"project": "sockshop", "stage": "staging", "service": "carts", "sliProvider": "prometheus",
              "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T10:01:00Z", "indicators": ["a", "b", "c"],
              "deployment": "canary", **changes}
    return GetSli.from_dict(fields)


@pytest.fixture
def records() -> Records:
    records = Records(MemoryStore())
    records.create_project("sockshop", "stages: [{name: staging}]", {"stages": [{"name": "staging"}]})
    return records


def test_provider_merges_levels_and_reads_the_record(records: Records) -> None:
    """The provider gets the project's record and the sli.yaml merged service > stage > project."""
    records.put_resource("sockshop", "", "", "sli.yaml", "indicators: {a: project_a, b: project_b, c: project_c}")
    records.put_resource("sockshop", "staging", "", "sli.yaml", "indicators: {b: stage_b}")
    records.put_resource("sockshop", "staging", "carts", "sli.yaml", "spec_version: '1.0'\nindicators: {c: service_c}")
    secrets = MemorySecrets()
    store_connection(records, "sockshop", {"url": "https://prom.example:9090", "token": TOKEN}, secrets)
    provider = prometheus_provider(records, request(), default_url="http://127.0.0.1:9090", secrets=secrets)
    assert isinstance(provider, PrometheusSliProvider)
    assert dict(provider.config.indicators) == {"a": "project_a", "b": "stage_b", "c": "service_c"}
    assert provider.connection.url == "https://prom.example:9090" and provider.connection.bearer_token == TOKEN
    assert TOKEN not in repr(provider)


def test_no_record_uses_the_default_url(records: Records) -> None:
    """Without a record the settings' URL is used, with no login; without sli.yaml only built-ins."""
    assert record_name("sockshop") == "prometheus-sockshop"
    conn = connection_for(records, "sockshop", "http://127.0.0.1:9090", MemorySecrets())
    assert conn.url == "http://127.0.0.1:9090" and not conn.bearer_token and not conn.username
    assert dict(sli_config_for(records, "sockshop", "staging", "carts").indicators) == {}


def test_invalid_sli_yaml_is_a_configuration_error(records: Records) -> None:
    """A broken stage-level sli.yaml makes the provider unusable, naming the service and the level."""
    records.put_resource("sockshop", "staging", "", "sli.yaml", "indicators: [a, b]")
    with pytest.raises(ConfigurationError, match=r"sli.yaml of carts in sockshop/staging.*stage level"):
        prometheus_provider(records, request(), default_url="http://127.0.0.1:9090", secrets=MemorySecrets())


def test_invalid_record_is_rejected_before_writing(records: Records) -> None:
    """store_connection validates first: nothing is stored for a bad record, and no secret is shown."""
    with pytest.raises(ConfigurationError) as err:
        store_connection(records, "sockshop", {"url": "http://p", "token": TOKEN, "user": "u", "password": TOKEN},
                         MemorySecrets())
    assert TOKEN not in str(err.value)
    assert records.store.get(record_name("sockshop")) is None


def test_credentials_live_in_the_secret_and_never_in_the_record(records: Records) -> None:
    """The record keeps url and user; token and password go to the project's secret."""
    secrets = MemorySecrets()
    store_connection(records, "sockshop", {"url": "http://p", "user": "u", "password": TOKEN}, secrets)
    record = records.store.get(record_name("sockshop"))
    assert record is not None and dict(record.data) == {"url": "http://p", "user": "u"}
    assert secrets.get(secret_name("sockshop")) == {"password": TOKEN}
    assert connection_for(records, "sockshop", "", secrets).password == TOKEN


def test_credentials_stored_the_old_way_move_to_the_secret(records: Records) -> None:
    """A record that still holds the token (written before secrets moved): the sli function uses it
    and writes nothing (it may only read); ``sluice set prometheus`` (store_connection) moves it."""
    from sluice.ports.state import Record
    from sluice.services.prometheus_config import store_connection

    records.store.put(Record(record_name("sockshop"), {"url": "http://p", "token": TOKEN}, {}))
    secrets = MemorySecrets()
    assert connection_for(records, "sockshop", "", secrets).bearer_token == TOKEN
    assert secrets.get(secret_name("sockshop")) is None, "the sli function only reads"
    store_connection(records, "sockshop", {"url": "http://p", "token": TOKEN}, secrets)
    assert connection_for(records, "sockshop", "", secrets).bearer_token == TOKEN
    record = records.store.get(record_name("sockshop"))
    assert record is not None and TOKEN not in str(dict(record.data)) and record.data["url"] == "http://p"
    assert secrets.get(secret_name("sockshop")) == {"token": TOKEN}


def test_yaml_edge_reports_syntax_errors_with_the_level() -> None:
    """A YAML syntax error names the level and the line."""
    with pytest.raises(ValidationError, match=r"sli.yaml \(service level\).*line 1"):
        merged_sli_config(None, None, "indicators: {a: [")


def test_example_sli_yaml_is_valid() -> None:
    """examples/sockshop/sli.yaml parses and defines the five indicators of the tutorial."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "examples" / "sockshop" / "sli.yaml"
    config = load_sli_config(path.read_text(), str(path))
    assert set(config.indicators) == {"throughput", "error_rate", "response_time_p50", "response_time_p90", "response_time_p95"}
