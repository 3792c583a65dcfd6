"""The official ``kubernetes`` client for the adapters that keep records in the core API
(ConfigMaps for state, Secrets for secrets): built from what the composition root passes, and
the vendor exceptions those adapters turn into Sluice's errors (one mapping, shared by both and
by ``sluice.adapters._kube``). Imported only when such an adapter is built (the client costs a
cold start)."""

from __future__ import annotations

import json
from typing import Any

from sluice.errors import ConfigurationError, PermanentError, RetryableError, SluiceError


def api_client(api: Any, owner: str) -> Any:
    """``api`` as a ``kubernetes.client.ApiClient`` (it may be one, or a ``Configuration``);
    ``owner`` names the adapter in the error for anything else."""
    from kubernetes import client

    if isinstance(api, client.Configuration):
        api = client.ApiClient(api)
    if not isinstance(api, client.ApiClient):
        raise ConfigurationError(f"{owner}: expected a kubernetes ApiClient or Configuration, found {type(api).__name__}")
    return api


def client_errors() -> tuple[type[Exception], ...]:
    """The exceptions a client call may raise (an answer of the API server, or no answer)."""
    import urllib3
    from kubernetes import client

    return (client.ApiException, urllib3.exceptions.HTTPError, OSError)


def core_api(api: Any, owner: str) -> tuple[Any, tuple[type[Exception], ...], Any]:
    """``(kubernetes.client, the exceptions a call may raise, a CoreV1Api)`` for ``api``, a
    ``kubernetes.client.ApiClient`` or ``Configuration``; ``owner`` names the adapter in errors."""
    from kubernetes import client

    return client, client_errors(), client.CoreV1Api(api_client(api, owner))


def status_of(err: Exception) -> int | None:
    """The HTTP status of a kubernetes ApiException, ``None`` for transport failures."""
    status = getattr(err, "status", None)
    if isinstance(status, int) and status > 0 and hasattr(err, "body"):
        return status
    return None


def message_of(err: Exception) -> str:
    """The API server's ``message`` (its Status object), else the exception's reason or text."""
    body = getattr(err, "body", None)
    if body:
        try:
            doc = json.loads(body)
        except (TypeError, ValueError):
            return str(body)[:300]
        if isinstance(doc, dict) and doc.get("message"):
            return str(doc["message"])
    return str(getattr(err, "reason", None) or err).strip()


def record_error(err: Exception, action: str, rbac_hint: str) -> SluiceError:
    """The Sluice error for a failed call of a record store (``cannot <action>: …``): no answer,
    408, 429 or 5xx → ``RetryableError``; 401/403 → ``ConfigurationError`` ending in
    ``rbac_hint``; any other status → ``PermanentError``. (404 and 409 mean something to each
    store, so each store reads them first.)"""
    code = status_of(err)
    if code is None:
        return RetryableError(f"cannot {action}: the Kubernetes API is unreachable ({type(err).__name__}: {err})")
    message = message_of(err)
    if code in (401, 403):
        return ConfigurationError(f"cannot {action}: the Kubernetes API answered {code} ({message}); {rbac_hint}")
    if code in (408, 429) or code >= 500:
        return RetryableError(f"cannot {action}: the Kubernetes API answered {code} ({message})")
    return PermanentError(f"cannot {action}: the Kubernetes API answered {code} ({message})")
