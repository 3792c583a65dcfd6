"""Intake: authenticate a registry's push notification, map it to triggers, start deliveries.

Records in the state store (names fixed here):

| record              | key          | holds                                                             |
|---------------------|--------------|-------------------------------------------------------------------|
| ``intake-triggers`` | ``triggers`` | JSON list of triggers (``Trigger.to_dict``)                        |
| ``intake-deliveries`` | ``deliveries`` | JSON ``{delivery id: {events, state, time}}``, newest ``DELIVERIES_LIMIT`` |

The shared secret (GitHub: the webhook secret) of each source is the secret
``sluice-intake-<source>`` (value ``secret``) in the secret store — a Kubernetes Secret only the
intake function may read, locally a 0600 file. Secrets stored the old way (the ``intake-secrets``
ConfigMap) are moved there, and the record deleted, the first time intake or the CLI meets them.

Replay protection keys on what is authenticated — a digest of the body (none of the sources
signs a timestamp) — never on an unsigned header such as ``X-GitHub-Delivery``: the same body
posted again within the remembered window starts nothing and answers "duplicate".

Every answer changes nothing unless it is a 200 "started": 401 (unauthenticated), 400
(malformed), 413 (too large), 202 (authenticated and well-formed but nothing to start: no
trigger, tag not matching, not a push), 200 "duplicate" (a replay). Secrets are compared in
constant time and never logged or put into events or answers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field, replace
from typing import TYPE_CHECKING, Any

from sluice.core.events import Event
from sluice.core.frozen import frozen
from sluice.core.intake import (
    SOURCES,
    IntakeDelivery,
    IntakePhase,
    Parsed,
    Plan,
    Push,
    Trigger,
    accept_delivery,
    mark_sent,
    parse_cloudevent,
    parse_dockerhub,
    parse_ecr,
    parse_github,
    parse_harbor,
    plan,
)
from sluice.errors import ConfigurationError, NotFoundError, RetryableError, ValidationError
from sluice.ports.state import StateStore
from sluice.services.records import Records

if TYPE_CHECKING:  # cold start: these ports are Protocols, for the type checker only
    from sluice.ports.registry import DigestResolver
    from sluice.ports.secrets import SecretStore

log = logging.getLogger("sluice.intake")

TRIGGERS = "intake-triggers"
SECRETS = "intake-secrets"
DELIVERIES = "intake-deliveries"
KIND_LABELS = {"sluice.dev/kind": "intake"}

#: Bodies larger than this are refused (413) before they are parsed.
MAX_BODY_BYTES = 1024 * 1024
#: Delivery ids remembered for replay protection (oldest forgotten first).
DELIVERIES_LIMIT = 2000

#: Headers a shared secret may come in (besides ``?token=``), in the order they are looked at.
TOKEN_HEADERS = ("x-sluice-token", "authorization")


# --- triggers and secrets (used by the CLI and the function alike) ---------------------------


def list_triggers(store: StateStore) -> list[Trigger]:
    record = store.get(TRIGGERS)
    if record is None:
        return []
    try:
        docs = json.loads(record.data.get("triggers", "[]"))
        return [Trigger.from_dict(d) for d in docs]
    except (ValueError, ValidationError) as err:
        raise ConfigurationError(f"record {TRIGGERS}: stored triggers are not valid: {err}") from err


def add_trigger(store: StateStore, trigger: Trigger) -> bool:
    """Store ``trigger`` (replacing one for the same repository and project/service).
    Returns True when it was new."""

    def mutate(docs: list[dict[str, Any]]) -> bool:
        kept = [d for d in docs if Trigger.from_dict(d).key != trigger.key]
        new = len(kept) == len(docs)
        docs[:] = sorted([*kept, trigger.to_dict()], key=lambda d: (d["repository"], d["project"], d["service"]))
        return new

    return Records(store).update_json(TRIGGERS, "triggers", [], KIND_LABELS, mutate)


def remove_trigger(store: StateStore, repository: str, project: str, service: str) -> bool:
    """Delete the trigger of ``repository`` for ``project``/``service``; False when there was none."""
    key = Trigger.create(project, service, repository).key
    if store.get(TRIGGERS) is None:  # nothing to remove: write no empty record either
        return False

    def mutate(docs: list[dict[str, Any]]) -> bool:
        before = len(docs)
        docs[:] = [d for d in docs if Trigger.from_dict(d).key != key]
        return len(docs) != before

    return Records(store).update_json(TRIGGERS, "triggers", [], KIND_LABELS, mutate)


def secret_name(source: str) -> str:
    """The secret holding ``source``'s shared secret."""
    return f"sluice-intake-{source}"


