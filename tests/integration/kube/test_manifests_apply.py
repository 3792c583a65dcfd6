"""knative/ applied to a real API server with the Knative CRDs: a server-side dry run, then a real apply,
and every object read back holds every field the manifest gave it (the CRDs' structural schemas
prune unknown fields silently; nothing may be pruned)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from tests.support.kube.cluster import Cluster, require_knative

ROOT = Path(__file__).resolve().parents[3]


def missing(wanted: Any, found: Any, path: str = "") -> list[str]:
    """Where ``found`` lacks or differs from what ``wanted`` says (maps by key, lists item by item)."""
    if isinstance(wanted, dict):
        if not isinstance(found, dict):
            return [f"{path or '.'}: expected a map, found {found!r}"]
        out = []
        for key, value in wanted.items():
            if key not in found:
                out.append(f"{path}.{key}: pruned or not stored")
            else:
                out.extend(missing(value, found[key], f"{path}.{key}"))
        return out
    if isinstance(wanted, list):
        if not isinstance(found, list) or len(found) != len(wanted):
            return [f"{path}: expected {len(wanted)} items, found {found!r}"]
        return [p for i, (w, f) in enumerate(zip(wanted, found, strict=True)) for p in missing(w, f, f"{path}[{i}]")]
    if str(wanted) != str(found):  # the server may store "8080" for 8080 in an int-or-string
        return [f"{path}: expected {wanted!r}, found {found!r}"]
    return []


def test_knative_manifests_apply_and_read_back_whole(kube_cluster: Cluster) -> None:
    """kubectl apply --server-side (dry run, then real) of knative/ accepts every object and prunes no field."""
    require_knative(kube_cluster)
    rendered = kube_cluster.kubectl("kustomize", str(ROOT / "knative")).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert len(objects) > 20
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    # on a fresh cluster a dry run cannot place objects in namespaces it only pretends to create
    first = kube_cluster.kubectl("apply", "--server-side", "--dry-run=server", "-k", str(ROOT / "knative"), check=False)
    refusals = [line for line in first.stderr.splitlines() if line.strip() and not line.startswith("Warning:")]
    allowed = {f'Error from server (NotFound): namespaces "{n["metadata"]["name"]}" not found' for n in namespaces}
    assert set(refusals) <= allowed, "\n".join(sorted(set(refusals) - allowed))
    # so the namespaces first (as `kubectl apply -f knative/namespace.yaml` in docs/cluster.md), then all of it
    kube_cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(namespaces))
    dry = kube_cluster.kubectl("apply", "--server-side", "--dry-run=server", "-o", "json", "-k", str(ROOT / "knative"))
    assert len(json.loads(dry.stdout)["items"]) == len(objects)
    kube_cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "knative"))
    problems = []
    for obj in objects:
        meta = obj["metadata"]
        args = ["get", f"{obj['kind']}.{obj['apiVersion'].split('/')[0]}" if "/" in obj["apiVersion"] else obj["kind"],
                meta["name"], "-o", "json"]
        if meta.get("namespace"):
            args += ["-n", meta["namespace"]]
        stored = json.loads(kube_cluster.kubectl(*args).stdout)
        for section, value in obj.items():
            if section in ("apiVersion", "kind", "status"):
                continue
            problems += [f"{obj['kind']} {meta['name']}: {p}" for p in missing(value, stored.get(section), f".{section}")]
    assert not problems, "\n".join(problems)


def test_sluice_namespace_enforces_restricted_pod_security(kube_cluster: Cluster) -> None:
    """knative/namespace.yaml labels `sluice` to enforce the restricted Pod Security level."""
    kube_cluster.kubectl("apply", "-f", str(ROOT / "knative" / "namespace.yaml"))
    labels = json.loads(kube_cluster.kubectl("get", "namespace", "sluice", "-o", "json").stdout)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
