"""botocore errors → Sluice's error tree (shared by the S3 archive, ECR and CloudWatch adapters).

Vendor exceptions never cross a port: every boto3 call of an adapter goes through ``aws_call``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sluice.errors import ConfigurationError, NotFoundError, RetryableError, SluiceError

T = TypeVar("T")

#: Error codes that mean "that thing does not exist".
NOT_FOUND = frozenset({
    "NoSuchKey", "404", "NotFound", "ImageNotFoundException", "RepositoryNotFoundException",
    "ResourceNotFound", "ResourceNotFoundException",
})
#: Error codes that mean "the credentials or permissions are wrong" (retrying will not help).
NOT_ALLOWED = frozenset({
    "AccessDenied", "AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId",
    "SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "ExpiredTokenException",
})
#: Error codes that mean "try again later".
TRANSIENT = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "SlowDown",
    "TooManyRequestsException", "ServiceUnavailable", "InternalError", "InternalFailure",
    "RequestTimeout", "RequestTimeoutException", "LimitExceededException",
})


def map_error(err: Exception, what: str) -> SluiceError:
    """The Sluice error for a botocore/boto3 exception raised while doing ``what``."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{what}: {code or status} {error.get('Message', '')}".rstrip()
        if code == "NoSuchBucket":
            return ConfigurationError(f"{message} (create the bucket, or fix the configured bucket name)")
        if code in NOT_FOUND:
            return NotFoundError(message)
        if code in NOT_ALLOWED or status in (401, 403):
            return ConfigurationError(f"{message} (check the AWS credentials and their permissions)")
        if code in TRANSIENT or status >= 500 or status == 429:
            return RetryableError(message)
        return ConfigurationError(message)
    if isinstance(err, NoCredentialsError | PartialCredentialsError | NoRegionError):
        return ConfigurationError(f"{what}: {err} (set AWS credentials and AWS_DEFAULT_REGION, or an instance role)")
    if isinstance(err, EndpointConnectionError | ConnectionError):
        return RetryableError(f"{what}: AWS endpoint unreachable: {err}")
    if isinstance(err, BotoCoreError):
        return RetryableError(f"{what}: {type(err).__name__}: {err}")
    raise err


def aws_call(what: str, call: Callable[..., T], /, **kwargs: Any) -> T:
    """``call(**kwargs)`` with botocore errors mapped (``raise … from`` the vendor error)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call(**kwargs)
    except (ClientError, BotoCoreError) as err:
        raise map_error(err, what) from err
