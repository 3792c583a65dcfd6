"""Notifications (pure): their configuration, the messages, and the outbox's phases.

An outbox entry is one message: one notification × delivery × stage × outcome. Its phases::

    pending ──claim──▶ sending ──answer 2xx──▶ sent
       ▲                  │  ├──5xx / timeout / no answer, before the deadline──▶ pending (backoff)
       └──lease expired───┘  └──4xx, or past the deadline──────────────────────▶ failed
    rejected: the configuration was refused when the message was due (nothing is sent)

Every transition is a function of the entry and the clock; a transition from the wrong phase
returns ``None`` (the caller changes nothing).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sluice.core.delivery_metrics import iso
from sluice.core.fastenum import FastStrEnum
from sluice.core.frozen import frozen
from sluice.core.validation import dns_label_problem

#: What a notification can be sent on: the outcomes of ``done`` and ``approval`` (approval.triggered).
TRIGGERS = ("promoted", "rolled_back", "stopped", "declined", "failed", "superseded", "approval")
FORMATS = ("slack", "cloudevent")
#: One attempt waits at most this long for an answer (the eventlog function must stay quick).
SEND_TIMEOUT_S = 2.0
#: An entry that could not be sent by then is given up (phase ``failed``).
DEADLINE_S = 15 * 60.0
#: Retry n waits ``BACKOFF_S * 2**(n-1)``, at most ``BACKOFF_MAX_S``.
BACKOFF_S = 1.0
BACKOFF_MAX_S = 120.0
#: Entries kept per service (the newest; finished ones go first), and their byte budget (UTF-8
#: JSON; with the metrics' 600 KiB the record stays under 900 KiB).
OUTBOX_LIMIT = 120
OUTBOX_BYTES = 250 * 1024
#: Messages sent per handled event (more wait for the next event or tick).
SENDS_PER_CALL = 3


class Phase(FastStrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    REJECTED = "rejected"


FINAL = frozenset({Phase.SENT, Phase.FAILED, Phase.REJECTED})


@frozen
class Notification:
    """One configured notification of a project."""

    name: str
    url: str = ""
    url_secret: str = ""
    on: tuple[str, ...] = ()
    format: str = "slack"
    stage: str = ""
    secret: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"on": list(self.on), "format": self.format}
        for key, value in (("url", self.url), ("urlSecret", self.url_secret), ("stage", self.stage), ("secret", self.secret)):
            if value:
                out[key] = value
        return out

    def wants(self, trigger: str, stage: str) -> bool:
        return trigger in self.on and (not self.stage or self.stage == stage)


def url_problem(url: str) -> str | None:
    """Why ``url`` may not receive notifications: https is required except for loopback."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError as err:
        return f"url: not a URL ({err})"
    if parts.scheme not in ("http", "https") or not host:
        return f"url: expected an https:// URL, found {url[:80]!r}"
    if parts.username or parts.password:
        return "url: credentials in the URL are refused (put a secret in the secret store: --secret or --url-secret)"
    if parts.scheme == "http" and not _loopback(host):
        return f"url: https is required (http only to loopback: 127.0.0.1, ::1, localhost), found host {host!r}"
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_notification(name: str, doc: object) -> Notification:
    """A notification from its stored (or ``kubectl apply``-ed) form; raises ValueError with
    every problem when it is refused."""
    problems: list[str] = []
    if (p := dns_label_problem("name", name)) is not None:
        problems.append(p)
    if not isinstance(doc, Mapping):
        raise ValueError(f"notification {name!r}: expected a mapping, found {type(doc).__name__}")
    unknown = sorted(set(doc) - {"url", "urlSecret", "on", "format", "stage", "secret"})
    if unknown:
        problems.append(f"unknown field(s) {', '.join(map(str, unknown))}; expected url, urlSecret, on, format, stage, secret")
    url, url_secret = doc.get("url") or "", doc.get("urlSecret") or ""
    if not isinstance(url, str) or not isinstance(url_secret, str):
        problems.append("url / urlSecret: expected strings")
        url, url_secret = "", ""
    if bool(url) == bool(url_secret):
        problems.append("expected exactly one of url and urlSecret")
    elif url and (p := url_problem(url)) is not None:
        problems.append(p)
    raw_on = doc.get("on")
    on = [str(x).strip() for x in raw_on.split(",")] if isinstance(raw_on, str) else raw_on
    if not isinstance(on, list) or not on or not all(isinstance(x, str) for x in on):
        problems.append(f"on: expected a list of {', '.join(TRIGGERS)}, found {raw_on!r}")
        on = []
    bad = [x for x in on if x not in TRIGGERS]
    if bad:
        problems.append(f"on: unknown {', '.join(map(repr, bad))}; expected some of {', '.join(TRIGGERS)}")
    fmt = doc.get("format", "slack")
    if fmt not in FORMATS:
        problems.append(f"format: expected one of {', '.join(FORMATS)}, found {fmt!r}")
    stage = doc.get("stage") or ""
    if stage and (p := dns_label_problem("stage", stage)) is not None:
        problems.append(p)
    for key in ("secret", "urlSecret"):
        value = doc.get(key) or ""
        if value and (p := dns_label_problem(key, value)) is not None:
            problems.append(p)
    if problems:
        raise ValueError(f"notification {name!r}: " + "; ".join(problems))
    return Notification(
        name=name, url=url, url_secret=url_secret, on=tuple(dict.fromkeys(on)), format=str(fmt), stage=str(stage),
        secret=str(doc.get("secret") or ""),
    )


