"""A project's Prometheus: its connection record and the provider the ``sli`` function uses.

The connection settings live in the record ``prometheus-<project>`` (keys ``url``, ``user``,
``insecure_skip_tls_verify``), its credentials (``token``, ``password``) in the secret
``sluice-prometheus-<project>`` — a Kubernetes Secret only the sli function may read, locally a
0600 file. Without a record, the settings' ``prometheus_url`` is used with no login. The queries
are the merged sli.yaml and prometheus/sli.yaml of the service in the stage. Credentials are never logged nor put in a
message; a record that still holds them (how they were stored before) has them moved to the
secret store the first time it is read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sluice.adapters.sli import create_provider
from sluice.adapters.sli.prometheus import PrometheusConnection
from sluice.core.events import GetSli
from sluice.errors import ConfigurationError, ValidationError
from sluice.ports.secrets import SecretStore
from sluice.ports.sli import SliProvider
from sluice.ports.state import Record
from sluice.services.records import KIND, PROJECT, Records
from sluice.services.sli_config import sli_config_for
from sluice.services.state import cas_update

log = logging.getLogger("sluice.sli")

__all__ = ["connection_for", "prometheus_provider", "record_name", "secret_name", "store_connection"]


def record_name(project: str) -> str:
    """The name of a project's Prometheus connection record."""
    return f"prometheus-{project}"


#: Keys of the connection that are credentials: they live in the secret, never in the record.
SECRET_KEYS = ("token", "password")


def secret_name(project: str) -> str:
    """The secret holding a project's Prometheus credentials."""
    return f"sluice-prometheus-{project}"


def connection_for(records: Records, project: str, default_url: str, secrets: SecretStore) -> PrometheusConnection:
    """The project's connection (its record and secret, else ``default_url`` without login)."""
    record = records.store.get(record_name(project))
    if record is None:
        return PrometheusConnection.from_record(None, default_url=default_url)
    data = dict(record.data)
    if any(data.get(k) for k in SECRET_KEYS):  # stored the old way: used, never moved here (sli only reads)
        log.warning("the Prometheus credentials of project %s are still in the %s record; move them to the secret "
                    "store with 'sluice set prometheus --project %s' (same flags)", project, record_name(project), project)
    data.update((secrets.get(secret_name(project)) or {}).items())
    return PrometheusConnection.from_record(data, default_url=default_url)


def store_connection(records: Records, project: str, data: Mapping[str, str], secrets: SecretStore) -> None:
    """Validate and store a project's connection: settings in the record, credentials in the secret."""
    PrometheusConnection.from_record(data)  # ConfigurationError before anything is written
    name = record_name(project)
    credentials = {k: v for k, v in data.items() if k in SECRET_KEYS and v}
    if credentials:
        secrets.put(secret_name(project), credentials)
    else:
        secrets.delete(secret_name(project))

    def apply(record: Record | None) -> Record:
        return Record(name, {k: v for k, v in data.items() if k not in SECRET_KEYS},
                      {KIND: "prometheus-connection", PROJECT: project}, record.resource_version if record else None)

    cas_update(records.store, name, apply)


def prometheus_provider(
    records: Records, request: GetSli, default_url: str, secrets: SecretStore, timeout_s: float = 30.0
) -> SliProvider:
    """The ``prometheus`` provider for one get-sli request: the project's connection and the
    merged sli.yaml of its service in its stage. ``ConfigurationError`` when either is invalid."""
    connection = connection_for(records, request.project, default_url, secrets)
    try:
        config = sli_config_for(records, request.project, request.stage, request.service, "prometheus")
    except ValidationError as err:
        raise ConfigurationError(
            f"the sli.yaml or prometheus/sli.yaml of {request.service} in {request.project}/{request.stage} "
            f"is not valid: {err}"
        ) from err
    return create_provider("prometheus", connection=connection, queries=config, timeout_s=timeout_s)
