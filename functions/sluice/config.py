"""Settings, read once at the composition root (a function's first request, the CLI's start).

Precedence: command-line flag > environment variable > default. This table is the one place
where it is written down; nothing below the composition root reads ``os.environ``.

| setting            | environment              | default                                 |
|--------------------|--------------------------|-----------------------------------------|
| state              | SLUICE_STATE             | ``local`` (``configmap`` on a cluster)  |
| state_dir          | SLUICE_STATE_DIR         | ``.sluice``                             |
| secrets_dir        | SLUICE_SECRETS_DIR       | ``<state_dir>/secrets`` (a Secret volume on a cluster) |
| namespace          | SLUICE_NAMESPACE         | ``sluice``                              |
| broker_url         | SLUICE_BROKER_URL        | ``http://127.0.0.1:8080/sluice/default``|
| sink_url           | K_SINK (SinkBinding)     | broker_url                              |
| backend            | SLUICE_BACKEND           | ``local``                               |
| image_map          | SLUICE_IMAGE_MAP         | ``examples/sockshop/images.yaml``       |
| sli_provider       | SLUICE_SLI_PROVIDER      | (project setting, else ``builtin``)     |
| deploy_timeout_s   | SLUICE_DEPLOY_TIMEOUT    | 60                                      |
| test_limit_s       | SLUICE_TEST_LIMIT        | 600                                     |
| sli_timeout_s      | SLUICE_SLI_TIMEOUT       | 120                                     |
| performance_duration_s | SLUICE_PERF_DURATION | (from tests.yaml)                       |
| prometheus_url     | SLUICE_PROMETHEUS_URL    | ``http://127.0.0.1:9090``               |
| bridge_url         | SLUICE_BRIDGE_URL        | ``http://127.0.0.1:8080/bridge``        |
| function_image     | SLUICE_FUNCTION_IMAGE    | ``ghcr.io/sluice-dev/sluice:0.1.0``     |
| archive            | SLUICE_ARCHIVE           | (none; ``s3`` to archive)               |
| archive_bucket     | SLUICE_ARCHIVE_BUCKET    |                                         |
| archive_prefix     | SLUICE_ARCHIVE_PREFIX    | ``sluice/``                             |
| s3_endpoint_url    | SLUICE_S3_ENDPOINT_URL   | (AWS's)                                 |
| bridge_identity_header | SLUICE_BRIDGE_IDENTITY_HEADER | (none: only a bearer token signs in) |
| jmeter             | SLUICE_JMETER            | ``~/.cache/sluice/jmeter-5.6.3/bin/jmeter`` (``make jmeter``) |
| helm               | SLUICE_HELM              | ``helm`` on the PATH, else ``make helm``'s (``~/.cache/sluice/helm``) |
| kubectl            | SLUICE_KUBECTL           | ``kubectl`` on the PATH, else ``make kube-binaries``' |

Any other ``SLUICE_*`` variable is an error naming it (and the nearest known name): a typo is
reported, not silently ignored. The few ``SLUICE_*`` names that are not settings are listed in
``NOT_SETTINGS`` (the test worker's event, and knobs of the test suite and its tools).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from sluice.core.frozen import frozen
from sluice.errors import ConfigurationError

DEFAULT_BROKER_URL = "http://127.0.0.1:8080/sluice/default"

_ENV = {
    "state": "SLUICE_STATE",
    "state_dir": "SLUICE_STATE_DIR",
    "secrets_dir": "SLUICE_SECRETS_DIR",
    "namespace": "SLUICE_NAMESPACE",
    "broker_url": "SLUICE_BROKER_URL",
    "sink_url": "K_SINK",
    "backend": "SLUICE_BACKEND",
    "image_map": "SLUICE_IMAGE_MAP",
    "sli_provider": "SLUICE_SLI_PROVIDER",
    "deploy_timeout_s": "SLUICE_DEPLOY_TIMEOUT",
    "test_limit_s": "SLUICE_TEST_LIMIT",
    "sli_timeout_s": "SLUICE_SLI_TIMEOUT",
    "performance_duration_s": "SLUICE_PERF_DURATION",
    "prometheus_url": "SLUICE_PROMETHEUS_URL",
    "bridge_url": "SLUICE_BRIDGE_URL",
    "function_image": "SLUICE_FUNCTION_IMAGE",
    "archive": "SLUICE_ARCHIVE",
    "archive_bucket": "SLUICE_ARCHIVE_BUCKET",
    "archive_prefix": "SLUICE_ARCHIVE_PREFIX",
    "s3_endpoint_url": "SLUICE_S3_ENDPOINT_URL",
    "bridge_identity_header": "SLUICE_BRIDGE_IDENTITY_HEADER",
    "jmeter": "SLUICE_JMETER",
    "helm": "SLUICE_HELM",
    "kubectl": "SLUICE_KUBECTL",
}

#: ``SLUICE_*`` variables that are not settings, and who reads them (never refused as unknown).
NOT_SETTINGS = {
    "SLUICE_TEST_EVENT": "the test worker's event, in a Kubernetes Job",
    "SLUICE_SHARED": "the test suite: where the shared reference schemas are",
    "SLUICE_SOAK": "the test suite: make soak",
    "SLUICE_SOAK_EXAMPLES": "the test suite: make soak",
    "SLUICE_MODEL_CHECKS": "the test suite: the flow model's invariants",
    "SLUICE_HOSTILE_EXAMPLES": "the test suite: hostile-input examples",
    "SLUICE_KUBE_CACHE": "the test suite: where the kube binaries are cached",
    "SLUICE_HELM_CACHE": "tools/helm/build.sh: where make helm caches helm",
    "SLUICE_KEEP_KUBE_LOGS": "the test suite: keep the test cluster's logs",
}


def unknown_names(environ: Mapping[str, str]) -> list[str]:
    """The ``SLUICE_*`` names in ``environ`` that are neither a setting nor in ``NOT_SETTINGS``."""
    known = set(_ENV.values()) | set(NOT_SETTINGS)
    return sorted(name for name in environ if name.startswith("SLUICE_") and name not in known)


def _unknown_error(names: list[str]) -> ConfigurationError:
    known = sorted(v for v in _ENV.values() if v.startswith("SLUICE_"))
    parts = []
    for name in names:
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        parts.append(f"{name} (did you mean {near[0]}?)" if near else name)
    return ConfigurationError(
        f"unknown environment variable{'s' if len(names) > 1 else ''} {', '.join(parts)}; "
        f"the settings are {', '.join(known)}"
    )


@frozen
class Settings:
    """A function's settings, each read from its ``SLUICE_…`` environment variable (the table above)."""

    state: str = "local"
    state_dir: str = ".sluice"
    secrets_dir: str = ""
    namespace: str = "sluice"
    broker_url: str = DEFAULT_BROKER_URL
    sink_url: str = ""
    backend: str = "local"
    image_map: str = "examples/sockshop/images.yaml"
    sli_provider: str = ""
    deploy_timeout_s: float = 60.0
    test_limit_s: float = 600.0
    sli_timeout_s: float = 120.0
    performance_duration_s: float = 0.0
    prometheus_url: str = "http://127.0.0.1:9090"
    bridge_url: str = "http://127.0.0.1:8080/bridge"
    function_image: str = "ghcr.io/sluice-dev/sluice:0.1.0"
    archive: str = ""
    archive_bucket: str = ""
    archive_prefix: str = "sluice/"
    s3_endpoint_url: str = ""
    #: A header an auth proxy in front of the bridge sets to the signed-in user (e.g. X-Forwarded-User).
    bridge_identity_header: str = ""
    #: The JMeter binary for .jmx tests ('' → where 'make jmeter' installs it).
    jmeter: str = ""
    #: helm for ``onboard --chart`` ('' → on the PATH, else where 'make helm' builds it).
    helm: str = ""
    #: kubectl for ``onboard --manifests`` of a kustomization ('' → on the PATH, else the kube test cache's).
    kubectl: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **flags: Any) -> Settings:
        """Defaults, overridden by ``environ``, overridden by non-None ``flags``; an unknown
        ``SLUICE_*`` name in ``environ`` is a ``ConfigurationError`` naming it."""
        unknown = unknown_names(environ)
        if unknown:
            raise _unknown_error(unknown)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw: Any = environ.get(_ENV[f.name])
            if flags.get(f.name) is not None:
                raw = flags[f.name]
            if raw is None or raw == "":
                continue
            if f.type in ("float", float):
                try:
                    raw = float(raw)
                except (TypeError, ValueError) as err:
                    raise ConfigurationError(
                        f"setting {f.name} ({_ENV[f.name]}): expected a number of seconds, found {raw!r}"
                    ) from err
            values[f.name] = raw
        return cls(**values)

    @property
    def sink(self) -> str:
        """Where functions post the events they emit beyond their reply."""
        return self.sink_url or self.broker_url

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def secrets_path(self) -> Path:
        return Path(self.secrets_dir) if self.secrets_dir else self.state_path / "secrets"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment that hands these settings to a child process (a local function, a
        test worker); ``K_SINK`` is not in it: each child is given its own sink."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in ("", None, 0.0) and f.name != "sink_url":
                out[_ENV[f.name]] = str(value)
        return out
