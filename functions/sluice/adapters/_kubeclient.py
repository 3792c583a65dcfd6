"""The official ``kubernetes`` client for the adapters that keep records in the core API
(ConfigMaps for state, Secrets for secrets): built from what the composition root passes, and
the vendor exceptions those adapters turn into Sluice's errors. Imported only when such an
adapter is built (the client costs a cold start)."""

from __future__ import annotations

from typing import Any

from sluice.errors import ConfigurationError


def core_api(api: Any, owner: str) -> tuple[Any, tuple[type[Exception], ...], Any]:
    """``(kubernetes.client, the exceptions a call may raise, a CoreV1Api)`` for ``api``, a
    ``kubernetes.client.ApiClient`` or ``Configuration``; ``owner`` names the adapter in errors."""
    import urllib3
    from kubernetes import client

    if isinstance(api, client.Configuration):
        api = client.ApiClient(api)
    if not isinstance(api, client.ApiClient):
        raise ConfigurationError(f"{owner}: expected a kubernetes ApiClient or Configuration, found {type(api).__name__}")
    return client, (client.ApiException, urllib3.exceptions.HTTPError, OSError), client.CoreV1Api(api)
