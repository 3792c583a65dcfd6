"""Insight: delivery metrics and notifications, fed by the event log (every event passes there).

Per project and service, one record ``insight.<project>.<service>`` holds the bounded metrics
document (``sluice.core.delivery_metrics``) and the notification outbox
(``sluice.core.notification``). Each event is folded in with ONE compare-and-swap write: the
metrics change and the messages it causes are queued together, so a crash between them is
impossible and a duplicate event (any age) changes nothing.

Messages are sent after that write, off the delivery's path (the eventlog function is its own
Trigger): claim an entry (CAS), post it with a short timeout, record the answer (CAS). What
could not be sent waits for the next event of the service or the next tick (PingSource), with
exponential backoff, until a deadline; then it is recorded as failed.

| record                        | data key        | holds                                             |
|-------------------------------|-----------------|---------------------------------------------------|
| ``insight.<p>.<svc>``         | ``metrics``     | the metrics document (bounded)                    |
|                               | ``outbox``      | notification messages by key (bounded)            |
| ``notifications.<p>``         | ``<name>``      | one notification's configuration (YAML or JSON)   |
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from sluice.core import delivery_metrics as dm
from sluice.core import notification as nt
from sluice.core.events import CanaryAction, Event, EventType, Outcome
from sluice.errors import ConfigurationError, NotFoundError, RetryableError, SluiceError
from sluice.ports.state import Record
from sluice.services.records import KIND, PROJECT, SERVICE, Records
from sluice.services.state import cas_update

if TYPE_CHECKING:  # cold start: a payload class is loaded by its own event (fact_of reads its TYPE); ports: types only
    from sluice.core.events import (
        ApprovalTriggered,
        ConfigurationChange,
        DeploymentFinished,
        Done,
        EvaluationDone,
        GetSliDone,
        TestsFinished,
    )
    from sluice.ports.notify import SecretReader, WebhookSender

log = logging.getLogger("sluice.insight")
R = TypeVar("R")

INSIGHT = "insight"
NOTIFICATIONS = "notifications"
#: Label of an insight record whose outbox has messages waiting (a tick lists only those).
WAITING = "sluice.dev/notifications-waiting"


def record_name(project: str, service: str) -> str:
    return f"{INSIGHT}.{project}.{service}"


# --- events → facts -------------------------------------------------------------------------------

def _failing(details: Mapping[str, Any]) -> tuple[tuple[dm.Failing, ...], dm.Reason | None]:
    sluice = details.get("sluice") if isinstance(details, Mapping) else None
    indicators = sluice.get("indicators", []) if isinstance(sluice, Mapping) else []
    failing: list[dm.Failing] = []
    statuses = set()
    for ind in indicators if isinstance(indicators, list) else []:
        if not isinstance(ind, Mapping):
            continue
        status = str(ind.get("status", ""))
        statuses.add(status)
        if status not in ("fail", "error"):
            continue
        targets = [t for t in ind.get("targets", []) if isinstance(t, Mapping)]
        pass_targets = [t for t in targets if t.get("kind", "pass") == "pass"] or targets
        violated = [str(t.get("criteria", "")) for t in pass_targets if t.get("violated")] or [
            str(t.get("criteria", "")) for t in pass_targets]
        value = ind.get("value")
        failing.append(dm.Failing(
            name=str(ind.get("display_name") or ind.get("name", ""))[:80],
            value=float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None,
            criteria=" and ".join(violated)[:120],
            status=status,
        ))
    reason = None
    if "fail" not in statuses and "error" in statuses:
        reason = dm.Reason.INCONCLUSIVE
    failing.sort(key=lambda f: f.status != "fail")
    return tuple(failing), reason


#: An event stamped further ahead than this is counted at the time it arrives (a clock gone
#: wrong must not move the metrics' horizon into the future).
MAX_SKEW = timedelta(minutes=5)


def fact_of(event: Event, is_last_stage: Callable[[str, str], bool], now: datetime) -> dm.Fact | None:
    """What ``event`` tells the metrics, or None (an event they do not count). An event
    without a time, or stamped in the future, counts at ``now``."""
    when = dm.parse_time(event.time) or now
    if when > now + MAX_SKEW:
        when = now
    # The payload's own TYPE says which class it is (``PAYLOADS`` holds one class per type): no
    # isinstance against every payload class, which would load each of them (cold start).
    kind = event.data.TYPE
    common: dict[str, Any] = {"context": event.shkeptncontext, "time": when}
    if kind is EventType.CONFIGURATION_CHANGE:
        data = cast("ConfigurationChange", event.data)
        if not data.stage:
            return None  # a new artifact without a stage: its first deployment-finished names the stage
        if data.action is CanaryAction.PROMOTE:
            return dm.Fact(dm.FactKind.PROMOTING, stage=data.stage, **common)
        if data.action is not CanaryAction.SET:
            return None
        return dm.Fact(dm.FactKind.STAGE_STARTED, stage=data.stage, image=data.image, **common)
    if kind is EventType.DEPLOYMENT_FINISHED:
        deployed = cast("DeploymentFinished", event.data)
        image = f"{deployed.image}:{deployed.tag}" if deployed.tag else deployed.image
        return dm.Fact(dm.FactKind.DEPLOYED, stage=deployed.stage, image=image, result=deployed.result, **common)
    if kind is EventType.TESTS_FINISHED:
        tested = cast("TestsFinished", event.data)
        return dm.Fact(dm.FactKind.TESTED, stage=tested.stage, result=tested.result, **common)
    if kind is EventType.GET_SLI_DONE:
        fetched = cast("GetSliDone", event.data)
        errors = sum(1 for v in fetched.indicatorValues if not (isinstance(v, Mapping) and v.get("success", True)))
        if not fetched.indicatorValues and fetched.message:
            errors = 1
        return dm.Fact(dm.FactKind.SLI_FETCHED, stage=fetched.stage, provider=fetched.sliProvider or "unknown", errors=errors, **common)
    if kind is EventType.EVALUATION_DONE:
        evaluated = cast("EvaluationDone", event.data)
        failing, reason = _failing(evaluated.evaluationdetails)
        score = evaluated.evaluationdetails.get("score")
        image = f"{evaluated.image}:{evaluated.tag}" if evaluated.tag else evaluated.image
        return dm.Fact(
            dm.FactKind.EVALUATED, stage=evaluated.stage, image=image, result=evaluated.result, failing=failing, reason=reason,
            score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None, **common,
        )
    if kind is EventType.APPROVAL_TRIGGERED:
        held = cast("ApprovalTriggered", event.data)
        return dm.Fact(dm.FactKind.APPROVAL_HELD, stage=held.stage, image=held.image, result=held.result,
                       message=held.message, **common)
    if kind is EventType.DONE:
        done = cast("Done", event.data)
        if done.outcome is Outcome.EVALUATED:
            return None  # a quality gate without a delivery (start-evaluation): its evaluation counts, not a stage
        return dm.Fact(dm.FactKind.DONE, stage=done.stage, image=done.image, result=done.result, outcome=done.outcome,
                       message=done.message, last_stage=is_last_stage(done.project, done.stage), **common)
    return None


# --- the service ------------------------------------------------------------------------------

class InsightService:
    """Folds events into the metrics and the outbox; sends what is due."""

    def __init__(
        self,
        records: Records,
        now: Callable[[], datetime],
        sender: Callable[[], WebhookSender] | None = None,
        secrets: SecretReader | None = None,
        bridge_url: str = "",
        send_timeout_s: float = nt.SEND_TIMEOUT_S,
    ) -> None:
        self.records = records
        self.now = now
        self.sender = sender
        self.secrets = secrets
        self.bridge_url = bridge_url.rstrip("/")
        self.send_timeout_s = send_timeout_s

    # --- entry ------------------------------------------------------------------------------
    def observe(self, event: Event) -> None:
        """Fold ``event`` in (one CAS write), then send what is due. A tick only sends."""
        if event.type is EventType.PING:
            self.pump_all()
            return
        data = event.data
        project, service = getattr(data, "project", ""), getattr(data, "service", "")
        fact = fact_of(event, self._is_last_stage, self.now()) if project and service else None
        if fact is None or not self._onboarded(project, service):
            return  # an event the metrics do not count; nothing is created for what does not exist
        trigger = "approval" if fact.kind is dm.FactKind.APPROVAL_HELD else fact.outcome if fact.kind is dm.FactKind.DONE else ""
        configs = self.notifications(project) if trigger else {}
        name, labels = Records.scoped(INSIGHT, project, "", service)

        def change(doc: dict[str, str], _exists: bool) -> bool:
            metrics = json.loads(doc.get("metrics", "{}"))
            outbox = json.loads(doc.get("outbox", "{}"))
            entry = dm.observe(metrics, fact)
            if entry is None:
                return False
            if trigger:
                self._enqueue(outbox, configs, event, fact, trigger, entry)
                nt.trim(outbox, fact.time)
            text = json.dumps(metrics, separators=(",", ":"), sort_keys=True)
            if len(text) > dm.BYTES_BUDGET:  # bytes ≥ characters: only then measure and shrink
                dm.fit(metrics)
                text = json.dumps(metrics, separators=(",", ":"), sort_keys=True)
            doc["metrics"] = text
            doc["outbox"] = json.dumps(outbox, separators=(",", ":"), sort_keys=True)
            return bool(nt.next_due(outbox, self.now()))

        if self._update(name, labels, change):  # messages are due: send them now
            self.pump(project, service)

    def _update(self, name: str, labels: Mapping[str, str], mutate: Callable[[dict[str, str], bool], R]) -> R:
        """One CAS write of an insight record; its ``WAITING`` label says whether messages wait.
        A record that does not exist is not created unless ``mutate`` put data in it."""
        out: list[R] = []

        def apply(record: Record | None) -> Record | None:
            data = dict(record.data) if record is not None else {}
            out.clear()
            out.append(mutate(data, record is not None))
            if record is None and not data:
                return None
            waiting = any(e.get("phase") in (nt.Phase.PENDING.value, nt.Phase.SENDING.value)
                          for e in json.loads(data.get("outbox", "{}")).values())
            return Record(name=name, data=data,
                          labels={**(record.labels if record else {}), **labels, WAITING: "true" if waiting else "false"},
                          resource_version=record.resource_version if record else None)

        cas_update(self.records.store, name, apply)
        return out[0]

    def _onboarded(self, project: str, service: str) -> bool:
        record = self.records.store.get(f"project.{project}")
        try:
            return record is not None and service in json.loads(record.data.get("services", "[]"))
        except ValueError:
            return False

    def _is_last_stage(self, project: str, stage: str) -> bool:
        try:
            # cold start: the stage names only (a done reads no other rule of the shipyard)
            return self.records.stage_names(project)[-1] == stage
        except SluiceError:
            return False

    # --- notifications ----------------------------------------------------------------------
    def notifications(self, project: str) -> dict[str, nt.Notification | str]:
        """The project's notifications by name: parsed, or the reason one is refused."""
        record = self.records.store.get(f"{NOTIFICATIONS}.{project}")
        out: dict[str, nt.Notification | str] = {}
        for key, text in sorted((record.data if record else {}).items()):
            out[key] = parse_stored(key, text)
        return out

    def _enqueue(
        self, outbox: dict[str, Any], configs: Mapping[str, nt.Notification | str], event: Event, fact: dm.Fact,
        trigger: str, entry: Mapping[str, Any],
    ) -> None:
        data = event.data
        project, service = getattr(data, "project", ""), getattr(data, "service", "")
        for cname, config in configs.items():
            if isinstance(config, nt.Notification) and not config.wants(trigger, fact.stage):
                continue
            key = f"{cname}#{fact.context}#{fact.stage}#{trigger}"
            if key in outbox:
                continue
            if isinstance(config, str):  # refused: recorded, never sent
                item = nt.new_entry(name=cname, key=key, context=fact.context, stage=fact.stage, trigger=trigger,
                                    now=fact.time, body={}, headers={})
                item["service"] = service
                nt.reject(item, fact.time, config)
                outbox[key] = item
                continue
            body, headers = self._message(config, event, project, service, fact, trigger, entry)
            item = nt.new_entry(name=cname, key=key, context=fact.context, stage=fact.stage, trigger=trigger,
                                now=self.now(), body=body, headers=headers)
            item["service"] = service
            outbox[key] = item

    def _message(
        self, config: nt.Notification, event: Event, project: str, service: str, fact: dm.Fact, trigger: str,
        entry: Mapping[str, Any],
    ) -> tuple[dict[str, Any], dict[str, str]]:
        idem = hashlib.sha256(f"{config.name}#{fact.context}#{fact.stage}#{trigger}".encode()).hexdigest()[:32]
        if config.format == "cloudevent":
            return event.to_json_dict(), {"Content-Type": "application/cloudevents+json", "Idempotency-Key": idem}
        body = nt.slack_message(
            project=project, stage=fact.stage, service=service, image=str(entry.get("image") or fact.image),
            trigger=trigger, message=fact.message, failing=list(entry.get("failing", [])) if trigger != "promoted" else [],
            link=f"{self.bridge_url}/delivery/{fact.context}",
        )
        return body, {"Content-Type": "application/json", "Idempotency-Key": idem}

    # --- sending -----------------------------------------------------------------------------
    def pump_all(self) -> None:
        """Send what is due in every service's outbox (on a tick)."""
        now = self.now()
        for record in self.records.store.list({KIND: INSIGHT, WAITING: "true"}):
            try:
                outbox = json.loads(record.data.get("outbox", "{}"))
            except ValueError:
                log.warning("record %s: unreadable outbox, skipped", record.name)
                continue
            if nt.next_due(outbox, now):
                self.pump(record.labels.get(PROJECT, ""), record.labels.get(SERVICE, ""))

    def pump(self, project: str, service: str) -> None:
        """Send up to ``SENDS_PER_CALL`` due messages of one service; never raises for a
        receiver's failure (it is recorded on the entry)."""
        name, labels = Records.scoped(INSIGHT, project, "", service)
        for _ in range(nt.SENDS_PER_CALL):
            claimed = self._claim(name, labels)
            if claimed is None:
                return
            if claimed["action"] == "send":
                code, error = self._send(project, claimed)
                self._record(name, labels, str(claimed["key"]), int(claimed["attempts"]), code, error)

    def _claim(self, name: str, labels: Mapping[str, str]) -> dict[str, Any] | None:
        """CAS: the first due entry → ``sending`` (or ``failed`` past its deadline)."""
        now = self.now()

        def take(doc: dict[str, str], exists: bool) -> dict[str, Any] | None:
            if not exists:
                return None
            outbox = json.loads(doc.get("outbox", "{}"))
            for key in nt.next_due(outbox, now):
                action = nt.claim(outbox[key], now)
                if action is not None:
                    doc["outbox"] = json.dumps(outbox, separators=(",", ":"), sort_keys=True)
                    return {**outbox[key], "action": action}
            return None

        return self._update(name, labels, take)

    def _record(self, name: str, labels: Mapping[str, str], key: str, attempt: int, code: int | None, error: str) -> None:
        """CAS: the answer of attempt ``attempt`` (a stale answer changes nothing)."""
        answered = self.now()

        def record(doc: dict[str, str], _exists: bool) -> None:
            outbox = json.loads(doc.get("outbox", "{}"))
            item = outbox.get(key)
            if item is None:
                return
            if code == _REJECTED:
                nt.reject(item, answered, error)
            else:
                nt.record_answer(item, attempt, answered, code, error)
            doc["outbox"] = json.dumps(outbox, separators=(",", ":"), sort_keys=True)

        self._update(name, labels, record)

    def _send(self, project: str, item: Mapping[str, Any]) -> tuple[int | None, str]:
        """(status code, error): code None = no answer; ``_REJECTED`` = the configuration is refused."""
        config = self.notifications(project).get(str(item.get("name")))
        if config is None:
            return _REJECTED, f"notification {item.get('name')!r} was removed"
        if isinstance(config, str):
            return _REJECTED, config
        try:
            url = config.url
            if config.url_secret:
                url = self._secret(config.url_secret) or ""
                problem = nt.url_problem(url) if url else f"secret {config.url_secret!r} (the URL) not found in the secret store"
                if problem:
                    return _REJECTED, problem.replace(url, "<secret URL>") if url else problem
            body = json.dumps(item.get("body", {}), separators=(",", ":")).encode()
            headers = dict(item.get("headers", {}))
            if config.secret:
                key = self._secret(config.secret)
                if key is None:
                    return _REJECTED, f"secret {config.secret!r} not found in the secret store"
                headers["X-Sluice-Signature-256"] = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        except ConfigurationError as err:
            return _REJECTED, str(err)
        if self.sender is None:
            return None, "no webhook sender configured"
        try:
            return self.sender().post(url, body, headers, self.send_timeout_s), ""
        except RetryableError as err:
            return None, str(err)
        except Exception as err:  # a receiver must never fail the eventlog: recorded, retried
            log.warning("notification %s: unexpected error while sending: %s", item.get("key"), type(err).__name__)
            return None, f"{type(err).__name__}"

    def _secret(self, name: str) -> str | None:
        if self.secrets is None:
            raise ConfigurationError("no secret store is configured")
        return self.secrets.secret(name)


