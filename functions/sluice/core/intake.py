"""Registry push notifications → pushes → ``configuration.change`` for the first stage (pure).

Four registries announce a pushed image, each in its own shape; ``parse_*`` turns each into
``Push`` values (repository as a full, normalised reference, tag, digest when the registry
gives one, and the registry's delivery id). ``Trigger`` says which project/service a
repository feeds and which tags count; ``plan`` builds the events to start.

Nothing here authenticates, stores or sends: that is ``sluice.services.intake``.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Any

from sluice.core.events import ConfigurationChange, Event
from sluice.core.fastenum import FastStrEnum
from sluice.core.frozen import frozen
from sluice.core.validation import Problems, Reader, dns_label_problem, image_problem, shown
from sluice.errors import ValidationError

#: The registries intake understands (also the URL paths and the secret names).
SOURCES = ("dockerhub", "harbor", "github", "ecr", "cloudevents")

#: Tags that start a delivery when a trigger gives no pattern: semantic versions only.
DEFAULT_TAG_PATTERN = r"^v?\d+\.\d+\.\d+$"

#: Ids of the events intake emits are uuid5 under this namespace (a replay yields the same ids).
INTAKE_NAMESPACE = uuid.UUID("0d7c5a52-3f8e-5b8a-a1d2-6c0e4b9f7a31")

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def normalize_repository(reference: str) -> str:
    """A repository as Docker names it in full: ``keptnexamples/carts`` →
    ``docker.io/keptnexamples/carts``, ``carts`` → ``docker.io/library/carts``; a reference with
    a registry host (a dot or a port in its first part, or ``localhost``) stays as it is."""
    ref = reference.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        host = "docker.io" if first in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com") else first
        return f"{host.lower()}/{rest}"
    if not sep:
        return f"docker.io/library/{ref}"
    return f"docker.io/{ref}"


def repository_problem(field_name: str, value: object) -> str | None:
    """Problem with a repository reference (no tag, no digest)."""
    if not isinstance(value, str) or not value:
        return f"{field_name}: expected a repository like 'docker.io/keptnexamples/carts', found {value!r}"
    full = normalize_repository(value)
    if "@" in full or image_problem(field_name, full) or ":" in full.rpartition("/")[2]:
        return f"{field_name}: {value!r} is not a repository reference (expected [registry/]name, without tag or digest)"
    return None


@frozen
class Push:
    """One pushed image tag, as a registry announced it."""

    source: str  # dockerhub | harbor | github | ecr | cloudevents
    repository: str  # normalised, e.g. docker.io/keptnexamples/carts
    tag: str
    digest: str | None
    delivery_id: str  # the registry's id of this notification (or one derived from its content)
    registry_id: str = ""  # ECR: the account id
    region: str = ""  # ECR: the region

    @property
    def image(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def pinned_image(self) -> str:
        """``repo:tag@sha256:…`` when the digest is known: exactly what was pushed."""
        return f"{self.image}@{self.digest}" if self.digest else self.image


@frozen
class Parsed:
    """What a notification announced: pushes, or nothing with the reason why (not an error)."""

    pushes: tuple[Push, ...] = ()
    ignored: str = ""


# --- parsing -----------------------------------------------------------------------------


def _at(r: Reader, dotted: str) -> tuple[Reader, str]:
    """The reader of the mapping that holds the last key of ``dotted``, and that key."""
    *parents, key = dotted.split(".")
    for part in parents:
        r = r.at(part)
    return r, key


def _obj(r: Reader, dotted: str, *, required: bool = True) -> Any:
    """The value at ``dotted``; a problem when required and missing (``""`` counts as missing)."""
    node, key = _at(r, dotted)
    value = node.raw(key)
    if value in (None, ""):
        if required:
            node.fail("required, missing", key)
        return None
    return value


def _text(r: Reader, dotted: str, *, required: bool = True) -> str:
    """A string at ``dotted`` (a number is taken as its text)."""
    if _obj(r, dotted, required=required) is None:
        return ""
    node, key = _at(r, dotted)
    value = node.raw(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return node.string(key)


def _digest(value: str, path: str, problems: Problems) -> str | None:
    if not value:
        return None
    if not _DIGEST.fullmatch(value):
        problems.add(path, f"expected 'sha256:' and 64 hex digits, found {shown(value)}")
        return None
    return value


def _derived_id(source: str, *parts: object) -> str:
    """A stable delivery id for a registry that sends none: the same notification, the same id."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"{source}-{digest}"


