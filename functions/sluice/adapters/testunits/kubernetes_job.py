"""Test units as Kubernetes Jobs (on a cluster): one Job per deployment-finished event.

The Job runs the function image's ``python -m sluice.functions.testworker`` with the event in
``SLUICE_TEST_EVENT``; its name derives from the event id, so a duplicate delivery finds the
Job already there (409) and starts nothing new. ``activeDeadlineSeconds`` is the hard limit.

The pod passes the ``restricted`` Pod Security level (non-root uid 10001, no privilege
escalation, no capabilities, the runtime's seccomp profile) and requests resources, so it runs in
the ``sluice`` namespace that enforces that level. It runs as ServiceAccount ``sluice-testworker``
(knative/rbac.yaml: the state store only).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sluice.adapters._kube import MANAGED_BY, Kube
from sluice.errors import ConfigurationError, ConflictError, PermanentError


class JobLauncher:
    def __init__(
        self,
        api: Any,
        namespace: str,
        image: str,
        service_account: str = "sluice-testworker",
        limit_s: float = 600.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.image = image
        self.service_account = service_account
        self.limit_s = limit_s
        self.env = dict(env or {})

    def job_for(self, event: dict[str, Any]) -> dict[str, Any]:
        digest = hashlib.sha256(f"{event.get('source')}#{event.get('id')}".encode()).hexdigest()[:16]
        data = event.get("data") or {}
        env = [{"name": k, "value": v} for k, v in sorted(self.env.items())]
        env.append({"name": "SLUICE_TEST_EVENT", "value": json.dumps(event)})
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": f"sluice-test-{digest}",
                "namespace": self.namespace,
                "labels": {**MANAGED_BY, "sluice.dev/project": str(data.get("project", "")),
                           "sluice.dev/stage": str(data.get("stage", "")), "sluice.dev/service": str(data.get("service", ""))},
            },
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": int(self.limit_s),
                "ttlSecondsAfterFinished": 3600,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "serviceAccountName": self.service_account,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 10001,
                            "runAsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": "test",
                            "image": self.image,
                            "command": ["python", "-m", "sluice.functions.testworker"],
                            "env": env,
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                        }],
                    }
                },
            },
        }

    def __call__(self, event: dict[str, Any]) -> None:
        """Create the event's Job (request timeout and error mapping of ``Kube.call``)."""
        from kubernetes import client

        kube = Kube(self.api)
        job = self.job_for(event)
        what = f"create test Job {self.namespace}/{job['metadata']['name']}"
        try:
            kube.call(what, client.BatchV1Api(kube.api_client).create_namespaced_job, self.namespace, job)
        except ConflictError:
            return  # the same event's Job exists: a duplicate delivery
        except PermanentError as err:  # no such namespace, or the API server refuses the Job
            raise ConfigurationError(str(err)) from err
