"""SLI providers, one module per provider; ``create_provider(name, **config)`` builds one by name.

Providers are registered by module path and imported only when asked for, so a function that
needs ``builtin`` never imports prometheus-api-client or boto3. Adding a provider costs one
module, one line in ``PROVIDERS``, one test module and one docs line.
"""

from __future__ import annotations

import importlib
from typing import Any

from sluice.errors import ConfigurationError
from sluice.ports.sli import SliProvider

__all__ = ["PROVIDERS", "create_provider"]

#: Provider name → "module:factory" (the factory takes the provider's keyword configuration).
PROVIDERS: dict[str, str] = {
    "builtin": "sluice.adapters.sli.builtin:BuiltinSliProvider",
    "prometheus": "sluice.adapters.sli.prometheus:PrometheusSliProvider",
    "cloudwatch": "sluice.adapters.sli.cloudwatch:CloudWatchSliProvider",
}


def create_provider(name: str, **config: Any) -> SliProvider:
    """A provider by its ``sliProvider`` name; ``ConfigurationError`` names the valid choices
    for an unknown name, and says what is wrong when the provider rejects its configuration."""
    target = PROVIDERS.get(name)
    if target is None:
        raise ConfigurationError(
            f"unknown SLI provider {name!r}: expected one of {', '.join(sorted(PROVIDERS))}"
        )
    module_name, _, attribute = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ConfigurationError(f"SLI provider {name!r} cannot be loaded from {target}: {err}") from err
    try:
        provider: SliProvider = factory(**config)
    except TypeError as err:
        raise ConfigurationError(f"SLI provider {name!r}: invalid configuration {sorted(config)}: {err}") from err
    return provider