# --- messages ---------------------------------------------------------------------------------

_EMOJI = {"promoted": ":white_check_mark:", "rolled_back": ":leftwards_arrow_with_hook:", "failed": ":x:",
          "stopped": ":no_entry:", "declined": ":no_entry_sign:", "superseded": ":fast_forward:",
          "approval": ":raised_hand:"}


def _fmt_value(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return "no value"


def slack_message(
    *, project: str, stage: str, service: str, image: str, trigger: str, message: str,
    failing: Sequence[Mapping[str, Any]], link: str,
) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: a ``text`` fallback and ``blocks``."""
    what = "waits for approval" if trigger == "approval" else trigger.replace("_", " ")
    title = f"{_EMOJI.get(trigger, '')} {service} {image or ''} {what} in {stage} ({project})".replace("  ", " ").strip()
    fields = [
        {"type": "mrkdwn", "text": f"*Service*\n{service}"},
        {"type": "mrkdwn", "text": f"*Image*\n{image or 'n/a'}"},
        {"type": "mrkdwn", "text": f"*Stage*\n{stage}"},
        {"type": "mrkdwn", "text": f"*Outcome*\n{what}"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}},
        {"type": "section", "fields": fields},
    ]
    if failing:
        lines = [
            f"• `{f.get('name', '')}` = {_fmt_value(f.get('value'))} (criterion {f.get('criteria') or 'n/a'}, {f.get('status', '')})"
            for f in failing
        ]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Failing SLIs*\n" + "\n".join(lines)}})
    if message:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": message[:500]}]})
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{link}|Open the delivery in the web view>"}})
    return {"text": f"{title}: {link}", "blocks": blocks}


# --- outbox transitions -------------------------------------------------------------------------

def new_entry(*, name: str, key: str, context: str, stage: str, trigger: str, now: datetime,
              body: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    return {
        "key": key, "name": name, "context": context, "stage": stage, "trigger": trigger,
        "phase": Phase.PENDING.value, "created": iso(now), "next": iso(now),
        "deadline": iso(now + timedelta(seconds=DEADLINE_S)), "attempts": 0, "code": None, "error": "",
        "body": dict(body), "headers": dict(headers),
    }


def due(entry: Mapping[str, Any], now: datetime) -> bool:
    """Whether ``entry`` should be sent (or given up) now."""
    phase = entry.get("phase")
    if phase == Phase.PENDING.value:
        return str(entry.get("next", "")) <= iso(now)
    if phase == Phase.SENDING.value:  # a sender that died mid-send: its lease ran out
        return str(entry.get("lease", "")) <= iso(now)
    return False


def claim(entry: dict[str, Any], now: datetime) -> str | None:
    """pending/expired sending → sending (or → failed past the deadline). Returns what to do:
    ``send``, ``gave_up``, or None when the entry is not due (another sender has it, or done)."""
    if not due(entry, now):
        return None
    if iso(now) >= str(entry.get("deadline", "")):
        _finish(entry, Phase.FAILED, now, error=f"gave up at the deadline after {entry.get('attempts', 0)} attempt(s): "
                + str(entry.get("error") or "never sent"))
        return "gave_up"
    entry["phase"] = Phase.SENDING.value
    entry["attempts"] = int(entry.get("attempts", 0)) + 1
    entry["lease"] = iso(now + timedelta(seconds=SEND_TIMEOUT_S + 30))
    return "send"


def _finish(entry: dict[str, Any], phase: Phase, now: datetime, *, code: int | None = None, error: str = "") -> None:
    entry["phase"] = phase.value
    entry["finished"] = iso(now)
    if code is not None:
        entry["code"] = code
    entry["error"] = error[:300]
    entry.pop("body", None)  # what was (or would have been) sent is not kept once it is over
    entry.pop("headers", None)
    entry.pop("lease", None)


def reject(entry: dict[str, Any], now: datetime, reason: str) -> bool:
    if entry.get("phase") in FINAL:
        return False
    _finish(entry, Phase.REJECTED, now, error=reason)
    return True


def record_answer(entry: dict[str, Any], attempt: int, now: datetime, code: int | None, error: str) -> bool:
    """sending → sent / pending (retry later) / failed. ``code`` None: no answer (timeout,
    connection refused). A stale answer (another attempt's, or the entry is over) changes nothing."""
    if entry.get("phase") != Phase.SENDING.value or int(entry.get("attempts", 0)) != attempt:
        return False
    if code is not None and 200 <= code < 300:
        _finish(entry, Phase.SENT, now, code=code)
        entry["sent"] = iso(now)
        return True
    retryable = code is None or code >= 500 or code in (408, 429)
    entry["code"] = code
    entry["error"] = (error or f"answered {code}")[:300]
    wait = min(BACKOFF_S * 2 ** (attempt - 1), BACKOFF_MAX_S)
    retry_at = now + timedelta(seconds=wait)
    if not retryable:
        _finish(entry, Phase.FAILED, now, code=code, error=f"answered {code} (not retried): {error}".strip(": "))
    elif iso(retry_at) >= str(entry.get("deadline", "")):
        _finish(entry, Phase.FAILED, now, code=code, error=f"gave up at the deadline after {attempt} attempt(s): {error}")
    else:
        entry["phase"] = Phase.PENDING.value
        entry["next"] = iso(retry_at)
        entry.pop("lease", None)
    return True


def _size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def trim(entries: dict[str, Any], now: datetime | None = None) -> None:
    """Keep at most ``OUTBOX_LIMIT`` entries within ``OUTBOX_BYTES``: finished entries leave
    first (oldest first); past that, the oldest waiting messages are given up (``failed``,
    which drops their bodies) rather than let the record outgrow its budget."""
    order = sorted(entries, key=lambda k: (entries[k].get("phase") not in FINAL, str(entries[k].get("created", "")), k))
    size = _size(entries)
    for key in order:
        if len(entries) <= OUTBOX_LIMIT and size <= OUTBOX_BYTES:
            return
        item = entries[key]
        before = _size({key: item})
        if item.get("phase") in FINAL or len(entries) > OUTBOX_LIMIT:
            del entries[key]
            size -= before
        else:
            _finish(item, Phase.FAILED, now or datetime.now(UTC), error="given up unsent: the outbox was over its byte budget")
            size -= before - _size({key: item})


def next_due(entries: Mapping[str, Any], now: datetime) -> list[str]:
    return sorted((k for k, e in entries.items() if due(e, now)), key=lambda k: str(entries[k].get("next", "")))

