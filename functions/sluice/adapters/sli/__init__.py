"""SLI providers, one module per provider, each built by its ``create(ctx)``; :func:`create` picks one by name.

A provider module (``builtin``, ``prometheus``, ``cloudwatch``, ``dynatrace``) holds everything
about it: the client, the parsing of its own part of ``sli.yaml``, its connection record and
secret, and one factory ``create(ctx: ProviderContext) -> SliProvider``. Providers are
registered by module path and imported only when asked for, so a function that needs
``builtin`` never imports prometheus-api-client, httpx or boto3. Adding a provider costs one
module, one line in ``PROVIDERS``, one test module and one docs line.
"""

from __future__ import annotations

from typing import NamedTuple

from sluice.adapters.catalogue import build
from sluice.ports.sli import ProviderContext, SliProvider

__all__ = ["PROVIDERS", "SECTIONS", "Provider", "create"]


class Provider(NamedTuple):
    """A line of the table: the provider's module (its ``create(ctx)`` builds it), and whether it
    owns a top-level section of sli.yaml named after it."""

    module: str
    section: bool = False


#: Provider name → its module. The one list of providers (``sluice set sli-provider`` checks it too).
PROVIDERS: dict[str, Provider] = {
    "builtin": Provider("sluice.adapters.sli.builtin"),
    "prometheus": Provider("sluice.adapters.sli.prometheus"),
    "cloudwatch": Provider("sluice.adapters.sli.cloudwatch", section=True),
    "dynatrace": Provider("sluice.adapters.sli.dynatrace"),
}

#: Top-level keys of sli.yaml that are a provider's own section (the generic part leaves them to it).
SECTIONS: frozenset[str] = frozenset(name for name, provider in PROVIDERS.items() if provider.section)


def create(name: str, ctx: ProviderContext) -> SliProvider:
    """The provider ``name`` built from ``ctx``; ``ConfigurationError`` names the valid choices
    for an unknown name, and says what is wrong when the provider rejects its configuration."""
    table = {key: f"{provider.module}:create" for key, provider in PROVIDERS.items()}
    provider: SliProvider = build("SLI provider", table, name, {"ctx": ctx})
    return provider
