"""Test units as Kubernetes Jobs (on a cluster): one Job per deployment-finished event.

The Job runs the function image's ``python -m sluice.functions.testworker`` with the event in
``SLUICE_TEST_EVENT``; its name derives from the event id, so a duplicate delivery finds the
Job already there (409) and starts nothing new. ``activeDeadlineSeconds`` is the hard limit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sluice.errors import ConfigurationError, RetryableError


class JobLauncher:
    def __init__(
        self,
        api: Any,
        namespace: str,
        image: str,
        service_account: str = "sluice",
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
                "labels": {"app.kubernetes.io/managed-by": "sluice", "sluice.dev/project": str(data.get("project", "")),
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
                        "securityContext": {"runAsNonRoot": True},
                        "containers": [{
                            "name": "test",
                            "image": self.image,
                            "command": ["python", "-m", "sluice.functions.testworker"],
                            "env": env,
                        }],
                    }
                },
            },
        }

    def __call__(self, event: dict[str, Any]) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        job = self.job_for(event)
        try:
            client.BatchV1Api(self.api).create_namespaced_job(self.namespace, job)  # type: ignore[arg-type]
        except ApiException as err:
            if err.status == 409:
                return  # the same event's Job exists: a duplicate delivery
            if err.status in (401, 403, 404, 422):
                raise ConfigurationError(
                    f"cannot create test Job {job['metadata']['name']} in {self.namespace}: {err.status} {err.reason}"
                ) from err
            raise RetryableError(f"creating test Job {job['metadata']['name']} failed: {err.status} {err.reason}") from err
        except HTTPError as err:
            raise RetryableError(f"Kubernetes API unreachable creating a test Job: {err}") from err
