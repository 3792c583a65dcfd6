"""Deployment backends, one module each; ``create_backend`` picks one by name.

- ``local``: processes on this machine behind the weighted local router (the embedded default)
- ``noop``: runs nothing and records the calls (tests of the flow)
- ``kubernetes``: Deployments + Services per slot; Istio VirtualService weights or a Service
  selector switch (on a cluster)
- ``knative``: one Knative Service per stage; revisions with ``primary``/``canary`` traffic tags

Modules are imported only when chosen, so picking ``noop`` never loads the others.
"""

from __future__ import annotations

from typing import Any

from sluice.adapters.catalogue import build
from sluice.ports.backend import DeploymentBackend

BACKENDS: dict[str, str] = {
    "kubernetes": "sluice.adapters.backends.kubernetes:KubernetesBackend",
    "knative": "sluice.adapters.backends.knative:KnativeBackend",
    "local": "sluice.adapters.backends.local:LocalBackend",
    "noop": "sluice.adapters.backends.noop:NoopBackend",
}


def create_backend(name: str, **config: Any) -> DeploymentBackend:
    """The backend called ``name``, built with ``config``; ``ConfigurationError`` if unknown."""
    backend: DeploymentBackend = build("deployment backend", BACKENDS, name, config)
    return backend


__all__ = ["BACKENDS", "create_backend"]
