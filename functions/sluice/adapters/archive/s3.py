"""The archive on Amazon S3 (or any S3-compatible store) through boto3.

Keys are ``<prefix>/<key>`` in one bucket; documents are UTF-8 JSON (``application/json``).
botocore errors become ``RetryableError`` (unreachable, throttled, 5xx), ``NotFoundError``
(no such key) or ``ConfigurationError`` (no such bucket, credentials, permissions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sluice.adapters._aws import aws_call, map_error
from sluice.errors import ConfigurationError


class S3Archive:
    """``Archive`` on S3: ``bucket`` and an optional key ``prefix``; ``endpoint_url`` for
    S3-compatible stores and moto; ``client`` (a boto3 S3 client) for tests."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise ConfigurationError("archive 's3': bucket is required (e.g. SLUICE_ARCHIVE_BUCKET=my-sluice-archive)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region_name or None)
        self._s3 = client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, document: str) -> None:
        """Store ``document`` at ``key`` (overwriting the same key with the same document is harmless)."""
        aws_call(f"S3 put s3://{self.bucket}/{self._key(key)}", self._s3.put_object, Bucket=self.bucket,
                 Key=self._key(key), Body=document.encode(), ContentType="application/json")

    def list(self, prefix: str) -> Sequence[str]:
        """Keys under ``prefix`` (without this archive's own prefix), sorted."""
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._key(prefix)
        strip = len(self._key(""))
        what = f"S3 list s3://{self.bucket}/{full}"
        try:  # the pages are fetched while iterating: map errors around the whole loop
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
            keys = [obj["Key"][strip:] for page in pages for obj in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as err:
            raise map_error(err, what) from err
        return sorted(keys)

    def get(self, key: str) -> str:
        """The document at ``key``; ``NotFoundError`` when absent."""
        what = f"S3 get s3://{self.bucket}/{self._key(key)}"
        response = aws_call(what, self._s3.get_object, Bucket=self.bucket, Key=self._key(key))
        body: bytes = aws_call(what, response["Body"].read)
        return body.decode()