def _require_object(doc: object, subject: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise ValidationError(subject, [f"body: expected a JSON object, found {type(doc).__name__}"])
    return doc


def parse_dockerhub(doc: object) -> Parsed:
    """Docker Hub's repository webhook: ``repository.repo_name`` + ``push_data.tag``.

    Docker Hub sends no delivery id; one is derived from repository, tag and ``pushed_at`` so
    a re-sent notification of the same push is recognised."""
    body = _require_object(doc, "Docker Hub webhook")
    problems = Problems("Docker Hub webhook")
    r = Reader(body, "", problems)
    repo = _text(r, "repository.repo_name")
    tag = _text(r, "push_data.tag")
    pushed_at = _text(r, "push_data.pushed_at", required=False)
    if repo and (p := repository_problem("repository.repo_name", repo)):
        problems.add("", p)
    problems.raise_if_any()
    delivery = _derived_id("dockerhub", repo, tag, pushed_at)
    return Parsed((Push("dockerhub", normalize_repository(repo), tag, None, delivery),))


def _harbor_pushes(data: Mapping[str, Any], delivery: str, occur_at: str, subject: str) -> Parsed:
    problems = Problems(subject)
    r = Reader(data, "", problems)
    full_name = _text(r, "repository.repo_full_name")
    resources = r.items("resources", required=True, what="a non-empty list")
    if not resources and isinstance(r.raw("resources"), list):
        r.fail("expected a non-empty list", "resources")
    found: list[tuple[str, str, str | None]] = []
    untagged = 0
    for res in resources:
        path = res.path
        if not isinstance(res.value, Mapping):
            res.fail(f"expected an object, found {type(res.value).__name__}")
            continue
        tag = _text(res, "tag", required=False)
        digest = _digest(_text(res, "digest", required=False), f"{path}.digest", problems)
        url = _text(res, "resource_url", required=False)
        if not tag:
            untagged += 1
            continue
        # resource_url is "<host>/<project>/<repo>:<tag>" (or "@digest"): the host comes from it.
        host = url.split("/", 1)[0] if "/" in url else ""
        repository = normalize_repository(f"{host}/{full_name}" if host else full_name)
        if p := repository_problem(f"{path}.resource_url", repository):
            problems.add("", p)
            continue
        found.append((repository, tag, digest))
    problems.raise_if_any()
    # Harbor's Default format has no delivery id: one notification, one id derived from its content.
    delivery = delivery or _derived_id("harbor", occur_at, *(f"{r}:{t}@{d}" for r, t, d in found))
    pushes = [Push("harbor", r, t, d, delivery) for r, t, d in found]
    if not pushes:
        return Parsed(ignored=f"harbor: {untagged} untagged artifact(s) pushed to {full_name}; only tags start deliveries")
    return Parsed(tuple(pushes))


def parse_harbor(doc: object) -> Parsed:
    """Harbor's webhook in its Default format (``type: PUSH_ARTIFACT``, ``event_data``) or its
    CloudEvents format (``type: harbor.artifact.pushed``, ``data``)."""
    body = _require_object(doc, "Harbor webhook")
    if "specversion" in body:
        return parse_harbor_cloudevent(body, body.get("data"))
    problems = Problems("Harbor webhook")
    r = Reader(body, "", problems)
    kind = _text(r, "type")
    problems.raise_if_any()
    if kind != "PUSH_ARTIFACT":
        return Parsed(ignored=f"harbor: event type {kind!r} is not a push (PUSH_ARTIFACT)")
    data = _obj(r, "event_data")
    if data is not None and not isinstance(data, Mapping):
        r.fail("expected an object", "event_data")
    problems.raise_if_any()
    assert isinstance(data, Mapping)
    return _harbor_pushes(data, "", _text(r, "occur_at", required=False), "Harbor webhook")


def parse_harbor_cloudevent(attributes: Mapping[str, Any], data: object) -> Parsed:
    """Harbor's CloudEvents format: ``type: harbor.artifact.pushed``, the id is the delivery id."""
    kind = str(attributes.get("type", ""))
    if kind != "harbor.artifact.pushed":
        return Parsed(ignored=f"harbor: event type {kind!r} is not a push (harbor.artifact.pushed)")
    event_id = str(attributes.get("id") or "")
    if not event_id:
        raise ValidationError("Harbor CloudEvent", ["id: required CloudEvent attribute, missing"])
    body = _require_object(data, "Harbor CloudEvent data")
    return _harbor_pushes(body, f"harbor-{event_id}", str(attributes.get("time", "")), "Harbor CloudEvent")


def parse_github(doc: object, event_name: str, delivery_id: str) -> Parsed:
    """GitHub's ``package`` / ``registry_package`` webhook for a published container version.

    ``event_name`` is the ``X-GitHub-Event`` header, ``delivery_id`` the ``X-GitHub-Delivery``
    one. The repository comes from ``package_version.package_url`` (``ghcr.io/owner/name:tag``),
    else ``ghcr.io/<namespace>/<name>``; tag and digest from ``container_metadata.tag``."""
    body = _require_object(doc, "GitHub webhook")
    if event_name == "ping":
        return Parsed(ignored="github: ping (the webhook is set up)")
    if event_name not in ("package", "registry_package"):
        return Parsed(ignored=f"github: event {event_name or '(no X-GitHub-Event)'!r} is not package or registry_package")
    problems = Problems("GitHub webhook")
    r = Reader(body, "", problems)
    if not delivery_id:
        problems.add("X-GitHub-Delivery", "required header, missing")
    action = _text(r, "action")
    _obj(r, event_name)
    problems.raise_if_any()
    if action != "published":
        return Parsed(ignored=f"github: action {action!r} is not 'published'")
    package = r.at(event_name)
    if not package.is_mapping:
        package.fail("expected an object")
        problems.raise_if_any()
    ptype = _text(package, "package_type", required=False) or _text(package, "ecosystem", required=False)
    if ptype.lower() not in ("container", "docker"):
        return Parsed(ignored=f"github: package type {ptype!r} is not a container")
    name = _text(package, "name")
    version = package.at("package_version")
    if not version.is_mapping:
        version.fail("required, missing" if version.value in (None, "") else "expected an object")
    problems.raise_if_any()
    tag = _text(version, "container_metadata.tag.name", required=False)
    digest_text = _text(version, "container_metadata.tag.digest", required=False)
    if not digest_text and str(version.raw("version") or "").startswith("sha256:"):
        digest_text = str(version.raw("version"))
    digest = _digest(digest_text, version.where("container_metadata.tag.digest"), problems)
    url = _text(version, "package_url", required=False)
    if url:
        repository = url.split("@", 1)[0]
        last = repository.rpartition("/")[2]
        if ":" in last:
            repository = repository[: len(repository) - len(last)] + last.split(":", 1)[0]
            tag = tag or url.rpartition(":")[2]
    else:
        namespace = _text(package, "namespace", required=False) or _text(package, "owner.login")
        repository = f"ghcr.io/{namespace}/{name}"
    repository = normalize_repository(repository.lower())
    if p := repository_problem(f"{event_name}.package_version.package_url", repository):
        problems.add("", p)
    problems.raise_if_any()
    if not tag:
        return Parsed(ignored=f"github: untagged version of {repository}; only tags start deliveries")
    return Parsed((Push("github", repository, tag, digest, f"github-{delivery_id}"),))


def parse_ecr(doc: object) -> Parsed:
    """The EventBridge "ECR Image Action" event (as an API destination sends it, or as the
    ``data`` of a CloudEvent): a successful ``PUSH`` with a tag."""
    body = _require_object(doc, "ECR event")
    problems = Problems("ECR event")
    r = Reader(body, "", problems)
    detail_type = _text(r, "detail-type")
    source = _text(r, "source")
    event_id = _text(r, "id")
    problems.raise_if_any()
    if source != "aws.ecr" or detail_type != "ECR Image Action":
        return Parsed(ignored=f"ecr: {source}/{detail_type!r} is not an 'ECR Image Action' of aws.ecr")
    action = _text(r, "detail.action-type")
    result = _text(r, "detail.result")
    repo_name = _text(r, "detail.repository-name")
    account = _text(r, "account")
    region = _text(r, "region")
    tag = _text(r, "detail.image-tag", required=False)
    digest = _digest(_text(r, "detail.image-digest", required=False), "detail.image-digest", problems)
    problems.raise_if_any()
    if action != "PUSH" or result != "SUCCESS":
        return Parsed(ignored=f"ecr: {action} with result {result} is not a successful PUSH")
    if not tag:
        return Parsed(ignored=f"ecr: untagged image pushed to {repo_name}; only tags start deliveries")
    host = f"{account}.dkr.ecr.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")
    repository = f"{host}/{repo_name}"
    if p := repository_problem("detail.repository-name", repository):
        raise ValidationError("ECR event", [p])
    return Parsed((Push("ecr", repository, tag, digest, f"ecr-{event_id}", registry_id=account, region=region),))


