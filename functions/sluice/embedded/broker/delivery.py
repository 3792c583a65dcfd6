"""Delivery settings (``spec.delivery`` of a Broker or Trigger) and Knative's retry rules (pure).

- ``retry``: how many times a failed delivery is retried (absent: 0, Knative's default when
  neither the Trigger nor the Broker says).
- ``backoffPolicy``: before retry n (n = 1, 2, …) ``exponential`` (default) waits
  ``backoffDelay * 2**(n-1)`` and ``linear`` waits ``backoffDelay * n``: the first retry always
  waits ``backoffDelay`` (PT0.5S exponential: 0.5 s, 1 s, 2 s, 4 s, …).
- ``backoffDelay``: an ISO-8601 duration (``PT0.2S``; default ``PT0.2S``).
- ``timeout``: an ISO-8601 duration bounding one attempt (default ``DEFAULT_TIMEOUT_S``, so
  every wait is bounded).
- ``deadLetterSink``: where an exhausted event goes besides the local dead-letter log.

A Trigger's ``delivery`` replaces the Broker's as a whole; only ``deadLetterSink`` falls back
to the Broker's (``DeliverySpec.for_trigger``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sluice.core.frozen import frozen
from sluice.errors import ConfigurationError

DEFAULT_TIMEOUT_S = 900.0
DEFAULT_BACKOFF_DELAY_S = 0.2

#: Status codes Knative retries; every other non-2xx status (3xx, other 4xx) is final.
RETRYABLE_STATUS = frozenset({404, 408, 409, 429})

_NUM = r"(\d+(?:[.,]\d+)?)"  # ASCII digits: _DURATION is compiled with re.ASCII
_DURATION = re.compile(rf"^P(?:{_NUM}W)?(?:{_NUM}D)?(?:T(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?$", re.ASCII)
_UNITS = (7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0)


def parse_duration(text: object, where: str) -> float:
    """Seconds of an ISO-8601 duration like ``PT0.2S``, ``PT1M30S`` or ``P1D``."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if not match or text in ("P", "PT") or (isinstance(text, str) and text.endswith("T")):
        raise ConfigurationError(
            f"{where}: expected an ISO-8601 duration such as PT0.2S, PT30S or PT1M, found {text!r}"
        )
    return sum(float(g.replace(",", ".")) * unit for g, unit in zip(match.groups(), _UNITS, strict=True) if g)


def is_retryable(status: int) -> bool:
    """Knative's rule: retry 5xx, 404, 408, 409 and 429; 3xx and other 4xx are final."""
    return status >= 500 or status in RETRYABLE_STATUS


@frozen
class DeadLetterSink:
    """``deadLetterSink``: a reference to a Knative Service, a URI, or both (URI relative)."""

    ref_name: str = ""
    ref_kind: str = ""
    uri: str = ""


@frozen
class DeliverySpec:
    retry: int = 0
    backoff_policy: str = "exponential"
    backoff_delay_s: float = DEFAULT_BACKOFF_DELAY_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    format: str = "binary"
    dead_letter_sink: DeadLetterSink | None = None

    @classmethod
    def parse(cls, raw: object, where: str) -> DeliverySpec:
        """Validate a ``spec.delivery`` object (absent → the defaults)."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigurationError(f"{where}: expected an object, found {type(raw).__name__}")
        values: dict[str, Any] = {}
        retry = raw.get("retry")
        if retry is not None:
            if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
                raise ConfigurationError(f"{where}.retry: expected a whole number ≥ 0, found {retry!r}")
            values["retry"] = retry
        policy = raw.get("backoffPolicy")
        if policy is not None:
            if policy not in ("linear", "exponential"):
                raise ConfigurationError(f"{where}.backoffPolicy: expected linear or exponential, found {policy!r}")
            values["backoff_policy"] = policy
        if raw.get("backoffDelay") is not None:
            values["backoff_delay_s"] = parse_duration(raw["backoffDelay"], f"{where}.backoffDelay")
        if raw.get("timeout") is not None:
            timeout = parse_duration(raw["timeout"], f"{where}.timeout")
            if timeout <= 0:
                raise ConfigurationError(f"{where}.timeout: expected a positive duration, found {raw['timeout']!r}")
            values["timeout_s"] = timeout
        fmt = raw.get("format")
        if fmt is not None:
            if fmt not in ("binary", "json"):
                raise ConfigurationError(f"{where}.format: expected binary or json, found {fmt!r}")
            values["format"] = fmt
        sink = raw.get("deadLetterSink")
        if sink is not None:
            values["dead_letter_sink"] = _parse_sink(sink, f"{where}.deadLetterSink")
        return cls(**values)

    def for_trigger(self, trigger: DeliverySpec | None) -> DeliverySpec:
        """The delivery of a Trigger under this Broker's: the Trigger's replaces this one as a
        whole; only the dead-letter sink falls back to the Broker's."""
        if trigger is None:
            return self
        if trigger.dead_letter_sink is None and self.dead_letter_sink is not None:
            return replace(trigger, dead_letter_sink=self.dead_letter_sink)
        return trigger

    def backoff_s(self, retry_number: int) -> float:
        """Wait before retry ``retry_number`` (1-based)."""
        if self.backoff_policy == "linear":
            return self.backoff_delay_s * retry_number
        return self.backoff_delay_s * (2 ** (retry_number - 1))


def _parse_sink(raw: object, where: str) -> DeadLetterSink:
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where}: expected an object with ref or uri, found {type(raw).__name__}")
    ref = raw.get("ref") or {}
    uri = raw.get("uri") or ""
    if not isinstance(ref, Mapping) or not isinstance(uri, str) or not (ref.get("name") or uri):
        raise ConfigurationError(f"{where}: expected ref.name or uri")
    return DeadLetterSink(ref_name=str(ref.get("name") or ""), ref_kind=str(ref.get("kind") or ""), uri=uri)
