"""The ``prometheus`` SLI provider: PromQL from ``sli.yaml`` (or built-in queries), via prometheus-api-client.

Each indicator is one instant query at the window's ``end`` over ``[$DURATION_SECONDS]``
(``end − start`` in whole seconds, rounded down: the range never reaches before the window,
into the build that ran in the slot before). The query comes from the merged ``sli.yaml``
(:mod:`sluice.core.sli_config`; service over stage over project level); when it has none for
an indicator, a built-in query over the metrics of the example service is used:

=====================  ==============================================================  =========
indicator              built-in PromQL (``J`` = the job of the deployment under test)   unit
=====================  ==============================================================  =========
throughput             ``sum(rate(http_requests_total{J}[d]))``                         requests/s
error_rate             ``(sum(increase(…{J,status=~"[45].."}[d])) or vector(0))
                       / (sum(increase(…{J}[d])) or vector(0))``                        0..1
response_time_p50/90/95 ``histogram_quantile(q, sum by (le) (rate(
                       http_response_time_milliseconds_bucket{J}[d])))``                 ms
=====================  ==============================================================  =========

``J`` is ``job="$SERVICE-$PROJECT-$STAGE"`` for the ``primary`` and ``direct`` deployments and
``job="$SERVICE-$PROJECT-$STAGE-canary"`` for ``canary`` (the jobs a Kubernetes scrape config
of ``<svc>-primary`` / ``<svc>-canary`` gives, and what the local Prometheus of
:mod:`sluice.embedded.prometheus` labels), with ``handler!~"/health|/metrics"`` so
probes and scrapes do not count. Errors are answers with status 4xx or 5xx, as the load
generator counts them.

Outcomes per indicator: one finite number → its value. An empty result → ``success=False`` for
every indicator, ``error_rate`` included (a misspelt metric must not read as "no errors"); the
built-in ``error_rate`` says "no errors" in PromQL itself (``or vector(0)`` on the errors, divided
by the request count, so no requests stays unmeasured). NaN or ±Inf, more than one series, a
query error, a timeout, an unreachable server, a rejected login → ``success=False`` with a
message naming the indicator, the query's origin and the reason. ``fetch`` never raises for
these (only ``ConfigurationError`` when prometheus-api-client is missing).

Connection settings come per project (:func:`connection_for`): the record
``prometheus-<project>`` (keys ``url``, ``user``, ``insecure_skip_tls_verify``) and the secret
``sluice-prometheus-<project>`` (``token``, ``password``) — a Kubernetes Secret only the sli
function may read, locally a 0600 file. Without a record, the settings' ``prometheus_url`` is
used with no login. The token and password are never logged nor put in a message (every
message is redacted); a record that still holds them (how they were stored before) is used,
with a warning to move them (``sluice set prometheus`` does).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sluice.adapters.sli import SECTIONS
from sluice.core.frozen import frozen
from sluice.core.resources import sli_uris
from sluice.core.sli_config import (
    LEVELS,
    SliConfig,
    duration_placeholder,
    merge_sli_files,
    placeholder_values,
    render_query,
)
from sluice.errors import ConfigurationError, ValidationError
from sluice.ports.sli import ConnectionRecord, ProviderContext, SliQuery, SliValue

__all__ = [
    "BUILTIN_QUERIES", "PrometheusConnection", "PrometheusSliProvider", "builtin_query", "connection_for",
    "connection_record", "create", "job_name", "queries", "record_name", "secret_name",
]

log = logging.getLogger(__name__)

_NOT_PROBES = 'handler!~"/health|/metrics"'
_SELECTOR = 'job="$SERVICE-$PROJECT-$STAGE{suffix}",' + _NOT_PROBES

#: Built-in PromQL per indicator (``{selector}`` is the job selector of the deployment under test).
BUILTIN_QUERIES: Mapping[str, str] = {
    "throughput": "sum(rate(http_requests_total{{{selector}}}[$DURATION_SECONDS]))",
    "error_rate": (
        '(sum(increase(http_requests_total{{{selector},status=~"[45].."}}[$DURATION_SECONDS])) or vector(0))'
        " / (sum(increase(http_requests_total{{{selector}}}[$DURATION_SECONDS])) or vector(0))"
    ),
    **{
        f"response_time_p{q}": (
            f"histogram_quantile(0.{q}, sum by (le) "
            "(rate(http_response_time_milliseconds_bucket{{{selector}}}[$DURATION_SECONDS])))"
        )
        for q in (50, 90, 95)
    },
}

_RECORD_KEYS = ("url", "token", "user", "password", "insecure_skip_tls_verify")
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off", "")


def job_name(project: str, stage: str, service: str, deployment: str) -> str:
    """The scrape job of a deployment: ``<service>-<project>-<stage>``, plus ``-canary`` for the canary."""
    return f"{service}-{project}-{stage}" + ("-canary" if deployment == "canary" else "")


def builtin_query(indicator: str, deployment: str) -> str | None:
    """The built-in PromQL template of ``indicator`` for ``deployment``, or None."""
    template = BUILTIN_QUERIES.get(indicator)
    if template is None:
        return None
    suffix = "-canary" if deployment == "canary" else ""
    return template.format(selector=_SELECTOR.format(suffix=suffix))


@frozen
class PrometheusConnection:
    """Where a project's Prometheus is and how to log in (a Secret-like record).

    ``bearer_token`` or ``username``/``password`` (basic auth), not both. ``verify_tls=False``
    skips certificate verification (self-signed test servers only). The secrets are left out of
    ``repr`` and redacted from every message.
    """

    url: str
    bearer_token: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    verify_tls: bool = True

    def __post_init__(self) -> None:
        problems = []
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"url: expected http(s)://host[:port][/path], found {_safe_url(str(self.url))!r}")
        elif parts.username is not None or parts.password is not None:
            problems.append("url: must not contain credentials; put them in the record's user/password or token")
        if self.bearer_token and (self.username or self.password):
            problems.append("use either a bearer token or basic auth (user/password), not both")
        if self.password and not self.username:
            problems.append("password given without user")
        if problems:
            raise ConfigurationError("Prometheus connection: " + "; ".join(problems))

    @classmethod
    def from_record(cls, data: Mapping[str, str] | None, default_url: str = "") -> PrometheusConnection:
        """Build from a record's data: keys ``url``, ``token``, ``user``, ``password``,
        ``insecure_skip_tls_verify`` (``true``/``false``). A missing record or url falls back to
        ``default_url``. ``ConfigurationError`` names unknown keys (never their values)."""
        data = dict(data or {})
        unknown = sorted(k for k in data if k not in _RECORD_KEYS)
        if unknown:
            raise ConfigurationError(
                f"Prometheus connection record: unknown key(s) {', '.join(unknown)}; expected {', '.join(_RECORD_KEYS)}"
            )
        skip = str(data.get("insecure_skip_tls_verify", "")).strip().lower()
        if skip not in _TRUE + _FALSE:
            raise ConfigurationError(f"Prometheus connection record: insecure_skip_tls_verify: expected true or false, found {skip!r}")
        url = str(data.get("url") or default_url).strip()
        if not url:
            raise ConfigurationError("Prometheus connection: no url in the project's record and no default url")
        return cls(url.rstrip("/"), str(data.get("token", "")), str(data.get("user", "")),
                   str(data.get("password", "")), verify_tls=skip not in _TRUE)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in a log line or a message."""
        found = [s for s in (self.bearer_token, self.password) if s]
        if self.username and self.password:
            found.append(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        return tuple(found)

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


class PrometheusSliProvider:
    """``SliProvider`` over a Prometheus server's HTTP API.

    Args:
        connection: the project's :class:`PrometheusConnection` (or its record data as a mapping).
        queries: the merged sli.yaml (:class:`SliConfig`) or a plain name → PromQL mapping.
        timeout_s: bound on each query (sent as Prometheus' ``timeout`` too).
        retries: extra attempts on a refused connection or a 502/503/504 (not on a timeout).
    """

    name = "prometheus"

    def __init__(
        self,
        connection: PrometheusConnection | Mapping[str, str],
        queries: SliConfig | Mapping[str, str] | None = None,
        *,
        timeout_s: float = 30.0,
        retries: int = 1,
    ) -> None:
        if not isinstance(connection, PrometheusConnection):
            connection = PrometheusConnection.from_record(connection)
        if isinstance(queries, SliConfig):
            config = queries
        else:
            mapping = dict(queries or {})
            config = SliConfig(mapping, {})
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ConfigurationError(f"prometheus provider: timeout_s: expected seconds > 0, found {timeout_s!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"prometheus provider: retries: expected an integer >= 0, found {retries!r}")
        self.connection = connection
        self.config = config
        self.timeout_s = float(timeout_s)
        self.retries = retries

    def __repr__(self) -> str:
        return f"PrometheusSliProvider(url={_safe_url(self.connection.url)!r}, indicators={sorted(self.config.indicators)})"

    # -- the port --------------------------------------------------------------------------

    def fetch(self, query: SliQuery) -> Sequence[SliValue]:
        """One value per requested indicator, in order; never raises for one indicator's failure."""
        where = f"Prometheus at {_safe_url(self.connection.url)}"
        try:
            start, end = _epoch(query.start, "start"), _epoch(query.end, "end")
            values = placeholder_values(
                query.project, query.stage, query.service, query.deployment,
                duration_placeholder(start, end), dict(query.filters),
            )
        except ValidationError as err:
            return self._all_failed(query.indicators, f"the query cannot be built: {err}")
        client = self._client()
        unreachable = ""
        results: list[SliValue] = []
        try:
            for name in query.indicators:
                if unreachable:
                    results.append(self._failed(name, unreachable))
                    continue
                value, unreachable = self._one(client, name, query.deployment, values, end, where)
                results.append(value)
        finally:
            client.close()
        return results

    # -- one indicator ---------------------------------------------------------------------

    def _one(
        self, client: Any, name: str, deployment: str, values: Mapping[str, str], end: float, where: str
    ) -> tuple[SliValue, str]:
        """The value of one indicator, and the reason when the server turned out unreachable."""
        template = self.config.query(name)
        level = self.config.sources.get(name, "")
        origin = f"sli.yaml, {level} level" if level in LEVELS else "sli.yaml"
        if template is None:
            template = builtin_query(name, deployment)
            origin = "built-in query"
        if template is None:
            valid = ", ".join(BUILTIN_QUERIES)
            return self._failed(name, f"no query: not in sli.yaml and not a built-in indicator ({valid})"), ""
        try:
            promql = render_query(template, values)
        except ValidationError as err:
            return self._failed(name, f"{origin}: {err}"), ""
        about = f"{origin}: {promql}"
        try:
            data = client.custom_query(promql, params={"time": f"{end:.3f}", "timeout": f"{max(1, round(self.timeout_s * 1000))}ms"})
        except Exception as err:  # vendor errors never cross the port: each becomes a message
            reason, unreachable = self._explain(err, where)
            return self._failed(name, f"{reason} ({about})"), (reason if unreachable else "")
        return self._interpret(name, data, about), ""

    def _interpret(self, name: str, data: Any, about: str) -> SliValue:
        raw: Any
        if isinstance(data, list) and len(data) == 2 and isinstance(data[0], int | float) and not isinstance(data[1], dict):
            raw = data[1]  # a scalar result: [time, "value"]
        elif isinstance(data, list):
            if not data:
                # Never a silent 0: only a query that counted the requests can say "no errors", and it
                # says so in PromQL (the built-in: ``(errors or vector(0)) / requests``).
                hint = (" — for an error rate write the errors as (… or vector(0)) divided by the request count, "
                        "so that no errors reads 0 while no requests stays unmeasured") if name == "error_rate" else ""
                return self._failed(
                    name, f"empty result: no series matched in the window (is the metric scraped, with these labels?)"
                          f"{hint} ({about})"
                )
            if len(data) > 1:
                labels = ", ".join(_labels(item) for item in data[:3])
                return self._failed(
                    name, f"{len(data)} series instead of one ({labels}{', ...' if len(data) > 3 else ''}); "
                          f"aggregate the query, e.g. sum(...) ({about})"
                )
            item = data[0]
            raw = item.get("value", [None, None])[1] if isinstance(item, dict) else None
        else:
            return self._failed(name, f"unexpected answer of type {type(data).__name__} ({about})")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            return self._failed(name, f"not a number: {raw!r} ({about})")
        if math.isnan(number):
            return self._failed(name, f"NaN (e.g. no requests in the window: 0/0) ({about})")
        if math.isinf(number):
            return self._failed(name, f"{'+' if number > 0 else '-'}Inf (a division by zero, or a quantile in the +Inf bucket) ({about})")
        return SliValue(name, number)

    def _explain(self, err: Exception, where: str) -> tuple[str, bool]:
        """(reason, unreachable) for an exception from the client; redacted."""
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        if isinstance(err, requests.exceptions.ConnectionError) and _read_timeout(err):
            err = requests.exceptions.ReadTimeout(str(err))  # retries exhausted on a read timeout
        if isinstance(err, requests.exceptions.SSLError):
            reason, unreachable = f"{where}: TLS failed ({_short(err)})", True
        elif isinstance(err, requests.exceptions.ConnectTimeout | requests.exceptions.ConnectionError):
            reason, unreachable = f"{where} is unreachable ({_short(err)})", True
        elif isinstance(err, requests.exceptions.Timeout):
            reason, unreachable = f"{where}: no answer within {self.timeout_s:g} s (timed out)", False
        elif isinstance(err, PrometheusApiClientException):
            reason, unreachable = _api_error(str(err), where, self.timeout_s), False
        elif isinstance(err, ValueError):
            reason, unreachable = f"{where}: the answer is not a Prometheus API response ({_short(err)})", False
        else:
            reason, unreachable = f"{where}: query failed: {type(err).__name__}: {_short(err)}", False
        return self.connection.redact(reason), unreachable

    def _failed(self, name: str, reason: str) -> SliValue:
        message = self.connection.redact(f"{name}: {reason}")
        log.warning("SLI %s", message)
        return SliValue(name, None, False, message)

    def _all_failed(self, names: Sequence[str], reason: str) -> list[SliValue]:
        return [self._failed(name, reason) for name in names]

    def _client(self) -> Any:
        try:
            from prometheus_api_client import PrometheusConnect
            from urllib3.util.retry import Retry
        except ImportError as err:
            raise ConfigurationError(
                "the prometheus SLI provider needs prometheus-api-client (pip install prometheus-api-client)"
            ) from err
        c = self.connection
        headers = {"Authorization": f"Bearer {c.bearer_token}"} if c.bearer_token else None
        retry = Retry(total=self.retries, connect=self.retries, read=0, status=self.retries, other=0,
                      backoff_factor=0.2, status_forcelist=(502, 503, 504), raise_on_status=False)
        return PrometheusConnect(
            url=c.url, headers=headers, disable_ssl=not c.verify_tls, retry=retry,
            auth=(c.username, c.password) if c.username else None, timeout=self.timeout_s,
        )


def record_name(project: str) -> str:
    """The name of a project's Prometheus connection record."""
    return f"prometheus-{project}"


def secret_name(project: str) -> str:
    """The secret holding a project's Prometheus credentials."""
    return f"sluice-prometheus-{project}"


#: Keys of the connection that are credentials: they live in the secret, never in the record.
SECRET_KEYS = ("token", "password")


def connection_for(ctx: ProviderContext) -> PrometheusConnection:
    """The project's connection (its record and secret, else the settings' URL without login)."""
    default_url = ctx.settings.prometheus_url
    stored = ctx.record(record_name(ctx.project))
    if stored is None:
        return PrometheusConnection.from_record(None, default_url=default_url)
    data = dict(stored)
    if any(data.get(k) for k in SECRET_KEYS):  # stored the old way: used, never moved here (sli only reads)
        log.warning("the Prometheus credentials of project %s are still in the %s record; move them to the secret "
                    "store with 'sluice set prometheus --project %s' (same flags)",
                    ctx.project, record_name(ctx.project), ctx.project)
    data.update((ctx.secret(secret_name(ctx.project)) or {}).items())
    return PrometheusConnection.from_record(data, default_url=default_url)


def connection_record(project: str, data: Mapping[str, str]) -> ConnectionRecord:
    """What ``sluice set prometheus`` stores: settings in the record, credentials in the secret;
    ``ConfigurationError`` (naming no secret) before anything is written."""
    PrometheusConnection.from_record(data)
    return ConnectionRecord(
        record_name(project), "prometheus-connection", {k: v for k, v in data.items() if k not in SECRET_KEYS},
        secret_name(project), {k: v for k, v in data.items() if k in SECRET_KEYS and v},
    )


def queries(ctx: ProviderContext) -> SliConfig:
    """The merged sli.yaml and prometheus/sli.yaml of the context's service in its stage (``ValidationError``)."""
    return merge_sli_files(ctx.levels, sli_uris("prometheus"), SECTIONS)


def create(ctx: ProviderContext) -> PrometheusSliProvider:
    """The provider for one get-sli request: the project's connection and its queries.
    ``ConfigurationError`` when either is invalid."""
    connection = connection_for(ctx)
    try:
        config = queries(ctx)
    except ValidationError as err:
        raise ConfigurationError(
            f"the sli.yaml or prometheus/sli.yaml of {ctx.service} in {ctx.project}/{ctx.stage} "
            f"is not valid: {err}"
        ) from err
    return PrometheusSliProvider(connection, config)


def _epoch(value: str, what: str) -> float:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError) as err:
        raise ValidationError("window", [f"{what}: expected an RFC 3339 time, found {value!r}"]) from err
    if moment.tzinfo is None:
        raise ValidationError("window", [f"{what}: expected a time zone (e.g. Z) in {value!r}"])
    return moment.timestamp()


def _read_timeout(err: BaseException) -> bool:
    """Whether a requests ``ConnectionError`` is urllib3's read timeout wrapped by the retries."""
    from urllib3.exceptions import ReadTimeoutError

    seen: list[BaseException] = []
    todo: list[object] = [err]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        if isinstance(item, ReadTimeoutError):
            return True
        seen.append(item)
        todo += [getattr(item, "reason", None), item.__cause__, item.__context__, *item.args]
    return False


def _safe_url(url: str) -> str:
    """``url`` without any user:password part."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def _short(err: BaseException) -> str:
    inner = err.args[0] if err.args else None
    reason = getattr(inner, "reason", None)  # urllib3's MaxRetryError carries the underlying error in .reason
    text = str(err) if reason is None else str(reason)
    text = re.sub(r"<urllib3\.connection\.HTTPS?Connection object at 0x[0-9a-f]+>: ", "", text)
    return text if len(text) <= 300 else text[:297] + "..."


def _labels(item: Any) -> str:
    metric = item.get("metric", {}) if isinstance(item, dict) else {}
    return "{" + ",".join(f"{k}={v!r}" for k, v in sorted(metric.items())) + "}"


def _api_error(text: str, where: str, timeout_s: float) -> str:
    """A readable reason from prometheus-api-client's ``HTTP Status Code 400 (b'{...}')``."""
    match = re.match(r"HTTP Status Code (\d+) \((.*)\)$", text, re.S)
    status, body = (int(match.group(1)), match.group(2)) if match else (0, text)
    error_type, error = "", ""
    brace = body.find("{")
    if brace >= 0:
        try:
            payload = json.loads(_unrepr(body[brace:].rstrip("'\"")))
            error_type, error = str(payload.get("errorType", "")), str(payload.get("error", ""))
        except (ValueError, AttributeError):
            pass
    if status in (401, 403):
        return f"{where} rejected the credentials (HTTP {status})"
    if error_type == "timeout":
        return f"{where}: the query timed out on the server (timeout {timeout_s:g} s): {error}"
    if error_type == "bad_data":
        return f"{where} rejected the query as invalid (bad_data): {error}"
    if error:
        return f"{where}: query failed (HTTP {status}, {error_type or 'error'}): {error}"
    return f"{where}: query failed (HTTP {status}): {_short(Exception(body))}"


def _unrepr(text: str) -> str:
    """Undo the ``repr`` of bytes that prometheus-api-client puts in its message."""
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return text
