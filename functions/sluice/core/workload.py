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
- :func:`check_objects` checks what ``sluice onboard --chart/--manifests`` rendered before it is
  stored (:class:`UserWorkload`): the kinds Sluice applies, no Secrets (Sluice keeps no secret
  in its records), every object in the stage's namespace, no name that Sluice's own objects
  take, and the service's Deployment and Service (``kubernetes``) or Knative Service
  (``knative``) present and derivable.
- :func:`split_knative` and :func:`derive_knative_template` do for a Knative Service what the
  Deployment functions do: the revision template kept whole, only the image changed.

The caller (a deployment backend) supplies the names, labels and selector of its own scheme.
Standard library only; every problem is a ``ValidationError`` naming the object and field.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sluice.core.frozen import frozen
from sluice.errors import ValidationError

__all__ = [
    "EXTRA_KINDS",
    "KNATIVE_SERVICE",
    "KnativeWorkload",
    "UserWorkload",
    "Workload",
    "check_objects",
    "derive_deployment",
    "derive_knative_template",
    "derive_service",
    "digest",
    "service_container",
    "split_knative",
    "split_workload",
]

#: (apiVersion, kind) of the objects besides the service's own that Sluice applies in a stage.
EXTRA_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
)
KNATIVE_SERVICE = ("serving.knative.dev/v1", "Service")

