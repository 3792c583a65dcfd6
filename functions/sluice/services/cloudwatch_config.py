"""The ``cloudwatch`` provider for a get-sli request: the merged ``cloudwatch`` sections of the
service's sli.yaml (project, stage, service levels). AWS credentials, region and endpoint come
from boto3's own chain (``AWS_*`` environment, profile, IRSA / instance role, ``AWS_ENDPOINT_URL``);
the section's ``region`` wins over the default region."""

from __future__ import annotations

from sluice.adapters.sli import create_provider
from sluice.core.cloudwatch_sli import CloudWatchConfig, merge_sections
from sluice.core.events import GetSli
from sluice.errors import ConfigurationError, ValidationError
from sluice.ports.sli import SliProvider
from sluice.services.records import Records
from sluice.services.sli_config import level_documents

__all__ = ["cloudwatch_config_for", "cloudwatch_provider"]


def cloudwatch_config_for(records: Records, project: str, stage: str, service: str) -> CloudWatchConfig:
    """The merged ``cloudwatch`` section of a service in a stage (empty when there is none)."""
    return merge_sections(*level_documents(records, project, stage, service))


def cloudwatch_provider(records: Records, request: GetSli, endpoint_url: str | None = None) -> SliProvider:
    """The ``cloudwatch`` provider for one get-sli request; ``ConfigurationError`` when the
    sli.yaml is not valid."""
    try:
        config = cloudwatch_config_for(records, request.project, request.stage, request.service)
    except ValidationError as err:
        raise ConfigurationError(
            f"the cloudwatch section of the sli.yaml of {request.service} in {request.project}/{request.stage} "
            f"is not valid: {err}") from err
    return create_provider("cloudwatch", config=config, endpoint_url=endpoint_url)