def parse_cloudevent(attributes: Mapping[str, Any], data: object) -> Parsed:
    """A CloudEvent from a Knative source: Harbor's ``harbor.artifact.pushed``, or any event
    whose data is an EventBridge ``ECR Image Action`` (e.g. relayed by an EventBridge source)."""
    kind = str(attributes.get("type", ""))
    if kind.startswith("harbor."):
        return parse_harbor_cloudevent(attributes, data)
    if isinstance(data, Mapping) and data.get("detail-type") == "ECR Image Action":
        return parse_ecr(data)
    return Parsed(ignored=f"cloudevents: type {kind!r} carries no registry push intake understands "
                          "(harbor.artifact.pushed, or an ECR Image Action)")


# --- triggers ----------------------------------------------------------------------------


@frozen
class Trigger:
    """A repository feeds ``project``/``service``: tags matching ``tag_pattern`` start a delivery
    in the project's first stage. ``source`` limits which registry may trigger ('' = any);
    ``pin_digest`` sends ``repo:tag@sha256:…`` instead of ``repo:tag`` when the digest is known."""

    project: str
    service: str
    repository: str
    tag_pattern: str = DEFAULT_TAG_PATTERN
    source: str = ""
    pin_digest: bool = False

    @classmethod
    def create(
        cls, project: str, service: str, repository: str, tag_pattern: str | None = None,
        source: str = "", pin_digest: bool = False,
    ) -> Trigger:
        """A validated trigger (repository normalised); ValidationError lists every problem."""
        problems = [p for p in (dns_label_problem("project", project), dns_label_problem("service", service),
                                repository_problem("repository", repository)) if p]
        pattern = tag_pattern if tag_pattern not in (None, "") else DEFAULT_TAG_PATTERN
        try:
            re.compile(pattern)
        except re.error as err:
            problems.append(f"tag-pattern: {pattern!r} is not a regular expression: {err}")
        if source and source not in SOURCES:
            problems.append(f"source: expected one of {', '.join(SOURCES)}, found {source!r}")
        if problems:
            raise ValidationError("trigger", problems)
        return cls(project, service, normalize_repository(repository), pattern, source, pin_digest)

    @property
    def key(self) -> str:
        return f"{self.repository}#{self.project}/{self.service}"

    def matches_tag(self, tag: str) -> bool:
        return re.search(self.tag_pattern, tag) is not None

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "service": self.service, "repository": self.repository,
                "tagPattern": self.tag_pattern, "source": self.source, "pinDigest": self.pin_digest}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Trigger:
        return cls.create(str(doc.get("project", "")), str(doc.get("service", "")), str(doc.get("repository", "")),
                          doc.get("tagPattern"), str(doc.get("source", "") or ""), bool(doc.get("pinDigest", False)))


