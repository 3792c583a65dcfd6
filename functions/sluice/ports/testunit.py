"""The test-unit port: where a long test runs, so no HTTP request waits for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Starts a unit of work for a ``deployment-finished`` event (its structured JSON form) and
#: returns at once; the unit reports ``tests-finished`` itself. Must tolerate being called twice
#: for the same event (a duplicate delivery): at most one unit runs per event. Raises
#: ``RetryableError`` when the platform is briefly unreachable, ``ConfigurationError`` otherwise.
Launcher = Callable[[dict[str, Any]], None]
