"""One way to pick an adapter by name: every registry (backends, stores, SLI providers,
archives, registries, test-unit launchers) lists ``name → "module:Class"`` and calls ``build``.

Modules are imported only when chosen (cold start pays for what a function uses); an unknown
name is refused naming the valid ones; settings the adapter does not take are refused too.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from sluice.errors import ConfigurationError


def build(what: str, table: Mapping[str, str], name: str, config: Mapping[str, Any]) -> Any:
    """The adapter ``name`` of the kind ``what`` (e.g. "deployment backend"), built with ``config``."""
    target = table.get(name)
    if target is None:
        raise ConfigurationError(f"unknown {what} {name!r}: expected one of {', '.join(sorted(table))}")
    module_name, _, attribute = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ConfigurationError(f"{what} {name!r} cannot be loaded from {target}: {err}") from err
    try:
        return factory(**config)
    except TypeError as err:
        raise ConfigurationError(f"{what} {name!r}: invalid settings {sorted(config)}: {err}") from err