_REJECTED = -1


class NamedSecrets(Protocol):
    def get(self, name: str) -> Mapping[str, str] | None: ...


class SecretValues:
    """A ``SecretReader`` over a store of named secrets whose ``get(name)`` returns their values
    (the shape of the secrets port, ``SecretStore``): a notification secret is ``value``, or
    the only value."""

    def __init__(self, store: NamedSecrets) -> None:
        self.store = store

    def secret(self, name: str) -> str | None:
        values = self.store.get(name)
        if values is None:
            return None
        if "value" in values:
            return values["value"]
        if len(values) == 1:
            return next(iter(values.values()))
        raise ConfigurationError(f"secret {name!r}: expected the key 'value' (or a single value)")


def parse_stored(name: str, text: str) -> nt.Notification | str:
    """A stored notification (YAML or JSON text), or the reason it is refused."""
    try:
        doc: object = json.loads(text)
    except ValueError:
        try:
            import yaml

            doc = yaml.safe_load(text)
        except Exception as err:  # yaml.YAMLError and friends: refused with the parser's words
            return f"notification {name!r}: not YAML or JSON ({type(err).__name__})"
    try:
        return nt.parse_notification(name, doc)
    except ValueError as err:
        return str(err)


# --- for the CLI and the web view -------------------------------------------------------------------

