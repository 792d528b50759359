"""The one test that runs moto lenient: it checks the switch that turns enforcement on.

It lives in its own module because moto's enforcement setting is process-wide: no strict stack
of another module may be running beside it.
"""

import boto3
import pytest
from aws_helpers import embedded_aws
from botocore.exceptions import ClientError

from core.aws import s3_client
from infra.local.moto_server import BOOTSTRAP_CREDENTIALS


@pytest.mark.parametrize("strict", [True, False])
def test_strict_decides_whether_an_unknown_key_passes(strict: bool) -> None:
    with embedded_aws(strict=strict) as aws:
        stranger = boto3.session.Session(
            aws_access_key_id=BOOTSTRAP_CREDENTIALS.access_key_id,
            aws_secret_access_key="anything",
            region_name=aws.region,
        )
        if strict:
            with pytest.raises(ClientError, match="InvalidAccessKeyId"):
                s3_client(session=stranger).list_buckets()
        else:
            assert "Buckets" in s3_client(session=stranger).list_buckets()
