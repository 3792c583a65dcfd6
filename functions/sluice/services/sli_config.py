"""The YAML edge of ``sli.yaml``: resource texts → a merged, validated :class:`SliConfig`.

The merge rules and validation are pure (:mod:`sluice.core.sli_config`); this module only
parses the YAML of each level and reads the levels from the store.
"""

from __future__ import annotations

from sluice.core.resources import sli_uris
from sluice.core.sli_config import LEVELS, SliConfig, merge_sli_configs, merge_sli_documents, parse_sli_config
from sluice.services.documents import load_document
from sluice.services.records import Records

__all__ = ["SLI_URI", "level_documents", "load_sli_config", "merged_sli_config", "sli_config_for"]

#: The resource URI of the SLI queries.
SLI_URI = "sli.yaml"


def load_sli_config(text: str, source: str) -> SliConfig:
    """One sli.yaml text; ``ValidationError`` naming ``source`` and every problem."""
    return parse_sli_config(load_document(text, source), source)


def _documents(texts: tuple[str | None, ...]) -> list[object]:
    """The (project, stage, service) levels' texts loaded as YAML (``None`` stays ``None``)."""
    return [
        None if text is None else load_document(text, f"sli.yaml ({level} level)")
        for level, text in zip(LEVELS, texts, strict=True)
    ]


def level_documents(records: Records, project: str, stage: str, service: str) -> list[object]:
    """The stored sli.yaml of a service in a stage at each level (project, stage, service),
    loaded as YAML; ``None`` where a level has none. Providers merge their own sections."""
    return _documents(records.resource_levels(project, stage, service, SLI_URI))


def merged_sli_config(project_text: str | None, stage_text: str | None, service_text: str | None) -> SliConfig:
    """The three levels' texts (each may be None) merged, the most specific level winning."""
    return merge_sli_configs(*_documents((project_text, stage_text, service_text)))


def sli_config_for(records: Records, project: str, stage: str, service: str, provider: str = "prometheus") -> SliConfig:
    """The queries ``provider`` uses for a service in a stage, as stored (empty when there are
    none): its SLI files (``sluice.core.resources.sli_uris``) at the project, stage and service
    levels, merged per indicator — the most specific level wins, and within a level the
    provider's own file wins over ``sli.yaml``."""
    texts = {uri: records.resource_levels(project, stage, service, uri) for uri in sli_uris(provider)}
    documents: list[tuple[str, str, object]] = []
    for i, level in enumerate(LEVELS):
        for uri, levels in texts.items():
            text = levels[i]
            if text is not None:
                source = f"{uri} ({level} level)"
                documents.append((level, source, load_document(text, source)))
    return merge_sli_documents(documents)
