"""The composition root's builders: adapters from ``Settings`` (used by functions and the CLI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.config import Settings

if TYPE_CHECKING:
    from sluice.ports.archive import Archive
    from sluice.ports.backend import DeploymentBackend, WorkloadSource
    from sluice.ports.secrets import SecretStore
    from sluice.ports.state import StateStore


def build_store(settings: Settings) -> StateStore:
    """The state store the settings name: local files (default) or ConfigMaps in a namespace."""
    from sluice.adapters.state import create_store

    if settings.state == "configmap":
        from sluice.adapters.state.configmap import load_api_client

        return create_store("configmap", api=load_api_client(), namespace=settings.namespace)
    if settings.state == "local":
        return create_store("local", directory=settings.state_dir)
    return create_store(settings.state)


def build_backend(settings: Settings, workloads: WorkloadSource | None = None) -> DeploymentBackend:
    """The deployment backend the settings name (``local`` runs processes under the state dir);
    ``workloads`` reads the user's workload of a placement (the cluster backends derive their
    Deployments / Knative Service from it)."""
    from sluice.adapters.backends import create_backend

    if settings.backend == "local":
        return create_backend("local", image_map=settings.image_map, runtime_dir=settings.state_path / "runtime")
    if settings.backend in ("kubernetes", "knative"):
        from sluice.adapters.state.configmap import load_api_client

        return create_backend(settings.backend, api=load_api_client(), workloads=workloads)
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
        from sluice.adapters.state.configmap import load_api_client

        return create_secrets("kubernetes", api=load_api_client(), namespace=settings.namespace)
    if settings.state == "local":
        return create_secrets("local", directory=settings.state_dir)
    return create_secrets("memory")
