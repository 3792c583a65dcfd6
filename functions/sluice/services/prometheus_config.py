"""A project's Prometheus: its connection record and the provider the ``sli`` function uses.

The connection settings live in the Secret-like record ``prometheus-<project>`` (keys ``url``,
``token``, ``user``, ``password``, ``insecure_skip_tls_verify``); without one, the settings'
``prometheus_url`` is used with no login. The queries are the merged sli.yaml of the service in
the stage. The record's secrets are never logged nor put in a message.
"""

from __future__ import annotations

from collections.abc import Mapping

from sluice.adapters.sli import create_provider
from sluice.adapters.sli.prometheus import PrometheusConnection
from sluice.core.events import GetSli
from sluice.errors import ConfigurationError, ValidationError
from sluice.ports.sli import SliProvider
from sluice.ports.state import Record
from sluice.services.records import KIND, PROJECT, Records
from sluice.services.sli_config import sli_config_for
from sluice.services.state import cas_update

__all__ = ["connection_for", "prometheus_provider", "record_name", "store_connection"]


def record_name(project: str) -> str:
    """The name of a project's Prometheus connection record."""
    return f"prometheus-{project}"


def connection_for(records: Records, project: str, default_url: str) -> PrometheusConnection:
    """The project's connection (its record, else ``default_url`` without login)."""
    record = records.store.get(record_name(project))
    return PrometheusConnection.from_record(record.data if record else None, default_url=default_url)


def store_connection(records: Records, project: str, data: Mapping[str, str]) -> None:
    """Validate and store a project's connection record (replacing the previous one)."""
    PrometheusConnection.from_record(data)  # ConfigurationError before anything is written
    name = record_name(project)

    def apply(record: Record | None) -> Record:
        return Record(name, dict(data), {KIND: "prometheus-connection", PROJECT: project},
                      record.resource_version if record else None)

    cas_update(records.store, name, apply)


def prometheus_provider(
    records: Records, request: GetSli, default_url: str, timeout_s: float = 30.0
) -> SliProvider:
    """The ``prometheus`` provider for one get-sli request: the project's connection and the
    merged sli.yaml of its service in its stage. ``ConfigurationError`` when either is invalid."""
    connection = connection_for(records, request.project, default_url)
    try:
        config = sli_config_for(records, request.project, request.stage, request.service)
    except ValidationError as err:
        raise ConfigurationError(
            f"the sli.yaml of {request.service} in {request.project}/{request.stage} is not valid: {err}"
        ) from err
    return create_provider("prometheus", connection=connection, queries=config, timeout_s=timeout_s)
