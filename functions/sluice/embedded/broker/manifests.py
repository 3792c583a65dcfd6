"""The local broker's topology, read from the same manifests a cluster applies.

- ``knative/``: the ``Broker`` (eventing.knative.dev/v1: its namespace and name make the ingress
  path, its ``spec.delivery`` is every Trigger's default), the Knative ``Service``\\ s
  (serving.knative.dev/v1; one ``FUNCTION_TARGET`` each) and ``PingSource``\\ s
  (sources.knative.dev/v1).
- ``triggers/*.yaml``: ``Trigger``\\ s (eventing.knative.dev/v1) of that Broker.

Everything is validated when loaded; a bad manifest is a ``ConfigurationError`` naming the file,
the object and the field. Other kinds (RBAC, SinkBinding, Kustomization, …) are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import yaml

from sluice.core.frozen import frozen
from sluice.embedded.broker.delivery import DeliverySpec
from sluice.embedded.broker.filters import Predicate, compile_filter
from sluice.errors import ConfigurationError

log = logging.getLogger("sluice.embedded.broker")

DEFAULT_NAMESPACE = "sluice"
DEFAULT_BROKER = "default"
EVENTING = "eventing.knative.dev/v1"
SERVING = "serving.knative.dev/v1"
SOURCES = "sources.knative.dev/v1"


@frozen
class BrokerSpec:
    namespace: str = DEFAULT_NAMESPACE
    name: str = DEFAULT_BROKER
    delivery: DeliverySpec = field(default_factory=DeliverySpec)

    @property
    def path(self) -> str:
        """The ingress path, ``/<namespace>/<broker>``."""
        return f"/{self.namespace}/{self.name}"


@frozen
class ServiceSpec:
    """A Knative Service that runs one Sluice function (its ``FUNCTION_TARGET``)."""

    name: str
    namespace: str
    target: str
    origin: str
    #: ``spec.template.spec.containerConcurrency`` (0: not set, Knative's "unlimited").
    concurrency: int = 0


@frozen
class Subscriber:
    """Where a Trigger delivers: a Knative Service (``ref``), a URI, or a Service plus a path."""

    service: str = ""
    uri: str = ""

    def describe(self) -> str:
        return f"ksvc/{self.service}{self.uri}" if self.service else self.uri


@frozen
class TriggerSpec:
    name: str
    namespace: str
    subscriber: Subscriber
    delivery: DeliverySpec
    matches: Predicate = field(compare=False, repr=False)
    origin: str = ""


@frozen
class PingSourceSpec:
    name: str
    namespace: str
    schedule: str
    data: str
    content_type: str
    origin: str

    @property
    def source(self) -> str:
        """The CloudEvent ``source`` Knative's PingSource sets."""
        return f"/apis/v1/namespaces/{self.namespace}/pingsources/{self.name}"


@frozen
class Topology:
    broker: BrokerSpec
    services: Mapping[str, ServiceSpec]
    triggers: tuple[TriggerSpec, ...]
    pingsources: tuple[PingSourceSpec, ...]

    def subscribed_services(self) -> list[ServiceSpec]:
        """The Knative Services a Trigger or dead-letter sink refers to, plus the plain-HTTP ones
        (``bridge``: the web view; ``intake``: registry webhooks), which the broker proxies."""
        names = {t.subscriber.service for t in self.triggers if t.subscriber.service}
        names |= {t.delivery.dead_letter_sink.ref_name for t in self.triggers if t.delivery.dead_letter_sink}
        names |= {s.name for s in self.services.values() if s.target in PROXIED_TARGETS}
        return [self.services[n] for n in sorted(names) if n in self.services]


#: Functions that answer plain HTTP (not CloudEvents from a Trigger): the broker serves them under
#: ``/<target>/…`` so that ``sluice up`` offers one address for everything.
PROXIED_TARGETS = ("bridge", "intake")


