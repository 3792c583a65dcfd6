"""The composition root: every adapter is built here, from ``Settings``, and nowhere else.

Function entrypoints (through ``sluice.functions.runtime.Runtime``), the local broker, the CLI
and the test-unit launcher ask these builders. Each builder imports its adapter when it is
called, never when this module is imported, so a function pays at cold start only for the
adapters it uses (the kubernetes client, boto3, httpx are heavy).

SLI providers too: :func:`sli_provider` builds the one a get-sli event names, per request, with
its module's ``create(ctx)`` (the context carries the settings, the project's ``sli.yaml`` levels,
the connection record, a secret read on demand and the measurement loader).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.config import Settings

if TYPE_CHECKING:
    from sluice.adapters.notify.secretfiles import SecretFiles
    from sluice.core.events import Event
    from sluice.ports.archive import Archive
    from sluice.ports.backend import DeploymentBackend, WorkloadSource
    from sluice.ports.notify import WebhookSender
    from sluice.ports.registry import DigestResolver
    from sluice.ports.secrets import SecretStore
    from sluice.ports.sli import SliProvider
    from sluice.ports.state import StateStore
    from sluice.ports.testunit import Launcher
    from sluice.services.records import Records

#: The checkout's ``functions/`` folder: a local test worker imports ``sluice`` from there.
FUNCTIONS_DIR = Path(__file__).resolve().parents[1]


@functools.cache
def kube_api() -> Any:
    """The process's one Kubernetes API client (in-cluster, else kubeconfig): credentials are read
    once, however many adapters use it."""
    from sluice.adapters.state.configmap import load_api_client

    return load_api_client()


def build_store(settings: Settings) -> StateStore:
    """The state store the settings name: local files (default) or ConfigMaps in a namespace."""
    from sluice.adapters.state import create_store

    if settings.state == "configmap":
        return create_store("configmap", api=kube_api(), namespace=settings.namespace)
    if settings.state == "local":
        return create_store("local", directory=settings.state_dir)
    return create_store(settings.state)


def build_records(settings: Settings, store: StateStore | None = None) -> Records:
    """Typed records over the store (``store``, else the settings' one), with the archive when set."""
    from sluice.services.records import Records

    return Records(store if store is not None else build_store(settings), build_archive(settings))


def build_backend(settings: Settings, workloads: WorkloadSource | None = None) -> DeploymentBackend:
    """The deployment backend the settings name (``local`` runs processes under the state dir);
    ``workloads`` reads the user's workload of a placement (the cluster backends derive their
    Deployments / Knative Service from it)."""
    from sluice.adapters.backends import create_backend

    if settings.backend == "local":
        return create_backend("local", image_map=settings.image_map, runtime_dir=settings.state_path / "runtime")
    if settings.backend in ("kubernetes", "knative"):
        return create_backend(settings.backend, api=kube_api(), workloads=workloads)
    return create_backend(settings.backend)


def build_archive(settings: Settings) -> Archive | None:
    """The archive for records that leave the bounded histories, or None when none is set."""
    if not settings.archive:
        return None
    from sluice.adapters.archive import create_archive

    if settings.archive == "s3":
        return create_archive(
            "s3", bucket=settings.archive_bucket, prefix=settings.archive_prefix,
            endpoint_url=settings.s3_endpoint_url or None,
        )
    return create_archive(settings.archive)


def build_secrets(settings: Settings) -> SecretStore:
    """Where secrets live: Kubernetes Secrets beside the ConfigMap store, else 0600 files in the state dir."""
    from sluice.adapters.secrets import create_secrets

    if settings.state == "configmap":
        return create_secrets("kubernetes", api=kube_api(), namespace=settings.namespace)
    if settings.state == "local":
        return create_secrets("local", directory=settings.state_dir)
    return create_secrets("memory")


def child_env(settings: Settings, sink: str) -> dict[str, str]:
    """The environment that hands ``settings`` to a process Sluice starts (a function, a test
    worker): ``settings.to_env()`` plus its sink (``K_SINK``)."""
    return {**settings.to_env(), "K_SINK": sink}


def build_launcher(settings: Settings, environ: Mapping[str, str]) -> Launcher:
    """Where a test unit runs: a Job per test on a cluster (backend ``kubernetes``/``knative``),
    whose worker gets these settings and the sink; else a local worker process, with
    ``environ`` (the function's own environment) plus the settings and the sink."""
    from sluice.adapters.testunits import create_launcher

    if settings.backend in ("kubernetes", "knative"):
        return create_launcher(
            "kubernetes", api=kube_api(), namespace=settings.namespace, image=settings.function_image,
            limit_s=settings.test_limit_s, env=child_env(settings, settings.sink),
        )
    environ = {**environ, **child_env(settings, settings.sink), "PYTHONPATH": str(FUNCTIONS_DIR)}
    return create_launcher("local", log_dir=settings.state_path / "logs", environ=environ)


def build_publisher(url: str) -> Callable[[Event], None]:
    """Post one event to the broker at ``url`` (structured mode); ``RetryableError`` when it does
    not take it."""
    from sluice.adapters.publish import post_event  # urllib.request: only who publishes pays for it

    return functools.partial(post_event, url)


def build_resolver(settings: Settings) -> DigestResolver:
    """The registry digest resolver of intake (ECR via boto3's default credential chain;
    ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_ECR`` are honoured by boto3 itself)."""
    from sluice.adapters.registry import create_resolver

    return create_resolver("ecr")


def build_notification_secrets(settings: Settings) -> SecretFiles:
    """The notification secrets (webhook signing keys, URLs): 0600 files, or a Secret volume."""
    from sluice.adapters.notify.secretfiles import SecretFiles

    return SecretFiles(settings.secrets_path)


def webhook_sender() -> WebhookSender:
    """A webhook sender (httpx, imported when a message is sent)."""
    from sluice.adapters.notify.webhook import HttpWebhookSender

    return HttpWebhookSender()



def sli_provider(settings: Settings, records: Records, secrets: Callable[[], SecretStore], name: str,
                 project: str, stage: str, service: str) -> SliProvider:
    """The SLI provider ``name`` for a service in a stage, built by its module's ``create(ctx)``
    (``secrets`` is called only by a provider that reads one); ``ConfigurationError`` naming the
    known providers for an unknown name."""
    from sluice.adapters.sli import create
    from sluice.services.sli_config import provider_context

    return create(name, provider_context(settings, records, secrets, project, stage, service))
