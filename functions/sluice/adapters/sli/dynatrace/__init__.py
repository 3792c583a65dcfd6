"""The ``dynatrace`` SLI provider: Dynatrace Metrics API v2 over the test window.

A project's tenant and API token live in the secret ``sluice-dynatrace-<project>`` (keys
``tenant`` and ``token``, as Keptn kept ``DT_TENANT`` and ``DT_API_TOKEN`` in its ``dynatrace``
Secret): on a cluster a Kubernetes Secret only the sli function may read, locally a 0600 file
under the state dir. The queries are the merged ``dynatrace/sli.yaml`` of the service in the
stage (project, stage, service levels).

Per indicator, its query from ``dynatrace/sli.yaml`` (:mod:`sluice.adapters.sli.dynatrace.query`) is
rendered with the request's placeholders and sent as
``GET {tenant}/api/v2/metrics/query?metricSelector=…[&entitySelector=…]&from=<ms>&to=<ms>&resolution=Inf``
with ``Authorization: Api-Token <token>``; further pages are fetched with ``nextPageKey`` alone
(bounded). The answer must hold exactly one value (series of only nulls are skipped) (``resolution=Inf`` folds the
window; a selector that splits by dimension must ``:merge(...)`` them).

Outcomes per indicator: one finite value (divided by the ``MV2`` unit divisor) → its value.
No query for the indicator, an invalid query or placeholder, no series or only null values,
several series, an HTTP error (with Dynatrace's ``error.message``), a refused token, a timeout
or an unreachable tenant → ``success=False`` with a message naming the indicator and the
reason. ``fetch`` never raises for these. The token is never logged nor put in a message.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from sluice.adapters.sli import SECTIONS
from sluice.adapters.sli._fetch import Unmeasured, Window, fetch_each
from sluice.adapters.sli.dynatrace.query import DynatraceQuery, parse_query, render_selector
from sluice.core.resources import sli_uris
from sluice.core.sli_config import SliConfig, merge_sli_files
from sluice.errors import ConfigurationError, ValidationError
from sluice.ports.sli import ConnectionRecord, ProviderContext, SliQuery, SliValue

__all__ = ["MAX_PAGES", "DynatraceSliProvider", "connection_record", "create", "queries", "secret_name"]

log = logging.getLogger(__name__)

#: Pages followed per query before giving up (each page is one request).
MAX_PAGES = 20


def _finite(values: object) -> list[float]:
    """The finite numbers of a series' ``values`` (Dynatrace answers ``null`` for no data)."""
    if not isinstance(values, list):
        return []
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]


def secret_name(project: str) -> str:
    """The secret holding a project's Dynatrace tenant URL and API token."""
    return f"sluice-dynatrace-{project}"


def connection_record(project: str, tenant: str, token: str) -> ConnectionRecord:
    """What ``sluice set dynatrace`` stores (only a secret); ``ConfigurationError`` for a tenant
    that is no http(s) URL or an empty token."""
    DynatraceSliProvider(tenant, token, SliConfig())  # checks the URL and token
    return ConnectionRecord("", "", {}, secret_name(project),
                            {"tenant": tenant.strip().rstrip("/"), "token": token.strip()})


def queries(ctx: ProviderContext) -> SliConfig:
    """The merged ``dynatrace/sli.yaml`` of the context's service in its stage (``ValidationError``)."""
    return merge_sli_files(ctx.levels, sli_uris("dynatrace"), SECTIONS)


def create(ctx: ProviderContext) -> DynatraceSliProvider:
    """The provider for one get-sli request; ``ConfigurationError`` without the project's secret
    or with an invalid dynatrace/sli.yaml."""
    values = ctx.secret(secret_name(ctx.project))
    if not values or not values.get("tenant") or not values.get("token"):
        raise ConfigurationError(
            f"project {ctx.project} has no Dynatrace tenant and API token (secret {secret_name(ctx.project)}); "
            f"run 'sluice set dynatrace --project {ctx.project} --tenant URL --token-file FILE'")
    try:
        config = queries(ctx)
    except ValidationError as err:
        raise ConfigurationError(
            f"the dynatrace/sli.yaml of {ctx.service} in {ctx.project}/{ctx.stage} is not valid: {err}") from err
    return DynatraceSliProvider(values["tenant"], values["token"], config)