def add_notification(records: Records, project: str, config: nt.Notification) -> bool:
    """Store ``config`` (validated; its stage must exist). True when it is new."""
    shipyard = records.project(project).shipyard
    if config.stage and config.stage not in [s.name for s in shipyard.stages]:
        raise NotFoundError(f"stage {config.stage!r} is not in project {project!r} (stages: "
                            f"{', '.join(s.name for s in shipyard.stages)})")
    name, labels = Records.scoped(NOTIFICATIONS, project)
    text = json.dumps(config.to_dict(), sort_keys=True)

    def put(data: dict[str, str], _exists: bool) -> bool:
        new = config.name not in data
        data[config.name] = text
        return new

    return records.update_data(name, labels, put)


def outbox_entries(records: Records, project: str, service: str = "") -> list[dict[str, Any]]:
    """The messages of a project (one service's), newest first, without their bodies."""
    labels = {KIND: INSIGHT, PROJECT: project, **({SERVICE: service} if service else {})}
    out = []
    for record in records.store.list(labels):
        try:
            outbox = json.loads(record.data.get("outbox", "{}"))
        except ValueError:
            continue
        for item in outbox.values():
            item = {k: v for k, v in item.items() if k not in ("body", "headers", "lease")}
            item.setdefault("service", record.labels.get(SERVICE, ""))
            out.append(item)
    out.sort(key=lambda e: str(e.get("created", "")), reverse=True)
    return out


