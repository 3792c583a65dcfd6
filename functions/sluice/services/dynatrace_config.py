"""A project's Dynatrace: the tenant and API token in the secret store, and the provider.

Both live in the secret ``sluice-dynatrace-<project>`` (keys ``tenant`` and ``token``, as Keptn
kept ``DT_TENANT`` and ``DT_API_TOKEN`` in its ``dynatrace`` Secret): on a cluster a Kubernetes
Secret only the sli function may read, locally a 0600 file under the state dir. The queries are
the merged ``dynatrace/sli.yaml`` of the service in the stage (project, stage, service levels).
The token is never logged nor put in a message.
"""

from __future__ import annotations

from sluice.adapters.sli import create_provider
from sluice.core.events import GetSli
from sluice.core.sli_config import SliConfig
from sluice.errors import ConfigurationError, ValidationError
from sluice.ports.secrets import SecretStore
from sluice.ports.sli import SliProvider
from sluice.services.records import Records
from sluice.services.sli_config import sli_config_for

__all__ = ["dynatrace_provider", "secret_name", "store_dynatrace"]


def secret_name(project: str) -> str:
    """The secret holding a project's Dynatrace tenant URL and API token."""
    return f"sluice-dynatrace-{project}"


def store_dynatrace(secrets: SecretStore, project: str, tenant: str, token: str) -> None:
    """Validate (``ConfigurationError``) and store a project's Dynatrace tenant and token."""
    create_provider("dynatrace", tenant=tenant, token=token, queries=SliConfig())  # checks the URL and token
    secrets.put(secret_name(project), {"tenant": tenant.strip().rstrip("/"), "token": token.strip()})


def dynatrace_provider(records: Records, request: GetSli, secrets: SecretStore, timeout_s: float = 30.0) -> SliProvider:
    """The ``dynatrace`` provider for one get-sli request; ``ConfigurationError`` without the
    project's secret or with an invalid dynatrace/sli.yaml."""
    values = secrets.get(secret_name(request.project))
    if not values or not values.get("tenant") or not values.get("token"):
        raise ConfigurationError(
            f"project {request.project} has no Dynatrace tenant and API token (secret {secret_name(request.project)}); "
            f"run 'sluice set dynatrace --project {request.project} --tenant URL --token-file FILE'")
    try:
        queries = sli_config_for(records, request.project, request.stage, request.service, "dynatrace")
    except ValidationError as err:
        raise ConfigurationError(
            f"the dynatrace/sli.yaml of {request.service} in {request.project}/{request.stage} is not valid: {err}") from err
    return create_provider("dynatrace", tenant=values["tenant"], token=values["token"], queries=queries, timeout_s=timeout_s)