@frozen
class Match:
    """The triggers a push starts, or why none does."""

    push: Push
    triggers: tuple[Trigger, ...] = ()
    reason: str = ""


def match(triggers: Sequence[Trigger], push: Push) -> Match:
    """Which triggers ``push`` fires: same repository, allowed source, tag matching the pattern."""
    same_repo = [t for t in triggers if t.repository == push.repository]
    if not same_repo:
        return Match(push, reason=f"no trigger for repository {push.repository}")
    allowed = [t for t in same_repo if not t.source or t.source == push.source]
    if not allowed:
        sources = ", ".join(sorted({t.source for t in same_repo}))
        return Match(push, reason=f"repository {push.repository} triggers only from {sources}, not {push.source}")
    fired = tuple(t for t in allowed if t.matches_tag(push.tag))
    if not fired:
        patterns = ", ".join(sorted({t.tag_pattern for t in allowed}))
        return Match(push, reason=f"tag {push.tag!r} of {push.repository} does not match the tag pattern {patterns}")
    return Match(push, fired)


def event_id(push: Push, trigger: Trigger) -> str:
    """The id of the event ``push`` starts for ``trigger``: a replay gives the same id."""
    return str(uuid.uuid5(INTAKE_NAMESPACE, f"{push.delivery_id}#{push.image}#{trigger.project}/{trigger.service}"))