#: Metadata the API server owns: never copied into a derived object.
_SERVER_FIELDS = ("namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                  "selfLink", "ownerReferences", "deletionTimestamp", "deletionGracePeriodSeconds")
#: Annotations that describe the user's object, not the derived one.
_OWN_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision")


@frozen
class UserWorkload:
    """What ``sluice onboard --chart/--manifests`` rendered for one stage: the objects as JSON
    mappings, where they came from (for messages) and a digest of them (a changed workload is
    rolled out again even for the same image)."""

    source: str
    objects: tuple[Mapping[str, Any], ...]
    digest: str


def digest(value: object) -> str:
    """A short, stable digest of a JSON value (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@frozen
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
        api = "apps/v1" if kind == "Deployment" else "v1"
        found = [o for o in objs if o.get("kind") == kind and o.get("apiVersion") == api]
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
    raw = user.get("spec")
    if raw is not None and not isinstance(raw, Mapping):
        raise ValidationError(source, [f"Service {_name(user)}: spec: expected a mapping, found {type(raw).__name__}"])
    spec = copy.deepcopy(dict(raw or {}))
    for key in ("clusterIP", "clusterIPs"):
        spec.pop(key, None)
    spec["selector"] = dict(selector)
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(user, name, labels), "spec": spec}


def service_container(containers: Sequence[object], service: str) -> int:
    """The index of the service's container: the one named ``service``, else the only one; -1 if
    neither (several containers, none named so)."""
    names = [str(c.get("name", "")) if isinstance(c, Mapping) else "" for c in containers]
    if service in names:
        return names.index(service)
    return 0 if len(names) == 1 else -1


@frozen
class KnativeWorkload:
    """The service's Knative Service and every other object, as given."""

    service: Mapping[str, Any]
    extras: tuple[Mapping[str, Any], ...]


def split_knative(objects: Sequence[object], service: str, source: str) -> KnativeWorkload:
    """The Knative Service of ``service`` (named so, else the only one) and the rest."""
    objs = [o for o in objects if isinstance(o, Mapping)]
    found = [o for o in objs if (o.get("apiVersion"), o.get("kind")) == KNATIVE_SERVICE]
    named = [o for o in found if _name(o) == service]
    chosen = named[0] if len(named) == 1 else (found[0] if len(found) == 1 else None)
    if chosen is None:
        names = ", ".join(_name(o) for o in found) or "none"
        raise ValidationError(source, [f"expected one Knative Service (serving.knative.dev/v1) of service {service!r} "
                                       f"(named {service!r}, or the only one); found: {names}"])
    return KnativeWorkload(chosen, tuple(o for o in objs if o is not chosen))


def derive_knative_template(user: Mapping[str, Any], *, service: str, image: str, source: str = "Knative Service") -> dict[str, Any]:
    """The revision template of ``user`` (a Knative Service) running ``image`` in the service's
    container; everything else kept (env, probes, resources, volumes, sidecars, annotations) but
    a fixed revision name (it would clash with the next image's revision)."""
    spec = user.get("spec")
    template = spec.get("template") if isinstance(spec, Mapping) else None
    pod = template.get("spec") if isinstance(template, Mapping) else None
    containers = pod.get("containers") if isinstance(pod, Mapping) else None
    if not isinstance(containers, list) or not containers or not all(isinstance(c, Mapping) for c in containers):
        raise ValidationError(source, ["spec.template.spec.containers: expected a non-empty list of containers"])
    target = service_container(containers, service)
    if target < 0:
        names = ", ".join(str(c.get("name", "")) for c in containers)
        raise ValidationError(source, [f"spec.template.spec.containers: no container named {service!r} and more than one "
                                       f"({names}): name the service's container {service!r}"])
    out = copy.deepcopy(dict(template))  # type: ignore[arg-type]  # checked above: a mapping
    meta = dict(out.get("metadata") or {})
    meta.pop("name", None)
    out["metadata"] = meta
    out["spec"]["containers"][target]["image"] = image
    return out


def _namespace_problem(obj: Mapping[str, Any], namespace: str) -> str | None:
    meta = obj.get("metadata")
    given = meta.get("namespace") if isinstance(meta, Mapping) else None
    if given in (None, "", namespace):
        return None
    return f"{obj.get('kind')} {_name(obj)}: namespace {given!r}, expected none or the stage's {namespace!r}"


def check_objects(objects: Sequence[object], *, service: str, namespace: str, platform: str, source: str) -> None:
    """Refuse (``ValidationError(source, ...)``, every problem at once) what Sluice would not
    apply for ``service`` in ``namespace`` on ``platform`` (``kubernetes`` or ``knative``; any
    other: a Deployment or a Knative Service suffices)."""
    docs = [o for o in objects if o is not None]
    if not docs:
        raise ValidationError(source, ["rendered no Kubernetes object: expected the service's Deployment and Service"])
    problems: list[str] = []
    for i, obj in enumerate(docs):
        if not isinstance(obj, Mapping) or not obj.get("kind") or not obj.get("apiVersion"):
            problems.append(f"document {i + 1}: expected a Kubernetes object (a mapping with apiVersion and kind), "
                            f"found {type(obj).__name__ if not isinstance(obj, Mapping) else 'a mapping without them'}")
            continue
        kind = (obj.get("apiVersion"), obj.get("kind"))
        name = _name(obj)
        if not name:
            problems.append(f"document {i + 1} ({kind[1]}): expected metadata.name")
        if kind == ("v1", "Secret"):
            problems.append(f"Secret {name}: Sluice keeps no secrets in its records; create it in the stage's "
                            f"namespace yourself (kubectl create secret ...) and let the chart refer to it")
        elif kind not in (*EXTRA_KINDS, KNATIVE_SERVICE):
            allowed = ", ".join(f"{k} ({a})" for a, k in (*EXTRA_KINDS, KNATIVE_SERVICE))
            problems.append(f"{kind[1]} {name} ({kind[0]}): not a kind Sluice applies; expected one of {allowed}")
        if problem := _namespace_problem(obj, namespace):
            problems.append(problem)
    if problems:
        raise ValidationError(source, problems)
    objs = [o for o in docs if isinstance(o, Mapping)]
    has_deployment = any((o.get("apiVersion"), o.get("kind")) == ("apps/v1", "Deployment") for o in objs)
    has_knative = any((o.get("apiVersion"), o.get("kind")) == KNATIVE_SERVICE for o in objs)
    if platform == "knative" or (platform != "kubernetes" and has_knative and not has_deployment):
        kn = split_knative(objs, service, source)
        derive_knative_template(kn.service, service=service, image="check.invalid/image:0", source=source)
        extras = kn.extras
    else:
        workload = split_workload(objs, service, source)
        if workload.service is None:
            raise ValidationError(source, [f"expected a Service (v1) of service {service!r}: the stage's address and its ports"])
        labels = {"app": service}
        derive_deployment(workload.deployment, service=service, name=service, image="check.invalid/image:0",
                          labels=labels, selector=labels, source=source)
        derive_service(workload.service, name=service, labels=labels, selector=labels, source=source)
        extras = workload.extras
    foreign = [f"{o.get('kind')} {_name(o)} ({o.get('apiVersion')}): the {platform} backend applies beside the service only "
               + ", ".join(f"{k} ({a})" for a, k in EXTRA_KINDS) for o in extras
               if (o.get("apiVersion"), o.get("kind")) not in EXTRA_KINDS]
    if foreign:
        raise ValidationError(source, foreign)
    taken = {service, f"{service}-primary", f"{service}-canary"}
    clashes = [f"{o.get('kind')} {_name(o)}: the name is Sluice's own (it derives {', '.join(sorted(taken))} "
               "from the service's objects); rename it" for o in extras
               if o.get("kind") in ("Deployment", "Service") and _name(o) in taken]
    if clashes:
        raise ValidationError(source, clashes)
