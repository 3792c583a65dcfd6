"""The error tree of Sluice.

Every error says what failed, which input, what was expected and what was found.
Vendor exceptions (kubernetes, botocore, requests, httpx) never cross a port: adapters
wrap them in one of these with ``raise ... from err``.

- ``RetryableError``: temporary; a function answers 5xx so the broker retries.
- ``PermanentError``: will fail again the same way; a domain failure event is sent.
- ``ConfigurationError``: the operator's configuration is wrong (a file, a setting).
- ``ValidationError``: the input (an event, a file, a flag) is invalid; answered 400.

Every HTTP entry point (the functions' CloudEvent adapter, intake and its front door, the
bridge, the local broker) answers an error it could not turn into an event with
``status_for(error)``; see docs/cluster.md "How the functions answer".
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


#: The one error → HTTP status map of every HTTP entry point, following Knative's retry rules
#: (it retries 5xx, 404, 408, 409 and 429; other 4xx are final and go to the dead-letter sink).
STATUS_BAD_INPUT = 400
#: Permanent and configuration errors: final. A configuration error will not heal within a
#: broker's retry window (seconds), so it is not retried either: the dead-letter sink keeps the
#: event, to be sent again once the operator has fixed the setting the message names.
STATUS_FINAL = 422
STATUS_RETRY = 503
STATUS_BUG = 500


def status_for(error: BaseException) -> int:
    """The HTTP status answering ``error``: 400 for invalid input, 422 for a permanent or a
    configuration error (final, never retried), 503 for a temporary one (retried), 500 for
    anything else (a bug: retried, then dead-lettered)."""
    if isinstance(error, ValidationError):
        return STATUS_BAD_INPUT
    if isinstance(error, PermanentError | ConfigurationError):
        return STATUS_FINAL
    if isinstance(error, RetryableError):
        return STATUS_RETRY
    return STATUS_BUG
