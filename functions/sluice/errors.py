"""The error tree of Sluice.

Every error says what failed, which input, what was expected and what was found.
Vendor exceptions (kubernetes, botocore, requests, httpx) never cross a port: adapters
wrap them in one of these with ``raise ... from err``.

- ``RetryableError``: temporary; a function answers 5xx so the broker retries.
- ``PermanentError``: will fail again the same way; a domain failure event is sent.
- ``ConfigurationError``: the operator's configuration is wrong (a file, a setting).
- ``ValidationError``: the input (an event, a file, a flag) is invalid; answered 400.
"""

from __future__ import annotations

from collections.abc import Iterable


class SluiceError(Exception):
    """Base of every error Sluice raises on purpose."""


class RetryableError(SluiceError):
    """A temporary failure: the same call may succeed later (answer 5xx, retry)."""


class ConflictError(RetryableError):
    """A compare-and-swap write lost the race: re-read the record and try again."""

    def __init__(self, name: str, expected: str | None, found: str | None) -> None:
        super().__init__(
            f"record {name!r} changed underneath: expected resourceVersion {expected!r}, found {found!r}"
        )
        self.name = name
        self.expected = expected
        self.found = found


class PermanentError(SluiceError):
    """A failure that will repeat for the same input; reported as a failure event."""


class NotFoundError(PermanentError):
    """A record or resource that was asked for does not exist."""


class TooLargeError(PermanentError):
    """A record would pass a size limit (e.g. a ConfigMap's 1 MiB)."""


class ConfigurationError(SluiceError):
    """The configuration (a file, a setting, a registry name) is not valid."""


class ValidationError(SluiceError):
    """Input is invalid. Carries every problem found, so all are reported together."""

    def __init__(self, subject: str, problems: Iterable[str]) -> None:
        self.subject = subject
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__(f"{subject}: " + "; ".join(self.problems))
