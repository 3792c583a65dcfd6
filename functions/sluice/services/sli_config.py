"""The YAML edge of ``sli.yaml`` and what an SLI provider is built from.

The generic merge rules and validation are pure (:mod:`sluice.core.sli_config`); each provider
parses its own part in its own module (``sluice.adapters.sli.<name>``). This module only loads
the YAML of each level from the store, fills a provider's :class:`ProviderContext`, and writes
the :class:`ConnectionRecord` a provider's module validated (``sluice set prometheus`` and
``sluice set dynatrace``).

The YAML loader is imported only when a provider asks for a file: the ``builtin`` provider,
which reads none, keeps the sli function's cold start free of it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from sluice.ports.sli import ConnectionRecord, ProviderContext
from sluice.ports.state import Record
from sluice.services.records import KIND, PROJECT, Records
from sluice.services.state import cas_update

if TYPE_CHECKING:
    from sluice.config import Settings
    from sluice.core.sli_config import SliConfig
    from sluice.ports.secrets import SecretStore

__all__ = ["SLI_URI", "load_sli_config", "provider_context", "store_connection"]

#: The resource URI of the SLI queries.
SLI_URI = "sli.yaml"


def load_sli_config(text: str, source: str, sections: Collection[str] = ()) -> SliConfig:
    """One sli.yaml text (its generic part; ``sections`` are the providers' own top-level keys);
    ``ValidationError`` naming ``source`` and every problem."""
    from sluice.core.sli_config import parse_sli_config
    from sluice.services.yamldoc import load_document

    return parse_sli_config(load_document(text, source), source, sections=sections)


def provider_context(
    settings: Settings, records: Records, secrets: Callable[[], SecretStore], project: str, stage: str, service: str,
) -> ProviderContext:
    """What a provider for ``service`` in ``project``/``stage`` is built from: the settings, the
    stored SLI files per level (loaded as YAML when a provider asks for one), the connection
    records, the secrets (the store is built only when a provider reads one) and the tests'
    measurements."""

    def levels(uri: str) -> Sequence[object]:
        # cold start: only a provider that reads an SLI file calls this (builtin reads none)
        from sluice.core.sli_config import LEVELS
        from sluice.services.yamldoc import load_document

        texts = records.resource_levels(project, stage, service, uri)
        return tuple(None if text is None else load_document(text, f"{uri} ({level} level)")
                     for level, text in zip(LEVELS, texts, strict=True))

    def record(name: str) -> Mapping[str, str] | None:
        stored = records.store.get(name)
        return None if stored is None else stored.data

    def secret(name: str) -> Mapping[str, str] | None:
        return secrets().get(name)

    return ProviderContext(settings, project, stage, service, levels, record, secret, records.measurements)


def store_connection(records: Records, secrets: SecretStore, project: str, connection: ConnectionRecord) -> None:
    """Write a project's validated connection: the credentials to the secret (or delete it when
    there are none), then the settings record with compare-and-swap (when it has settings)."""
    if connection.secret_values:
        secrets.put(connection.secret_name, connection.secret_values)
    else:
        secrets.delete(connection.secret_name)
    if not connection.data:
        return

    def apply(record: Record | None) -> Record:
        return Record(connection.name, dict(connection.data), {KIND: connection.kind, PROJECT: project},
                      record.resource_version if record else None)

    cas_update(records.store, connection.name, apply)
