"""Posting CloudEvents to a broker (the Knative broker ingress, or the local one)."""

from __future__ import annotations

import urllib.error
import urllib.request

from sluice.core.cloudevent import RawEvent
from sluice.core.events import Event
from sluice.errors import RetryableError

POST_TIMEOUT_S = 10.0


def post_event(url: str, event: Event, timeout_s: float = POST_TIMEOUT_S) -> None:
    """POST one event in structured mode; the broker answers 2xx or we raise RetryableError."""
    headers, body = RawEvent.of(event.to_attributes(), event.data.to_dict()).to_structured()
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        detail = err.read()[:300].decode(errors="replace")
        raise RetryableError(f"broker {url} refused event {event.id} ({event.type}): {err.code} {detail}") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise RetryableError(f"broker {url} unreachable for event {event.id} ({event.type}): {err}") from err
    if not 200 <= status < 300:
        raise RetryableError(f"broker {url} answered {status} for event {event.id}")
