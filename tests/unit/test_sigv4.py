"""Every S3 client signs with SigV4 and addresses regional virtual hosts, presigned POSTs and
GETs included (botocore presigns with SigV2 in some regions unless told otherwise, and buckets
created since 2020 and SSE-KMS refuse SigV2). No network: presigning is local."""

import base64
import json
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from core.aws import S3Storage, s3_client

KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}
REGIONS = ["us-east-1", "eu-west-1", "eu-central-1"]


@pytest.fixture(autouse=True)
def real_aws_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def storage(region: str) -> S3Storage:
    return S3Storage(s3_client(session=boto3.session.Session(**KEYS), region=region))


def assert_credential(credential: str, region: str) -> None:
    today = datetime.now(UTC).strftime("%Y%m%d")
    assert credential == f"AKIDEXAMPLE/{today}/{region}/s3/aws4_request"


@pytest.mark.parametrize("region", REGIONS)
def test_presigned_posts_are_sigv4_on_the_regional_virtual_host(region: str) -> None:
    post = storage(region).presigned_post("imgpipe-raw", "uploads/u/a.jpg", "image/jpeg", 10, 300)
    assert post["url"] == f"https://imgpipe-raw.s3.{region}.amazonaws.com/"
    fields = post["fields"]
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert_credential(fields["x-amz-credential"], region)
    assert re.fullmatch(r"\d{8}T\d{6}Z", fields["x-amz-date"])
    assert re.fullmatch(r"[0-9a-f]{64}", fields["x-amz-signature"])
    assert "AWSAccessKeyId" not in fields and "signature" not in fields  # SigV2's fields
    conditions = json.loads(base64.b64decode(fields["policy"]))["conditions"]
    assert {"x-amz-credential": fields["x-amz-credential"]} in conditions


@pytest.mark.parametrize("region", REGIONS)
def test_presigned_gets_are_sigv4_on_the_regional_virtual_host(region: str) -> None:
    url = storage(region).presigned_get("imgpipe-processed", "thumb/a b+c%#?.jpg.webp")
    parts = urlsplit(url)
    assert parts.netloc == f"imgpipe-processed.s3.{region}.amazonaws.com"
    assert parts.path == "/thumb/a%20b%2Bc%25%23%3F.jpg.webp"
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert_credential(query["X-Amz-Credential"], region)
    assert re.fullmatch(r"\d{8}T\d{6}Z", query["X-Amz-Date"])
    assert re.fullmatch(r"[0-9a-f]{64}", query["X-Amz-Signature"])
    assert "AWSAccessKeyId" not in query
