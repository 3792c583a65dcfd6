"""The SLI provider port: fetch indicator values for a time window, and what a provider is built from."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any, Protocol

from sluice.core.frozen import frozen

if TYPE_CHECKING:
    from sluice.config import Settings

#: (project, stage, service, delivery context) → the test's stored measurements, or None when none.
LoadMeasurements = Callable[[str, str, str, str], Mapping[str, Any] | None]
#: A resource URI (``sli.yaml``, ``prometheus/sli.yaml``) → its loaded YAML at the project, stage
#: and service level, ``None`` where a level has none; ``ValidationError`` for a file that is no YAML.
Levels = Callable[[str], Sequence[object]]


@frozen
class ProviderContext:
    """Everything an SLI provider is built from: the one argument of every provider's ``create(ctx)``.

    The composition root fills it for one get-sli request; a provider reads only what it needs
    (its part of the ``sli.yaml`` levels, its connection record and secret, the measurements).
    Secrets are read through ``secret`` only while building, and never put in a message.
    """

    settings: Settings
    project: str
    stage: str
    service: str
    levels: Levels
    record: Callable[[str], Mapping[str, str] | None]  # a stored connection record's data by name
    secret: Callable[[str], Mapping[str, str] | None]  # a secret's values by name (read on demand)
    load_measurements: LoadMeasurements

    def __repr__(self) -> str:
        return f"ProviderContext({self.project}/{self.stage}/{self.service})"


@frozen
class ConnectionRecord:
    """What ``sluice set <provider>`` stores for a project: settings in the state record ``name``
    (none when ``data`` is empty), credentials in the secret ``secret_name`` (deleted when
    ``secret_values`` is empty). A provider's module builds it from validated input; the
    services write it (``sluice.services.sli_config.store_connection``)."""

    name: str
    kind: str
    data: Mapping[str, str]
    secret_name: str
    secret_values: Mapping[str, str] = field(default_factory=dict, repr=False)


@frozen
class SliQuery:
    """What to measure: which indicators, for which service and deployment, over which window."""

    project: str
    stage: str
    service: str
    indicators: Sequence[str]
    start: str  # RFC 3339
    end: str  # RFC 3339
    deployment: str = "direct"  # canary | primary | direct
    filters: Mapping[str, str] = field(default_factory=dict)
    context: str = ""  # shkeptncontext of the delivery (the builtin provider reads by it)


@frozen
class SliValue:
    """One indicator's value. ``success=False`` means "could not measure": value is None and
    ``message`` says which indicator and why. Never a silent 0.

    Optional, for providers that know them (the builtin one does): ``samples``, how many requests
    stand behind the value; ``distribution``, the latency samples behind it as
    ``{"buckets": [[value in the indicator's unit, count], ...]}`` (bounded, see
    ``sluice.core.samples``). Both are left out of ``to_dict`` when unknown.
    """

    metric: str
    value: float | None
    success: bool = True
    message: str = ""
    samples: int | None = None
    distribution: Mapping[str, object] | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"metric": self.metric, "value": self.value, "success": self.success, "message": self.message}
        if self.samples is not None:
            out["samples"] = self.samples
        if self.distribution is not None:
            out["distribution"] = dict(self.distribution)
        return out


class SliProvider(Protocol):
    """A source of SLI values (builtin, prometheus, cloudwatch, dynatrace); built by its module's ``create(ctx)``."""

    def fetch(self, query: SliQuery) -> Sequence[SliValue]:
        """One ``SliValue`` per requested indicator, in order.

        Never raises for one indicator's failure (that indicator gets ``success=False``).
        Raises ``ConfigurationError`` when the provider itself is misconfigured, and
        ``RetryableError`` only when its own bookkeeping is briefly unreachable (the sli function
        then answers 5xx and the broker retries); an unreachable metrics backend is a per-indicator
        ``success=False``, never an exception.
        """
        ...
