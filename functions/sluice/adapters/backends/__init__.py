"""Deployment backends, one module each; ``create_backend`` picks one by name.

- ``local``: processes on this machine behind the weighted local router (the embedded default)
- ``noop``: runs nothing and records the calls (tests of the flow)
- ``kubernetes``: Deployments + Services per slot; Istio VirtualService weights or a Service
  selector switch (on a cluster)
- ``knative``: one Knative Service per stage; revisions with ``primary``/``canary`` traffic tags

Modules are imported only when chosen, so picking ``noop`` never loads the others.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from sluice.errors import ConfigurationError
from sluice.ports.backend import DeploymentBackend

BACKENDS: dict[str, tuple[str, str]] = {
    "local": ("sluice.adapters.backends.local", "LocalBackend"),
    "noop": ("sluice.adapters.backends.noop", "NoopBackend"),
    "kubernetes": ("sluice.adapters.backends.kubernetes", "KubernetesBackend"),
    "knative": ("sluice.adapters.backends.knative", "KnativeBackend"),
}


def create_backend(name: str, **config: Any) -> DeploymentBackend:
    """The backend called ``name``, built with ``config``; ``ConfigurationError`` if unknown."""
    try:
        module_name, class_name = BACKENDS[name]
    except KeyError as err:
        raise ConfigurationError(
            f"unknown deployment backend {name!r}: expected one of {', '.join(sorted(BACKENDS))}"
        ) from err
    factory = getattr(import_module(module_name), class_name)
    try:
        backend: DeploymentBackend = factory(**config)
    except TypeError as err:
        raise ConfigurationError(f"deployment backend {name!r}: invalid settings {sorted(config)}: {err}") from err
    return backend


__all__ = ["BACKENDS", "create_backend"]
