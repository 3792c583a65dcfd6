"""The user's own workload → the Deployments and Service Sluice runs (pure).

A Keptn user onboards a service with its own chart (``keptn onboard service carts
--chart=./carts``) and Keptn's helm-service derived ``carts-primary`` / ``carts-canary`` from
it; Flagger (``targetRef``) and Argo Rollouts (the pod template) start from the user's
Deployment too. These functions do that derivation on already-rendered objects (``helm
template`` output or plain manifests, loaded as mappings):

- :func:`split_workload` finds the service's Deployment and Service among the objects; the rest
  (a database, ConfigMaps, ...) are the extra objects applied once per stage.
- :func:`derive_deployment` copies the user's Deployment **keeping the pod template whole**
  (env, probes, resources, volumes, init containers, sidecars, security context) and changes only
  the name, the labels, the selector and the image of the service's container.
- :func:`derive_service` keeps the user's ports and points the selector at the given pods.

The caller (a deployment backend) supplies the names, labels and selector of its own scheme.
Standard library only; every problem is a ``ValidationError`` naming the object and field.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.errors import ValidationError

__all__ = ["Workload", "derive_deployment", "derive_service", "split_workload"]

#: Metadata the API server owns: never copied into a derived object.
_SERVER_FIELDS = ("namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                  "selfLink", "ownerReferences", "deletionTimestamp", "deletionGracePeriodSeconds")
#: Annotations that describe the user's object, not the derived one.
_OWN_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision")


@dataclass(frozen=True)
class Workload:
    """The service's Deployment, its Service (if any) and every other object, as given."""

    deployment: Mapping[str, Any]
    service: Mapping[str, Any] | None
    extras: tuple[Mapping[str, Any], ...]


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, Mapping) else ""


def split_workload(objects: Sequence[object], service: str, source: str) -> Workload:
    """The Deployment of ``service`` (named so, else the only one), its Service (named so, else
    the only one, else none) and the rest; ``ValidationError(source, ...)`` when ambiguous."""
    docs = [o for o in objects if o is not None]
    problems = [f"document {i + 1}: expected a Kubernetes object (a mapping with kind), found {type(o).__name__}"
                for i, o in enumerate(docs) if not isinstance(o, Mapping) or not o.get("kind")]
    if problems:
        raise ValidationError(source, problems)
    objs: list[Mapping[str, Any]] = [o for o in docs if isinstance(o, Mapping)]

    def pick(kind: str, required: bool) -> Mapping[str, Any] | None:
        found = [o for o in objs if o.get("kind") == kind]
        named = [o for o in found if _name(o) == service]
        if len(named) == 1:
            return named[0]
        if len(found) == 1:
            return found[0]
        if not found and not required:
            return None
        names = ", ".join(_name(o) for o in found) or "none"
        raise ValidationError(source, [f"expected one {kind} of service {service!r} (named {service!r}, or the only one); found: {names}"])

    deployment = pick("Deployment", True)
    assert deployment is not None
    svc = pick("Service", False)
    extras = tuple(o for o in objs if o is not deployment and o is not svc)
    return Workload(deployment, svc, extras)


def _metadata(user: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    meta = copy.deepcopy(dict(user.get("metadata") or {}))
    for key in _SERVER_FIELDS:
        meta.pop(key, None)
    meta["name"] = name
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _OWN_ANNOTATIONS}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return meta


def derive_deployment(
    user: Mapping[str, Any], *, service: str, name: str, image: str, labels: Mapping[str, str],
    selector: Mapping[str, str], annotations: Mapping[str, str] | None = None, source: str = "Deployment",
) -> dict[str, Any]:
    """``user`` (a Deployment) as Deployment ``name`` running ``image`` in the container named
    ``service`` (or the only container). The pod template stays whole; the selector becomes
    ``selector`` (``matchExpressions`` dropped: they would select the user's pods), the object's
    and pods' labels gain ``labels`` (which must include ``selector``), the pods' annotations gain
    ``annotations``. ``status`` and server-owned metadata are dropped."""
    problems: list[str] = []
    if user.get("kind") != "Deployment" or user.get("apiVersion") != "apps/v1":
        problems.append(f"expected kind Deployment of apiVersion apps/v1, found {user.get('kind')!r} of {user.get('apiVersion')!r}")
    missing = {k: v for k, v in selector.items() if labels.get(k) != v}
    if missing:
        problems.append(f"the labels must include the selector; missing {missing}")
    spec = user.get("spec")
    template = spec.get("template") if isinstance(spec, Mapping) else None
    pod = template.get("spec") if isinstance(template, Mapping) else None
    containers = pod.get("containers") if isinstance(pod, Mapping) else None
    if not isinstance(containers, list) or not containers or not all(isinstance(c, Mapping) for c in containers):
        problems.append("spec.template.spec.containers: expected a non-empty list of containers")
        raise ValidationError(source, problems)
    names = [str(c.get("name", "")) for c in containers]
    target = names.index(service) if service in names else (0 if len(names) == 1 else -1)
    if target < 0:
        problems.append(f"spec.template.spec.containers: no container named {service!r} and more than one "
                        f"({', '.join(names)}): name the service's container {service!r}")
    if problems:
        raise ValidationError(source, problems)
    out: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(user, name, labels)}
    new_spec = copy.deepcopy(dict(spec))  # type: ignore[arg-type]  # checked above: a mapping
    new_spec["selector"] = {"matchLabels": dict(selector)}
    new_template = new_spec["template"]
    template_meta = dict(new_template.get("metadata") or {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
    if annotations:
        template_meta["annotations"] = {**(template_meta.get("annotations") or {}), **annotations}
    template_meta.pop("name", None)
    new_template["metadata"] = template_meta
    new_template["spec"]["containers"][target]["image"] = image
    out["spec"] = new_spec
    return out


def derive_service(user: Mapping[str, Any], *, name: str, labels: Mapping[str, str], selector: Mapping[str, str],
                   source: str = "Service") -> dict[str, Any]:
    """``user`` (a Service) as Service ``name`` selecting ``selector``: ports, type and the rest of
    the spec kept; ``clusterIP``/``clusterIPs`` dropped (the API server assigns them)."""
    if user.get("kind") != "Service":
        raise ValidationError(source, [f"expected kind Service, found {user.get('kind')!r}"])
    spec = copy.deepcopy(dict(user.get("spec") or {}))
    for key in ("clusterIP", "clusterIPs"):
        spec.pop(key, None)
    spec["selector"] = dict(selector)
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(user, name, labels), "spec": spec}
