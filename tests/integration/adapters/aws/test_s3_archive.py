"""The S3 archive against a local moto server: put/list/get, prefixes, errors mapped."""

from __future__ import annotations

import json

import pytest
from tests.support.motoserver import MotoServer

from sluice.adapters.archive import create_archive
from sluice.adapters.archive.s3 import S3Archive
from sluice.adapters.state.memory import MemoryStore
from sluice.errors import ConfigurationError, NotFoundError, RetryableError
from sluice.services.records import HISTORY_LIMIT, Records

BUCKET = "sluice-archive"


@pytest.fixture
def archive(moto: MotoServer) -> S3Archive:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return S3Archive(BUCKET, prefix="team-a/", client=s3)


def test_put_get_list_round_trip(archive: S3Archive, moto: MotoServer) -> None:
    """Documents put under keys come back by get, and list returns the keys under a prefix, sorted, without the archive prefix."""
    archive.put("evaluations/sockshop/staging/carts/b.json", '{"id": "b"}')
    archive.put("evaluations/sockshop/staging/carts/a.json", '{"id": "a"}')
    archive.put("events/ctx/1.json", "{}")
    assert archive.list("evaluations/sockshop/staging/carts/") == [
        "evaluations/sockshop/staging/carts/a.json", "evaluations/sockshop/staging/carts/b.json"]
    assert json.loads(archive.get("evaluations/sockshop/staging/carts/a.json")) == {"id": "a"}
    stored = moto.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]
    assert sorted(o["Key"] for o in stored)[0] == "team-a/evaluations/sockshop/staging/carts/a.json"


def test_list_pages_through_more_than_1000_keys(archive: S3Archive) -> None:
    """list follows the paginator past S3's 1000-key page."""
    for i in range(1005):
        archive.put(f"events/c/{i:05d}.json", "{}")
    keys = archive.list("events/c/")
    assert len(keys) == 1005 and keys[0] == "events/c/00000.json"


def test_put_is_idempotent(archive: S3Archive) -> None:
    """Putting the same document at the same key twice leaves one document."""
    archive.put("k.json", "{}")
    archive.put("k.json", "{}")
    assert archive.list("") == ["k.json"]


def test_missing_key_is_not_found(archive: S3Archive) -> None:
    """get of a key that was never put raises NotFoundError."""
    with pytest.raises(NotFoundError, match=r"nope\.json"):
        archive.get("nope.json")


def test_missing_bucket_is_a_configuration_error(moto: MotoServer) -> None:
    """A bucket that does not exist is a configuration error naming it, not a retry."""
    archive = S3Archive("no-such-bucket", client=moto.client("s3"))
    with pytest.raises(ConfigurationError, match="NoSuchBucket"):
        archive.put("k.json", "{}")


def test_unreachable_endpoint_is_retryable() -> None:
    """An endpoint nobody listens on raises RetryableError (so nothing is deleted from the store)."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    with pytest.raises(RetryableError, match="unreachable"):
        S3Archive(BUCKET, client=s3).put("k.json", "{}")


def test_registry_builds_s3_and_none_and_rejects_unknown(moto: MotoServer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """create_archive builds 's3' with an endpoint URL and 'none'; an unknown kind names the valid ones."""
    moto.client("s3").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = create_archive("s3", bucket=BUCKET, endpoint_url=moto.url, region_name="us-east-1")
    s3.put("x.json", "{}")
    assert s3.list("") == ["x.json"]
    assert create_archive("none").list("") == []
    with pytest.raises(ConfigurationError, match="none, s3"):
        create_archive("gcs")


def test_evaluations_leaving_the_store_land_in_s3(archive: S3Archive) -> None:
    """With the S3 archive, evaluations past the store's bound are archived and readable from S3."""
    records = Records(MemoryStore(), archive)
    for i in range(HISTORY_LIMIT + 3):
        records.append_evaluation("sockshop", "staging", "carts", {"id": f"e{i:04d}", "time": f"2024-06-09T08:{i // 60:02d}:{i % 60:02d}Z"})
    assert len(records.evaluations("sockshop", "staging", "carts")) == HISTORY_LIMIT
    archived = records.archived_evaluations("sockshop", "staging", "carts")
    assert [e["id"] for e in archived] == ["e0000", "e0001", "e0002"]