def new_artifact_event(push: Push, trigger: Trigger, *, source: str, time: str) -> Event:
    """``configuration.change`` for the first stage (empty ``stage``), a new delivery context,
    ``triggeredid`` = the registry's delivery id; labels say where the image came from."""
    labels: dict[str, str] = {"registry": push.source, "registry-delivery": push.delivery_id}
    if push.digest:
        labels["digest"] = push.digest
    image = push.pinned_image if trigger.pin_digest else push.image
    payload = ConfigurationChange(project=trigger.project, service=trigger.service, image=image, labels=labels)
    return Event.new(payload, source=source, id=event_id(push, trigger), time=time, triggeredid=push.delivery_id)


@frozen
class Plan:
    """What one notification starts: its events (in order) and the reasons for what it does not."""

    events: tuple[Event, ...] = ()
    skipped: tuple[str, ...] = field(default_factory=tuple)


def plan(parsed: Parsed, triggers: Sequence[Trigger], *, source: str, time: str) -> Plan:
    """The events a parsed notification starts under ``triggers``."""
    if not parsed.pushes:
        return Plan(skipped=(parsed.ignored,) if parsed.ignored else ())
    events: list[Event] = []
    skipped: list[str] = []
    for push in parsed.pushes:
        m = match(triggers, push)
        if not m.triggers:
            skipped.append(m.reason)
        events.extend(new_artifact_event(push, t, source=source, time=time) for t in m.triggers)
    return Plan(tuple(events), tuple(skipped))


class IntakePhase(FastStrEnum):
    """Where a registry delivery is: its events recorded (``accepted``), then confirmed ``sent``."""

    ACCEPTED = "accepted"
    SENT = "sent"


@frozen
class IntakeDelivery:
    """One registry push (or several in one webhook) recorded before its events are emitted."""

    key: str
    events: tuple[str, ...]
    phase: IntakePhase
    time: str

    def to_dict(self) -> dict[str, Any]:
        return {"events": list(self.events), "state": self.phase.value, "time": self.time}

    @classmethod
    def from_dict(cls, key: str, doc: Mapping[str, Any]) -> IntakeDelivery:
        phase = IntakePhase(doc.get("state") or IntakePhase.ACCEPTED.value)
        return cls(key, tuple(str(e) for e in doc.get("events") or ()), phase, str(doc.get("time") or ""))


def accept_delivery(
    seen: Mapping[str, IntakeDelivery], delivery: IntakeDelivery, limit: int
) -> tuple[dict[str, IntakeDelivery], IntakeDelivery | None]:
    """The deliveries with ``delivery`` accepted (the oldest beyond ``limit`` forgotten), and the
    one already known under its key (then nothing changes)."""
    if delivery.key in seen:
        return dict(seen), seen[delivery.key]
    kept = sorted((*seen.values(), delivery), key=lambda d: d.time)[-limit:]
    return {d.key: d for d in kept}, None


def mark_sent(seen: Mapping[str, IntakeDelivery], key: str) -> dict[str, IntakeDelivery]:
    """``accepted`` → ``sent``; any other phase (or an unknown key) changes nothing."""
    out = dict(seen)
    found = out.get(key)
    if found is not None and found.phase is IntakePhase.ACCEPTED:
        out[key] = IntakeDelivery(found.key, found.events, IntakePhase.SENT, found.time)
    return out
