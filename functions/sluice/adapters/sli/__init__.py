"""SLI providers, one module per provider; ``create_provider(name, **config)`` builds one by name.

Providers are registered by module path and imported only when asked for, so a function that
needs ``builtin`` never imports prometheus-api-client or boto3. Adding a provider costs one
module, one line in ``PROVIDERS``, one test module and one docs line.
"""

from __future__ import annotations

from typing import Any

from sluice.adapters.catalogue import build
from sluice.ports.sli import SliProvider

__all__ = ["PROVIDERS", "create_provider"]

#: Provider name → "module:factory" (the factory takes the provider's keyword configuration).
PROVIDERS: dict[str, str] = {
    "builtin": "sluice.adapters.sli.builtin:BuiltinSliProvider",
    "prometheus": "sluice.adapters.sli.prometheus:PrometheusSliProvider",
    "cloudwatch": "sluice.adapters.sli.cloudwatch:CloudWatchSliProvider",
    "dynatrace": "sluice.adapters.sli.dynatrace:DynatraceSliProvider",
}


def create_provider(name: str, **config: Any) -> SliProvider:
    """A provider by its ``sliProvider`` name; ``ConfigurationError`` names the valid choices
    for an unknown name, and says what is wrong when the provider rejects its configuration."""
    provider: SliProvider = build("SLI provider", PROVIDERS, name, config)
    return provider
