"""The user's own workload: render a Helm chart or a folder of manifests into the objects a
deployment backend derives ``<svc>-primary`` / ``<svc>-canary`` from (``sluice onboard service
--chart DIR`` / ``--manifests DIR``).

- A chart is rendered with ``helm template <service> DIR --namespace <project>-<stage>`` once per
  stage (release name = the service, namespace = the stage's), as Keptn's helm-service did.
  ``helm`` is ``SLUICE_HELM``, else ``helm`` on the ``PATH``, else the one ``make helm`` builds
  from its Go module into ``~/.cache/sluice/helm/<version>/helm``.
- A folder of manifests is its ``*.yaml``/``*.yml``/``*.json`` files (sorted, not recursive),
  or, when it holds a ``kustomization.yaml``, what ``kubectl kustomize DIR`` prints (``kubectl``:
  ``SLUICE_KUBECTL``, else on the ``PATH``, else the one ``tests/support/kube/build.sh`` caches).

Bounds: a renderer gets ``RENDER_TIMEOUT_S`` and may print ``RENDER_LIMIT`` bytes (it is killed
beyond); YAML aliases are refused (an alias bomb would expand in memory); what is stored is at
most the records' ``RECORD_BUDGET``. Every problem is a ``ValidationError`` naming the chart or
folder (a missing tool: ``ConfigurationError`` naming it); nothing is stored unless every stage
rendered and checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import yaml

from sluice.core.workload import UserWorkload, check_objects, digest
from sluice.errors import ConfigurationError, TooLargeError, ValidationError
from sluice.services.records import RECORD_BUDGET

__all__ = [
    "DEFAULT_HELM",
    "RENDER_LIMIT",
    "RENDER_TIMEOUT_S",
    "ToolMissing",
    "find_helm",
    "find_kubectl",
    "parse_objects",
    "prepare",
    "render_chart",
    "render_manifests",
]

#: Where ``make helm`` (tools/helm/build.sh) builds helm.
HELM_VERSION = "v3.22.0"
DEFAULT_HELM = Path.home() / ".cache" / "sluice" / "helm" / HELM_VERSION / "helm"
KUBE_CACHE = Path.home() / ".cache" / "sluice" / "kube"
HELM_HINT = ("install helm 3 (https://helm.sh: put it on the PATH or set SLUICE_HELM), or build it from its Go "
             f"module with 'make helm' (into {DEFAULT_HELM})")
KUBECTL_HINT = ("install kubectl (on the PATH or SLUICE_KUBECTL), or build it with 'make kube-binaries'; "
                "or list plain manifests without a kustomization.yaml")
#: Seconds a renderer (helm, kubectl kustomize) may take.
RENDER_TIMEOUT_S = 60.0
#: Bytes a renderer may print, and a folder of manifests may hold.
RENDER_LIMIT = 4 * 1024 * 1024
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class ToolMissing(ConfigurationError):
    """helm or kubectl is not installed: the message names what to install."""


def _executable(path: Path) -> bool:
    return path.is_file() and bool(path.stat().st_mode & 0o111)


def find_helm(configured: str = "") -> str:
    """``configured`` (SLUICE_HELM) else ``helm`` on the PATH else ``make helm``'s; ``ToolMissing`` otherwise."""
    return _find_tool("helm", "SLUICE_HELM", configured, [DEFAULT_HELM], "needed to render --chart", HELM_HINT)


def find_kubectl(configured: str = "") -> str:
    """``configured`` (SLUICE_KUBECTL) else ``kubectl`` on the PATH else the kube test cache's."""
    cached = sorted(KUBE_CACHE.glob("*/kubectl"), reverse=True) if KUBE_CACHE.is_dir() else []
    return _find_tool("kubectl", "SLUICE_KUBECTL", configured, cached, "needed to render the kustomization",
                      KUBECTL_HINT)


def _find_tool(name: str, variable: str, configured: str, fallbacks: list[Path], why: str, hint: str) -> str:
    """The configured tool, else ``name`` on the PATH, else the first executable fallback."""
    if configured:
        if _executable(Path(configured)) or shutil.which(configured):
            return configured
        raise ToolMissing(f"{name} is not installed ({variable}={configured} is missing): {hint}")
    found = shutil.which(name) or next((str(p) for p in fallbacks if _executable(p)), None)
    if found:
        return found
    raise ToolMissing(f"{name} is not installed ({why}): {hint}")


