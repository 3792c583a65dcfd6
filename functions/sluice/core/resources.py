"""The resource URIs Sluice reads, and the check ``add-resource`` makes (pure).

Keptn 0.6 kept a service's files in its configuration service under URIs such as
``slo.yaml``, ``prometheus/sli.yaml``, ``dynatrace/sli.yaml`` or ``jmeter/load.jmx``. Sluice stores resources by the
same URIs at the project, stage and service level, and reads exactly the ones listed in
:data:`READ_URIS`. A URI no part of Sluice reads is refused when it is added (naming the ones
that are read), so nothing is stored and then silently ignored.

Precedence (as Keptn's SLI services merged them): per indicator the most specific level wins
(service over stage over project); within one level the prometheus provider's own file
(``prometheus/sli.yaml``) wins over the shared ``sli.yaml``, whose ``indicators`` are PromQL.
The dynatrace provider reads only ``dynatrace/sli.yaml`` (its queries are metric selectors).
"""

from __future__ import annotations

from sluice.core.testspec import JMX_URI
from sluice.errors import ValidationError

__all__ = ["PROVIDER_SLI_URIS", "READ_URIS", "check_resource_uri", "sli_uris"]

#: Provider name → the provider's own SLI file (Keptn's layout).
PROVIDER_SLI_URIS: dict[str, str] = {
    "prometheus": "prometheus/sli.yaml",
    "dynatrace": "dynatrace/sli.yaml",
}

#: Every URI Sluice reads → who reads it.
READ_URIS: dict[str, str] = {
    "slo.yaml": "the evaluation's objectives",
    "sli.yaml": "SLI queries shared by the providers (prometheus indicators, the cloudwatch section)",
    "prometheus/sli.yaml": "the prometheus provider's queries (over sli.yaml at the same level)",
    "dynatrace/sli.yaml": "the dynatrace provider's queries (over sli.yaml at the same level)",
    "tests.yaml": "the stage's tests (health, functional, performance)",
    "jmeter/<name>.jmx": "JMeter plans, run when tests.yaml's jmeter section names them (Keptn's layout)",
}


#: Provider → the SLI files it reads at each level, weakest first.
_SLI_FILES: dict[str, tuple[str, ...]] = {
    "prometheus": ("sli.yaml", "prometheus/sli.yaml"),
    "dynatrace": ("dynatrace/sli.yaml",),
}


def sli_uris(provider: str) -> tuple[str, ...]:
    """The SLI files a provider reads at each level, weakest first (``sli.yaml`` by default)."""
    return _SLI_FILES.get(provider, ("sli.yaml",))


def check_resource_uri(uri: str) -> str:
    """``uri`` normalised (no leading '/'), or ``ValidationError`` listing the URIs that are read."""
    normal = uri.strip().lstrip("/")
    if (normal in READ_URIS and "<" not in normal) or JMX_URI.fullmatch(normal):
        return normal
    listed = "; ".join(f"{u} ({what})" for u, what in READ_URIS.items())
    raise ValidationError("resourceUri", [f"{uri!r} is not read by any part of Sluice, so it is not stored; "
                                          f"the resources read are: {listed}"])