def migrate_secrets(store: StateStore, secrets: SecretStore) -> list[str]:
    """Move secrets stored the old way (the ``intake-secrets`` record) into ``secrets``, then
    delete the record. Returns the sources moved (a secret already in ``secrets`` wins)."""
    record = store.get(SECRETS)
    if record is None:
        return []
    moved = []
    for source, value in record.data.items():
        if source in SOURCES and value and not secrets.get(secret_name(source)):
            secrets.put(secret_name(source), {"secret": value})
            moved.append(source)
    store.delete(SECRETS)
    log.info("intake: moved the secrets of %s from the %s record to the secret store", ", ".join(moved) or "no source", SECRETS)
    return moved


def get_secret(secrets: SecretStore, source: str) -> str | None:
    values = secrets.get(secret_name(source))
    return values.get("secret") if values else None


def set_secret(secrets: SecretStore, source: str, secret: str) -> None:
    """Set the shared secret of ``source`` (at least 16 characters, no surrounding blanks)."""
    problems = []
    if source not in SOURCES:
        problems.append(f"source: expected one of {', '.join(SOURCES)}, found {source!r}")
    if len(secret) < 16:
        problems.append(f"secret: expected at least 16 characters, found {len(secret)}")
    if secret != secret.strip():
        problems.append("secret: must not start or end with blanks")
    if problems:
        raise ValidationError("intake secret", problems)
    secrets.put(secret_name(source), {"secret": secret})


def configured_sources(secrets: SecretStore) -> list[str]:
    """Sources with a secret set (names only: the secrets themselves are never shown)."""
    return sorted(s for s in SOURCES if get_secret(secrets, s))


def replay_key(source: str, body: bytes) -> str:
    """The delivery id of a notification: its source and a digest of its (authenticated) body."""
    return f"{source}-sha256-{hashlib.sha256(body).hexdigest()[:40]}"


# --- authentication ----------------------------------------------------------------------


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    for name in TOKEN_HEADERS:
        value = headers.get(name, "")
        if value:
            scheme, _, rest = value.partition(" ")
            return rest.strip() if scheme.lower() in ("bearer", "token") and rest else value.strip()
    return query.get("token", "")