def _documents(directory: Path, pattern: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for path in sorted(directory.glob(pattern)):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as err:
            raise ConfigurationError(f"{path}: not readable YAML: {err}") from err
        for i, doc in enumerate(docs):
            if isinstance(doc, Mapping) and doc.get("kind"):
                yield f"{path}#{i}", doc


def _meta(doc: Mapping[str, Any], origin: str, default_namespace: str) -> tuple[str, str]:
    meta = doc.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{origin}: {doc.get('kind')} without metadata.name")
    namespace = meta.get("namespace") or default_namespace
    return name, str(namespace)


def _spec(doc: Mapping[str, Any], origin: str) -> Mapping[str, Any]:
    spec = doc.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"{origin}: spec: expected an object, found {type(spec).__name__}")
    return spec


def _container_concurrency(spec: Mapping[str, Any]) -> int:
    template = spec.get("template")
    pod = template.get("spec") if isinstance(template, Mapping) else None
    value = pod.get("containerConcurrency") if isinstance(pod, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _function_target(spec: Mapping[str, Any]) -> str:
    template = spec.get("template")
    pod = template.get("spec") if isinstance(template, Mapping) else None
    containers = pod.get("containers") if isinstance(pod, Mapping) else None
    for container in containers if isinstance(containers, list) else []:
        for env in (container.get("env") or []) if isinstance(container, Mapping) else []:
            if isinstance(env, Mapping) and env.get("name") == "FUNCTION_TARGET" and env.get("value"):
                return str(env["value"])
    return ""


def load_topology(knative_dir: Path | None, triggers_dir: Path | None) -> Topology:
    """Read the Broker, Services and PingSources of ``knative_dir`` and the Triggers of
    ``triggers_dir``; a missing directory contributes nothing (Broker ``sluice/default``)."""
    brokers: list[tuple[str, Mapping[str, Any]]] = []
    service_docs: list[tuple[str, Mapping[str, Any]]] = []
    ping_docs: list[tuple[str, Mapping[str, Any]]] = []
    if knative_dir is not None and knative_dir.is_dir():
        for origin, doc in _documents(knative_dir, "**/*"):
            api, kind = doc.get("apiVersion"), doc.get("kind")
            if kind == "Broker" and api == EVENTING:
                brokers.append((origin, doc))
            elif kind == "Service" and api == SERVING:
                service_docs.append((origin, doc))
            elif kind == "PingSource" and api == SOURCES:
                ping_docs.append((origin, doc))
    broker = _broker(brokers)
    services: dict[str, ServiceSpec] = {}
    for origin, doc in service_docs:
        name, namespace = _meta(doc, origin, broker.namespace)
        spec = _spec(doc, origin)
        target = _function_target(spec)
        if target:
            services[name] = ServiceSpec(name, namespace, target, origin, _container_concurrency(spec))
    triggers: list[TriggerSpec] = []
    if triggers_dir is not None and triggers_dir.is_dir():
        for origin, doc in _documents(triggers_dir, "*"):
            if doc.get("kind") != "Trigger":
                continue
            if doc.get("apiVersion") != EVENTING:
                raise ConfigurationError(f"{origin}: Trigger: expected apiVersion {EVENTING}, found {doc.get('apiVersion')!r}")
            trigger = _trigger(doc, origin, broker, services)
            if trigger is not None:
                triggers.append(trigger)
    names = [t.name for t in triggers]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigurationError(f"{triggers_dir}: Trigger names must be unique, found {', '.join(dupes)} twice")
    pings = [_pingsource(doc, origin, broker) for origin, doc in ping_docs]
    return Topology(broker, services, tuple(triggers), tuple(p for p in pings if p is not None))


def _broker(docs: list[tuple[str, Mapping[str, Any]]]) -> BrokerSpec:
    if not docs:
        return BrokerSpec()
    if len(docs) > 1:
        named = [d for d in docs if (d[1].get("metadata") or {}).get("name") == DEFAULT_BROKER]
        if len(named) != 1:
            found = ", ".join(o for o, _ in docs)
            raise ConfigurationError(f"knative/: expected one Broker (or one named {DEFAULT_BROKER!r}), found {found}")
        docs = named
    origin, doc = docs[0]
    name, namespace = _meta(doc, origin, DEFAULT_NAMESPACE)
    delivery = DeliverySpec.parse(_spec(doc, origin).get("delivery"), f"{origin}: Broker {name}: spec.delivery")
    return BrokerSpec(namespace=namespace, name=name, delivery=delivery)


def _trigger(
    doc: Mapping[str, Any], origin: str, broker: BrokerSpec, services: Mapping[str, ServiceSpec]
) -> TriggerSpec | None:
    name, namespace = _meta(doc, origin, broker.namespace)
    where = f"{origin}: Trigger {name}"
    spec = _spec(doc, origin)
    if spec.get("broker") != broker.name or namespace != broker.namespace:
        log.warning("%s: for broker %s/%s, not %s/%s: ignored", where, namespace, spec.get("broker"),
                    broker.namespace, broker.name)
        return None
    matches = compile_filter(spec, where)
    subscriber = _subscriber(spec.get("subscriber"), f"{where}: spec.subscriber", services)
    own = spec.get("delivery")
    delivery = broker.delivery.for_trigger(
        DeliverySpec.parse(own, f"{where}: spec.delivery") if own is not None else None
    )
    sink = delivery.dead_letter_sink
    if sink is not None and sink.ref_name and sink.ref_name not in services:
        raise ConfigurationError(
            f"{where}: deadLetterSink refers to Knative Service {sink.ref_name!r}, which is not in knative/ "
            f"(found {', '.join(sorted(services)) or 'none'})"
        )
    return TriggerSpec(name, namespace, subscriber, delivery, matches, origin)


def _subscriber(raw: object, where: str, services: Mapping[str, ServiceSpec]) -> Subscriber:
    if not isinstance(raw, Mapping) or not (raw.get("ref") or raw.get("uri")):
        raise ConfigurationError(f"{where}: expected ref (a Knative Service) or uri")
    uri = raw.get("uri") or ""
    ref = raw.get("ref")
    if not ref:
        parsed = urlparse(str(uri))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigurationError(f"{where}.uri: expected an absolute http(s) URL, found {uri!r}")
        return Subscriber(uri=str(uri))
    if not isinstance(ref, Mapping):
        raise ConfigurationError(f"{where}.ref: expected an object, found {type(ref).__name__}")
    if ref.get("kind") != "Service" or ref.get("apiVersion") != SERVING:
        raise ConfigurationError(
            f"{where}.ref: expected kind Service, apiVersion {SERVING} (a Knative Service), "
            f"found kind {ref.get('kind')!r}, apiVersion {ref.get('apiVersion')!r}"
        )
    name = ref.get("name")
    if name not in services:
        raise ConfigurationError(
            f"{where}.ref: Knative Service {name!r} with a FUNCTION_TARGET is not in knative/ "
            f"(found {', '.join(sorted(services)) or 'none'})"
        )
    path = str(uri)
    if path and (urlparse(path).scheme or not path.startswith("/")):
        raise ConfigurationError(f"{where}.uri: with a ref, expected a path relative to it (/…), found {path!r}")
    return Subscriber(service=str(name), uri=path)


def _pingsource(doc: Mapping[str, Any], origin: str, broker: BrokerSpec) -> PingSourceSpec | None:
    name, namespace = _meta(doc, origin, broker.namespace)
    spec = _spec(doc, origin)
    sink = spec.get("sink") or {}
    ref = sink.get("ref") if isinstance(sink, Mapping) else None
    if not isinstance(ref, Mapping) or ref.get("kind") != "Broker" or ref.get("name") != broker.name:
        log.warning("%s: PingSource %s does not sink into Broker %s: not emulated", origin, name, broker.name)
        return None
    return PingSourceSpec(
        name=name,
        namespace=namespace,
        schedule=str(spec.get("schedule") or "* * * * *"),
        data=str(spec.get("data") or ""),
        content_type=str(spec.get("contentType") or ""),
        origin=origin,
    )


def resolve(base: str, subscriber_uri: str) -> str:
    """A subscriber's URL: its service's base URL joined with the ref-relative path."""
    return urljoin(base, subscriber_uri) if subscriber_uri else base
