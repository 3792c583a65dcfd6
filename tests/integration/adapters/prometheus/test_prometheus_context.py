"""The prometheus provider as the sli function builds it, ``create(ctx)``: connection record and
secret + merged sli.yaml; and what ``sluice set prometheus`` stores."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from sluice.adapters.secrets.memory import MemorySecrets
from sluice.adapters.sli import SECTIONS
from sluice.adapters.sli.prometheus import (
    PrometheusSliProvider,
    connection_for,
    connection_record,
    create,
    queries,
    record_name,
    secret_name,
)
from sluice.adapters.state.memory import MemoryStore
from sluice.config import Settings
from sluice.errors import ConfigurationError, ValidationError
from sluice.ports.secrets import SecretStore
from sluice.ports.sli import ProviderContext
from sluice.services.records import Records
from sluice.services.sli_config import load_sli_config, provider_context
from sluice.services.sli_config import store_connection as store

TOKEN = "tok-3f9a-secret"


def ctx(records: Records, secrets: SecretStore | None = None, default_url: str = "http://127.0.0.1:9090") -> ProviderContext:
    held = secrets or MemorySecrets()
    return provider_context(Settings(prometheus_url=default_url), records, lambda: held, "sockshop", "staging", "carts")


def store_connection(records: Records, project: str, data: Mapping[str, str], secrets: SecretStore) -> None:
    """What ``sluice set prometheus`` does: validate in the provider's module, write in the services."""
    store(records, secrets, project, connection_record(project, data))


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
    provider = create(ctx(records, secrets))
    assert isinstance(provider, PrometheusSliProvider)
    assert dict(provider.config.indicators) == {"a": "project_a", "b": "stage_b", "c": "service_c"}
    assert provider.connection.url == "https://prom.example:9090" and provider.connection.bearer_token == TOKEN
    assert TOKEN not in repr(provider)


def test_no_record_uses_the_default_url(records: Records) -> None:
    """Without a record the settings' URL is used, with no login; without sli.yaml only built-ins."""
    assert record_name("sockshop") == "prometheus-sockshop"
    conn = connection_for(ctx(records))
    assert conn.url == "http://127.0.0.1:9090" and not conn.bearer_token and not conn.username
    assert dict(queries(ctx(records)).indicators) == {}


def test_invalid_sli_yaml_is_a_configuration_error(records: Records) -> None:
    """A broken stage-level sli.yaml makes the provider unusable, naming the service and the level."""
    records.put_resource("sockshop", "staging", "", "sli.yaml", "indicators: [a, b]")
    with pytest.raises(ConfigurationError, match=r"sli.yaml of carts in sockshop/staging.*stage level"):
        create(ctx(records))


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
    assert connection_for(ctx(records, secrets, "")).password == TOKEN


def test_credentials_stored_the_old_way_move_to_the_secret(records: Records) -> None:
    """A record that still holds the token (written before secrets moved): the sli function uses it
    and writes nothing (it may only read); ``sluice set prometheus`` (store_connection) moves it."""
    from sluice.ports.state import Record

    records.store.put(Record(record_name("sockshop"), {"url": "http://p", "token": TOKEN}, {}))
    secrets = MemorySecrets()
    assert connection_for(ctx(records, secrets, "")).bearer_token == TOKEN
    assert secrets.get(secret_name("sockshop")) is None, "the sli function only reads"
    store_connection(records, "sockshop", {"url": "http://p", "token": TOKEN}, secrets)
    assert connection_for(ctx(records, secrets, "")).bearer_token == TOKEN
    record = records.store.get(record_name("sockshop"))
    assert record is not None and TOKEN not in str(dict(record.data)) and record.data["url"] == "http://p"
    assert secrets.get(secret_name("sockshop")) == {"token": TOKEN}


def test_yaml_edge_reports_syntax_errors_with_the_level(records: Records) -> None:
    """A YAML syntax error names the file, the level and the line."""
    records.put_resource("sockshop", "staging", "carts", "sli.yaml", "indicators: {a: [")
    with pytest.raises(ValidationError, match=r"sli.yaml \(service level\).*line 1"):
        queries(ctx(records))


def test_a_cloudwatch_section_is_left_to_its_provider(records: Records) -> None:
    """sli.yaml may hold the cloudwatch provider's section beside the indicators: the generic part
    (and the prometheus provider) leave it alone, and reject any other unknown top-level key."""
    text = "indicators: {a: up}\ncloudwatch: {indicators: {}}\n"
    assert dict(load_sli_config(text, "sli.yaml", SECTIONS).indicators) == {"a": "up"}
    records.put_resource("sockshop", "", "", "sli.yaml", text)
    assert dict(queries(ctx(records)).indicators) == {"a": "up"}
    with pytest.raises(ValidationError, match=r"cloudwach: unknown field \(valid: cloudwatch, indicators, spec_version\)"):
        load_sli_config("indicators: {a: up}\ncloudwach: {}\n", "sli.yaml", SECTIONS)


def test_example_sli_yaml_is_valid() -> None:
    """examples/sockshop/sli.yaml parses and defines the five indicators of the tutorial."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[4] / "examples" / "sockshop" / "sli.yaml"
    config = load_sli_config(path.read_text(), str(path))
    assert set(config.indicators) == {"throughput", "error_rate", "response_time_p50", "response_time_p90", "response_time_p95"}
