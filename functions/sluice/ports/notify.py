"""The notification ports: where a webhook is posted, and where its secrets are read.

``SecretReader`` is a stand-in until the secrets port (branch ``security``) lands: it has the
one method notifications need, and the local adapter reads the same 0600 files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class WebhookSender(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        """POST ``body`` to ``url`` and return the answer's status code (any code: the caller
        decides what is retried). Raises ``RetryableError`` when no answer came within
        ``timeout_s`` or the connection failed. Not idempotent: each call sends once."""
        ...


class SecretReader(Protocol):
    def secret(self, name: str) -> str | None:
        """The secret called ``name``, or ``None`` when there is none. Never logs the value.
        Raises ``ConfigurationError`` when the secret exists but may not be used (e.g. a local
        file readable by others)."""
        ...