class DynatraceSliProvider:
    """``SliProvider`` over a Dynatrace tenant. ``tenant``: e.g. ``https://abc123.live.dynatrace.com``;
    ``token``: an API token with the ``metrics.read`` scope; ``queries``: the merged
    dynatrace/sli.yaml; ``transport``: an httpx transport (tests may pass one)."""

    def __init__(self, tenant: str, token: str, queries: SliConfig, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        tenant = tenant.strip().rstrip("/")
        if not tenant.startswith(("https://", "http://")):
            raise ConfigurationError(f"dynatrace tenant: expected an http(s) URL such as https://abc123.live.dynatrace.com, found {tenant!r}")
        if not token.strip():
            raise ConfigurationError("dynatrace API token: empty")
        self.tenant = tenant
        self._token = token.strip()
        self.queries = queries
        self.timeout_s = timeout_s
        self._transport = transport

    def fetch(self, query: SliQuery) -> Sequence[SliValue]:
        """One value per requested indicator, in order (see the module's outcomes)."""
        return fetch_each(query, "Dynatrace", self._session)

    @contextmanager
    def _session(self, window: Window, _names: Sequence[str]) -> Iterator[Callable[[str], SliValue]]:
        """One HTTP client for the request; yields the per-indicator measure."""
        span = {"from": str(int(window.start.timestamp() * 1000)), "to": str(int(window.end.timestamp() * 1000)),
                "resolution": "Inf"}
        with httpx.Client(base_url=self.tenant, timeout=self.timeout_s, transport=self._transport,
                          headers={"Authorization": f"Api-Token {self._token}", "Accept": "application/json"}) as client:
            yield lambda name: SliValue(name, self._measure(client, name, window.placeholders, span))

    def _measure(self, client: httpx.Client, name: str, values: Mapping[str, str], window: Mapping[str, str]) -> float:
        text = self.queries.query(name)
        if text is None:
            known = ", ".join(sorted(self.queries.indicators)) or "none"
            raise Unmeasured(f"no query in dynatrace/sli.yaml (defined: {known})")
        try:
            spec: DynatraceQuery = parse_query(text, f"dynatrace/sli.yaml indicator {name}")
            params = {"metricSelector": render_selector(spec.metric_selector, values)}
            if spec.entity_selector:
                params["entitySelector"] = render_selector(spec.entity_selector, values)
        except ValidationError as err:
            raise Unmeasured(str(err)) from err
        series = self._series(client, {**params, **window})
        measured = [finite for s in series if (finite := _finite(s.get("values")))]
        if not measured:
            raise Unmeasured(f"Dynatrace has no data for {params['metricSelector']} in the test window "
                              f"({len(series)} series, no values)")
        if len(measured) > 1 or len(measured[0]) > 1:
            raise Unmeasured(f"Dynatrace answered {len(measured)} series / {sum(map(len, measured))} values for "
                              f"{params['metricSelector']}; expected one (merge the dimensions, e.g. :merge(\"dt.entity.service\"))")
        return measured[0][0] / spec.divisor

    def _series(self, client: httpx.Client, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every series of every page (``result[*].data[*]``)."""
        series: list[dict[str, Any]] = []
        page: Mapping[str, str] = params
        for _ in range(MAX_PAGES):
            body = self._get(client, page)
            for collection in body.get("result") or []:
                if isinstance(collection, dict):
                    series.extend(s for s in collection.get("data") or [] if isinstance(s, dict))
            key = body.get("nextPageKey")
            if not key:
                return series
            page = {"nextPageKey": str(key)}
        raise Unmeasured(f"Dynatrace kept paging after {MAX_PAGES} pages")

    def _get(self, client: httpx.Client, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            response = client.get("/api/v2/metrics/query", params=params)
        except httpx.TimeoutException as err:
            raise Unmeasured(f"Dynatrace at {self.tenant} did not answer within {self.timeout_s:g} s") from err
        except httpx.HTTPError as err:
            raise Unmeasured(f"Dynatrace at {self.tenant} is unreachable: {type(err).__name__}") from err
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in (401, 403):
            raise Unmeasured(f"Dynatrace refused the API token (HTTP {response.status_code}); it needs the metrics.read scope")
        if response.status_code != 200 or not isinstance(body, dict):
            detail = ""
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                detail = f": {str(body['error'].get('message', ''))[:300]}"
            log.warning("dynatrace: HTTP %s from %s", response.status_code, self.tenant)
            raise Unmeasured(f"Dynatrace answered HTTP {response.status_code}{detail}")
        return body