def _run_bounded(argv: list[str], source: str, what: str, timeout_s: float) -> str:
    """``argv``'s standard output; ``ValidationError(source, ...)`` when it fails (quoting its
    error output), prints more than ``RENDER_LIMIT`` bytes or runs past ``timeout_s``."""
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
        except OSError as err:
            raise ToolMissing(f"{what}: could not run {argv[0]}: {err}") from err
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        chunks: list[bytes] = []
        total = 0
        too_big = False
        try:
            stdout = proc.stdout
            assert stdout is not None
            while chunk := os.read(stdout.fileno(), 1 << 16):
                total += len(chunk)
                if total > RENDER_LIMIT:
                    too_big = True
                    proc.kill()
                    break
                chunks.append(chunk)
            stdout.close()
            code = proc.wait()
        finally:
            timer.cancel()
        if timed_out.is_set():
            raise ValidationError(source, [f"{what} did not finish within {timeout_s:g} s"])
        if too_big:
            raise TooLargeError(f"{source}: {what} printed more than {RENDER_LIMIT:,} bytes; a service's workload is "
                                "kept in one ConfigMap: render only the service's objects")
        errors.seek(0)
        tail = errors.read(4000).decode(errors="replace").strip()
    if code != 0:
        raise ValidationError(source, [f"{what} failed (exit code {code}): {tail or 'no message'}"])
    return b"".join(chunks).decode(errors="replace")


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader without aliases (``*ref``): an alias bomb cannot expand."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def,unused-ignore]
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not accepted in a workload", event.start_mark)
        return super().compose_node(parent, index)


def parse_objects(text: str, source: str) -> list[object]:
    """The documents of a multi-document YAML (or JSON) text, empty ones dropped; a ``List``
    (``kind: List``/``*List`` with ``items``) is unpacked. ``ValidationError`` on a syntax error."""
    try:
        docs = [d for d in yaml.load_all(text, Loader=_NoAliasLoader) if d is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValidationError(source, [f"{where}not valid YAML: {problem}"]) from err
    except RecursionError as err:
        raise ValidationError(source, ["not valid YAML: nested too deeply"]) from err
    out: list[object] = []
    for doc in docs:
        if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            out.extend(i for i in doc["items"] if i is not None)
        else:
            out.append(doc)
    return out


def render_chart(helm: str, chart: Path, release: str, namespace: str, timeout_s: float = RENDER_TIMEOUT_S) -> list[object]:
    """``helm template <release> <chart> --namespace <namespace>`` as objects."""
    source = f"--chart {chart}"
    manifest = chart / "Chart.yaml"
    if not manifest.is_file():
        raise ValidationError(source, [f"{chart}: expected a Helm chart directory holding Chart.yaml"])
    argv = [helm, "template", release, str(chart), "--namespace", namespace]
    text = _run_bounded(argv, source, f"helm template (namespace {namespace})", timeout_s)
    return parse_objects(text, f"{source} (helm template, namespace {namespace})")


def render_manifests(directory: Path, kubectl: str = "", timeout_s: float = RENDER_TIMEOUT_S) -> list[object]:
    """The objects of a folder of manifests, or of its kustomization (``kubectl kustomize``)."""
    source = f"--manifests {directory}"
    if not directory.is_dir():
        raise ValidationError(source, [f"{directory}: expected a folder of Kubernetes manifests"])
    if any((directory / k).is_file() for k in KUSTOMIZATIONS):
        tool = find_kubectl(kubectl)
        text = _run_bounded([tool, "kustomize", str(directory)], source, "kubectl kustomize", timeout_s)
        return parse_objects(text, f"{source} (kubectl kustomize)")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES)
    if not files:
        raise ValidationError(source, [f"{directory}: no *.yaml, *.yml or *.json file and no kustomization.yaml"])
    total = sum(p.stat().st_size for p in files)
    if total > RENDER_LIMIT:
        raise TooLargeError(f"{source}: the manifests take {total:,} bytes, more than {RENDER_LIMIT:,}; a service's "
                            "workload is kept in one ConfigMap: list only the service's objects")
    out: list[object] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ValidationError(source, [f"{path.name}: cannot be read as UTF-8 text: {err}"]) from err
        out.extend(parse_objects(text, f"{source} ({path.name})"))
    return out


def prepare(objects: list[object], *, service: str, namespace: str, platform: str, source: str) -> UserWorkload:
    """The checked workload to store for one stage (``core.workload.check_objects``), each
    object as plain JSON (no YAML-only types: dates, binary) with the stage's namespace unset."""
    try:
        plain = json.loads(json.dumps(objects, default=str))
    except (TypeError, ValueError, RecursionError) as err:
        raise ValidationError(source, [f"the rendered objects are not JSON-like: {err}"]) from err
    check_objects(plain, service=service, namespace=namespace, platform=platform, source=source)
    for obj in plain:
        (obj.get("metadata") or {}).pop("namespace", None)
    size = len(json.dumps(plain, separators=(",", ":"), sort_keys=True))
    if size > RECORD_BUDGET:
        raise TooLargeError(
            f"{source}: the rendered objects take {size:,} bytes as JSON; a service's workload may take at most "
            f"{RECORD_BUDGET:,} (it is kept in one ConfigMap, limit 1 MiB): render only the service's objects")
    return UserWorkload(source, tuple(plain), digest(plain))