def metrics_docs(records: Records, project: str, service: str = "") -> list[dict[str, Any]]:
    """The metrics documents of a project's services (one record per service: a bounded read)."""
    if service:
        record = records.store.get(record_name(project, service))
        found = [record] if record is not None else []
    else:
        found = list(records.store.list({KIND: INSIGHT, PROJECT: project}))
    docs = []
    for record in found:
        try:
            doc = json.loads(record.data.get("metrics", "{}"))
        except ValueError:
            log.warning("record %s: unreadable metrics, skipped", record.name)
            continue
        doc["service"] = record.labels.get(SERVICE, "")
        docs.append(doc)
    return docs


def delivery_metrics(records: Records, project: str, service: str, window: timedelta, now: datetime) -> dict[str, Any]:
    """``sluice get metrics``: the summary over ``window`` up to ``now``."""
    info = records.require_service(project, service) if service else records.project(project)
    stages = [s.name for s in info.shipyard.stages]
    summary = dm.summarize(metrics_docs(records, project, service), stages, now - window, now)
    return {"project": project, "service": service or None, **summary}


def observer(service: InsightService) -> Callable[[Event], None]:
    """``service.observe`` for the event log: a store that cannot be reached raises (the broker
    retries the event; folding it in again changes nothing); any other error is logged and the
    event log goes on (metrics never stop the log of a delivery)."""

    def observe(event: Event) -> None:
        try:
            service.observe(event)
        except RetryableError:
            raise
        except Exception:
            log.exception("insight: event %s (%s) not counted", event.id, event.type.value)

    return observe
