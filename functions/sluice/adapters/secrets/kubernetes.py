"""Kubernetes Secret store: one Secret per name, in one namespace.

RBAC on each Secret decides who reads it: ``knative/rbac.yaml`` grants each function ``get`` on
exactly the Secrets it consumes (``resourceNames``), and the approver keys' Secrets are the
approver lists (a RoleBinding per person, ``--resource-names=sluice-approver-<project>``).

Errors: 404 → ``None``/``False``; 401/403 → ``ConfigurationError`` naming the Secret;
5xx, 429 and connection failures → ``RetryableError``. No kubernetes exception crosses the port.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sluice.adapters._kubeclient import record_error, status_of
from sluice.adapters.state._rules import check_name
from sluice.adapters.state.configmap import MANAGED_BY, MANAGER
from sluice.errors import ConfigurationError, SluiceError


class KubernetesSecrets:
    """Secrets in ``namespace`` through the official ``kubernetes`` client."""

    def __init__(self, api: Any, namespace: str, *, request_timeout: float = 10.0) -> None:
        from sluice.adapters._kubeclient import core_api

        self._client, self._errors, self._api = core_api(api, "KubernetesSecrets")
        check_name(namespace)
        self._namespace = namespace
        self._timeout = request_timeout

    def get(self, name: str) -> Mapping[str, str] | None:
        check_name(name)
        try:
            secret = self._api.read_namespaced_secret(name, self._namespace, _request_timeout=self._timeout)
        except self._errors as err:
            if status_of(err) == 404:
                return None
            raise self._error(err, f"read Secret {self._namespace}/{name}") from err
        try:
            values = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        except (ValueError, UnicodeDecodeError) as err:
            raise ConfigurationError(f"Secret {self._namespace}/{name}: a value is not UTF-8 text") from err
        return MappingProxyType(values)

    def put(self, name: str, values: Mapping[str, str]) -> None:
        check_name(name)
        body = self._client.V1Secret(
            metadata=self._client.V1ObjectMeta(name=name, labels={MANAGED_BY: MANAGER}),
            type="Opaque",
            data={k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        )
        try:
            self._api.create_namespaced_secret(self._namespace, body, _request_timeout=self._timeout)
            return
        except self._errors as err:
            if status_of(err) != 409:
                raise self._error(err, f"create Secret {self._namespace}/{name}") from err
        try:
            self._api.replace_namespaced_secret(name, self._namespace, body, _request_timeout=self._timeout)
        except self._errors as err:
            raise self._error(err, f"replace Secret {self._namespace}/{name}") from err

    def delete(self, name: str) -> bool:
        check_name(name)
        try:
            self._api.delete_namespaced_secret(name, self._namespace, _request_timeout=self._timeout)
        except self._errors as err:
            if status_of(err) == 404:
                return False
            raise self._error(err, f"delete Secret {self._namespace}/{name}") from err
        return True

    def _error(self, err: Exception, action: str) -> SluiceError:
        return record_error(err, action, "this service account has no RBAC on that Secret (see knative/rbac.yaml)")