def authenticate(source: str, secret: str | None, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> str:
    """'' when the request carries proof of ``secret``, else the reason it does not."""
    if not secret:
        return f"no secret is configured for {source}: run 'sluice set intake-secret --source {source}'"
    if source == "github":
        presented = headers.get("x-hub-signature-256", "")
        if not presented:
            return "missing X-Hub-Signature-256 header (set the webhook's secret in GitHub)"
        if not hmac.compare_digest(presented.encode(), github_signature(secret, body).encode()):
            return "X-Hub-Signature-256 does not match the body signed with the configured secret"
        return ""
    token = _presented_token(headers, query)
    if not token:
        return "missing token (send it in X-Sluice-Token, Authorization, or ?token=)"
    if not hmac.compare_digest(token.encode(), secret.encode()):
        return "token does not match the configured secret"
    return ""


# --- the service -------------------------------------------------------------------------


@frozen
class IntakeRequest:
    """One HTTP request to intake; header names lower-case."""

    source: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@frozen
class IntakeResponse:
    status: int
    message: str
    events: tuple[Event, ...] = ()
    details: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        doc: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.events:
            doc["events"] = [{"id": e.id, "shkeptncontext": e.shkeptncontext, "project": e.data.to_dict()["project"],
                              "service": e.data.to_dict()["service"], "image": e.data.to_dict()["valuesCanary"]["image"]}
                             for e in self.events]
        if self.details:
            doc["details"] = list(self.details)
        return json.dumps(doc)


def _parse(request: IntakeRequest) -> Parsed:
    try:
        doc = json.loads(request.body) if request.body else None
    except (ValueError, UnicodeDecodeError) as err:
        raise ValidationError(f"{request.source} webhook", [f"body is not JSON: {err}"]) from err
    if doc is None:
        raise ValidationError(f"{request.source} webhook", ["body: required, empty"])
    if request.source == "dockerhub":
        return parse_dockerhub(doc)
    if request.source == "harbor":
        return parse_harbor(doc)
    if request.source == "github":
        return parse_github(doc, request.headers.get("x-github-event", ""), request.headers.get("x-github-delivery", ""))
    if request.source == "ecr":
        if isinstance(doc, Mapping) and "specversion" in doc:  # an EventBridge event wrapped as a CloudEvent
            return parse_ecr(doc.get("data"))
        return parse_ecr(doc)
    return _parse_cloudevent(request, doc)


def _parse_cloudevent(request: IntakeRequest, doc: object) -> Parsed:
    """Structured mode (``application/cloudevents+json``) or binary mode (``ce-*`` headers)."""
    headers = request.headers
    if headers.get("ce-specversion"):
        attributes = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        return parse_cloudevent(attributes, doc)
    if isinstance(doc, Mapping) and doc.get("specversion"):
        return parse_cloudevent({k: v for k, v in doc.items() if k != "data"}, doc.get("data"))
    raise ValidationError("cloudevents", ["not a CloudEvent: no ce-specversion header and no specversion attribute"])


class IntakeService:
    """Registry push notification in → configuration.change events out (emitted by ``emit``).

    ``resolver`` resolves ECR digests (``describe_images``); without one, ECR pushes keep the
    digest their event names. ``emit`` posts events to the broker and raises RetryableError.
    """

    def __init__(
        self,
        store: StateStore,
        emit: Callable[[Sequence[Event]], None],
        now: Callable[[], str],
        source: str,
        resolver: DigestResolver | None = None,
        max_body: int = MAX_BODY_BYTES,
        *,
        secrets: SecretStore,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self._migrated = False
        self.records = Records(store)
        self.emit = emit
        self.now = now
        self.source = source
        self.resolver = resolver
        self.max_body = max_body

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        if request.source not in SOURCES:
            return IntakeResponse(404, f"unknown intake path /{request.source}: expected one of "
                                       + ", ".join(f"/{s}" for s in SOURCES))
        if len(request.body) > self.max_body:
            return IntakeResponse(413, f"body of {len(request.body)} bytes is over the limit of {self.max_body}")
        if not self._migrated:
            migrate_secrets(self.store, self.secrets)
            self._migrated = True
        reason = authenticate(request.source, get_secret(self.secrets, request.source),
                              request.headers, request.query, request.body)
        if reason:
            log.warning("intake %s: 401 %s", request.source, reason)
            return IntakeResponse(401, f"{request.source}: unauthenticated: {reason}")
        try:
            parsed = _parse(request)
        except ValidationError as err:
            log.warning("intake %s: 400 %s", request.source, err)
            return IntakeResponse(400, str(err))
        except RecursionError:
            return IntakeResponse(400, f"{request.source} webhook: body is nested too deeply")
        # Replays are recognised by what was authenticated (the body), not by unsigned headers.
        key = replay_key(request.source, request.body)
        parsed = replace(parsed, pushes=tuple(replace(p, delivery_id=key) for p in parsed.pushes))
        triggers = list_triggers(self.store)
        the_plan = plan(parsed, triggers, source=self.source, time=self.now())
        if not the_plan.events:
            message = "; ".join(the_plan.skipped) or "nothing to start"
            log.info("intake %s: 202 %s", request.source, message)
            return IntakeResponse(202, message)
        try:
            events = self._resolve_digests(parsed, triggers, the_plan)
        except NotFoundError as err:
            return IntakeResponse(422, f"{request.source}: pushed image not found: {err}")
        return self._start(events, the_plan.skipped)

    def _resolve_digests(self, parsed: Parsed, triggers: Sequence[Trigger], the_plan: Plan) -> tuple[Event, ...]:
        """ECR pushes: the digest as the registry has it (recorded in the label ``digest``, and
        in the image reference when the trigger pins digests)."""
        ecr = [p for p in parsed.pushes if p.source == "ecr"]
        if not ecr or self.resolver is None:
            return the_plan.events
        resolved: dict[str, Push] = {}
        for push in ecr:
            digest = self.resolver.resolve(push.repository, push.tag, push.digest,
                                           registry_id=push.registry_id, region=push.region)
            resolved[push.delivery_id] = replace(push, digest=digest)
        refreshed = plan(Parsed(tuple(resolved.get(p.delivery_id, p) for p in parsed.pushes)),
                         triggers, source=self.source, time=the_plan.events[0].time)
        return refreshed.events

    def _start(self, events: tuple[Event, ...], skipped: Sequence[str]) -> IntakeResponse:
        """Record the delivery and its events in one compare-and-swap write, then emit them.

        A delivery seen before starts nothing new; if its events were never confirmed sent
        (the emit failed or the process died), they are sent again with the same ids, which
        every consumer de-duplicates."""
        delivery = "+".join(sorted({e.triggeredid for e in events}))
        now = self.now()

        def accept(seen: dict[str, Any]) -> str:
            typed = {k: IntakeDelivery.from_dict(k, v) for k, v in seen.items()}
            new = IntakeDelivery(delivery, tuple(e.id for e in events), IntakePhase.ACCEPTED, now)
            kept, known = accept_delivery(typed, new, DELIVERIES_LIMIT)
            if known is not None:
                return "duplicate-sent" if known.phase is IntakePhase.SENT else "duplicate-unsent"
            seen.clear()
            seen.update({k: d.to_dict() for k, d in kept.items()})
            return "new"

        decision = self.records.update_json(DELIVERIES, "deliveries", {}, KIND_LABELS, accept)
        if decision == "duplicate-sent":
            log.info("intake: 200 duplicate delivery %s", delivery)
            return IntakeResponse(200, f"duplicate: delivery {delivery} was handled before; nothing new started")
        try:
            self.emit(events)
        except RetryableError as err:
            log.warning("intake: 503 emitting delivery %s: %s", delivery, err)
            return IntakeResponse(503, f"could not send the events of delivery {delivery}; retry: {err}")
        self._mark_sent(delivery)
        if decision == "duplicate-unsent":
            return IntakeResponse(200, f"duplicate: delivery {delivery} was accepted before; its events were sent again "
                                       "(same ids, nothing new started)", events)
        started = ", ".join(f"{e.data.to_dict()['project']}/{e.data.to_dict()['service']}" for e in events)
        log.info("intake: 200 delivery %s started %s", delivery, started)
        return IntakeResponse(200, f"started: {started}", events, tuple(skipped))

    def _mark_sent(self, delivery: str) -> None:
        def sent(seen: dict[str, Any]) -> None:
            moved = mark_sent({k: IntakeDelivery.from_dict(k, v) for k, v in seen.items()}, delivery)
            seen.clear()
            seen.update({k: d.to_dict() for k, d in moved.items()})

        self.records.update_json(DELIVERIES, "deliveries", {}, KIND_LABELS, sent)
