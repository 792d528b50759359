"""IAM on the embedded stack is the template's, and it is enforced.

Each function's role is created from ``infra/template.yaml``; the tests assume it through STS
and run the very code paths the functions run. Removing any statement from the template makes
its named path fail (a mutation test per statement); the roles cannot do what the template does
not grant; unknown keys and wrong secrets are refused.
"""

import copy
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from aws_helpers import embedded_aws
from botocore.exceptions import ClientError

from core.aws import S3Storage, images_catalog, s3_client
from core.catalog import ImageRecord, Status
from core.errors import Rejected, Transient
from handlers.pending import pending_item
from infra.local.iam import STATIC_CREDENTIALS, create_roles, function_env, write_profiles
from infra.local.moto_server import EmbeddedAws
from infra.local.provision import (
    API_FUNCTION,
    PROCESS_FUNCTION,
    PROCESS_NOW_FUNCTION,
    Stack,
    post_rule,
    provision,
)
from infra.local.strict_front import FormPostGuard
from infra.worker.poller import PollerConfig, collect_batch, delete_succeeded

SOURCE_BUCKET = "legacy-photos"
PARAMETERS = {"OnDemandProcessing": "true", "BackfillSourceBuckets": SOURCE_BUCKET}
MAX_BYTES = 1024


@dataclass
class Env:
    aws: EmbeddedAws
    stack: Stack


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with embedded_aws() as aws:
        stack = provision("iam", parameters=PARAMETERS)
        assert aws.front is not None
        aws.front.guard(FormPostGuard.from_rule(stack.raw_bucket, post_rule(stack.resources)))
        s3 = s3_client()
        s3.create_bucket(Bucket=SOURCE_BUCKET)
        s3.create_bucket(Bucket="ungranted")
        for bucket in (stack.raw_bucket, SOURCE_BUCKET, "ungranted"):
            s3.put_object(Bucket=bucket, Key="uploads/u/cat.jpg", Body=b"raw bytes")
        yield Env(aws, stack)


def assume(role_arn: str) -> boto3.session.Session:
    credentials = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="test")[
        "Credentials"
    ]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name="us-east-1",
    )


# ------------------------------------------------------------- the functions' code paths

Probe = Callable[[boto3.session.Session, Stack], None]


def fetch_raw(session: boto3.session.Session, stack: Stack) -> None:
    """core.pipeline's fetch: S3Storage.get of a raw upload."""
    S3Storage(s3_client(session=session)).get(stack.raw_bucket, "uploads/u/cat.jpg", "", 10**6)


def fetch_backfill_source(session: boto3.session.Session, stack: Stack) -> None:
    """The same fetch, of a key that backfill enqueued from BackfillSourceBuckets."""
    S3Storage(s3_client(session=session)).get(SOURCE_BUCKET, "uploads/u/cat.jpg", "", 10**6)


def store_rendition(session: boto3.session.Session, stack: Stack) -> None:
    """core.pipeline's store: S3Storage.put of a rendition."""
    S3Storage(s3_client(session=session)).put(
        stack.output_bucket, "thumb/uploads/u/cat.jpg.webp", b"webp", "image/webp", {}
    )


def delete_rendition(session: boto3.session.Session, stack: Stack) -> None:
    """core.pipeline's clean-up after a removal or an overwrite: S3Storage.delete."""
    S3Storage(s3_client(session=session)).delete(
        stack.output_bucket, ["thumb/uploads/u/cat.jpg.00000000-00000000.webp"]
    )


def record_item(session: boto3.session.Session, stack: Stack) -> None:
    """core.pipeline's record: the conditional DynamoCatalog.put."""
    catalog = images_catalog(stack.table, session=session)
    catalog.put(ImageRecord(stack.raw_bucket, "x", Status.FAILED, event_order="1"))


def read_item(session: boto3.session.Session, stack: Stack) -> None:
    """GET /images: DynamoCatalog.get."""
    images_catalog(stack.table, session=session).get(f"{stack.raw_bucket}/x")


def head_upload(session: boto3.session.Session, stack: Stack) -> None:
    """GET /images' PENDING check: a HeadObject of a raw upload that has no result yet."""
    found = pending_item(S3Storage(s3_client(session=session)), stack.raw_bucket,
                         f"{stack.raw_bucket}/uploads/u/cat.jpg")  # fmt: skip
    assert found is not None and found["status"] == "PENDING"


def poll_queue(session: boto3.session.Session, stack: Stack) -> None:
    """The event source mapping: collect_batch (ReceiveMessage) and delete_succeeded."""
    sqs = session.client("sqs")
    sqs_admin = boto3.client("sqs")
    sqs_admin.send_message(QueueUrl=stack.queue_url, MessageBody="{}")
    config = PollerConfig(stack.queue_url, stack.queue_arn, stack.region, batch_size=1)
    messages = collect_batch(sqs, config, lambda: False)
    delete_succeeded(sqs, stack.queue_url, messages, set())
    assert messages, "the queue had a message"


def upload_through_presigned_post(session: boto3.session.Session, stack: Stack) -> None:
    """POST /uploads: a presigned POST made with the API role, then the browser's upload."""
    storage = S3Storage(s3_client(session=session))
    post = storage.presigned_post(stack.raw_bucket, "uploads/u/new.jpg", "image/jpeg", 4, 300)
    response = requests.post(
        post["url"], data=post["fields"], files={"file": ("new.jpg", b"jpeg")}, timeout=10
    )
    if response.status_code != 204:
        raise PermissionError(f"{response.status_code}: {response.text}")


# Each statement of every role, and the path that needs it. Statements with no local path
# are listed in NOT_EXERCISED_LOCALLY, with the reason; the test below keeps both complete.
PATHS: dict[tuple[str, str], Probe] = {
    (PROCESS_FUNCTION, "ReadRawObjects"): fetch_raw,
    (PROCESS_FUNCTION, "WriteRenditions"): store_rendition,
    (PROCESS_FUNCTION, "DeleteOldRenditions"): delete_rendition,
    (PROCESS_FUNCTION, "Catalog"): record_item,
    (PROCESS_FUNCTION, "EventSource"): poll_queue,
    (PROCESS_FUNCTION, "ReadBackfillSources"): fetch_backfill_source,
    (API_FUNCTION, "PresignUploads"): upload_through_presigned_post,
    (API_FUNCTION, "ReadCatalog"): read_item,
    (API_FUNCTION, "HeadUploads"): head_upload,
    (PROCESS_NOW_FUNCTION, "OnDemandReadRaw"): fetch_raw,
    (PROCESS_NOW_FUNCTION, "OnDemandWriteRenditions"): store_rendition,
    (PROCESS_NOW_FUNCTION, "OnDemandDeleteOldRenditions"): delete_rendition,
    (PROCESS_NOW_FUNCTION, "OnDemandWriteCatalog"): record_item,
}
NOT_EXERCISED_LOCALLY = {
    "Logs": "the Lambda service writes the functions' logs; nothing local calls CloudWatch Logs",
    "Kms": "there is no KMS key locally (KmsKeyArn is empty)",
    "DecryptBackfillSourcesThroughS3": "there is no KMS key locally",
    "ListRawBucketSoMissingKeysAre404": "moto answers 404 for a missing key whatever the grant",
    "ListBackfillSourcesSoMissingKeysAre404": "moto answers 404 for a missing key likewise",
}


def statements(stack: Stack, function: str) -> list[dict[str, Any]]:
    role = stack.resources[_role_id(stack, function)]["Properties"]
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def _role_id(stack: Stack, function: str) -> str:
    return str(stack.resources[function]["Properties"]["Role"]).strip("<>").split(".")[0]


def without(stack: Stack, function: str, sid: str) -> dict[str, Any]:
    """The resolved template with one statement removed from ``function``'s role."""
    resources = {function: stack.resources[function]}
    role_id = _role_id(stack, function)
    role = copy.deepcopy(stack.resources[role_id])
    for policy in role["Properties"]["Policies"]:
        document = policy["PolicyDocument"]
        document["Statement"] = [s for s in document["Statement"] if s.get("Sid") != sid]
    resources[role_id] = role
    return resources


def test_every_statement_has_a_path_or_a_reason(env: Env) -> None:
    sids = {
        (f, s["Sid"])
        for f in (PROCESS_FUNCTION, API_FUNCTION, PROCESS_NOW_FUNCTION)
        for s in statements(env.stack, f)
    }
    covered = set(PATHS) | {(f, sid) for f, sid in sids if sid in NOT_EXERCISED_LOCALLY}
    assert sids == covered


@pytest.mark.parametrize(
    ("function", "sid"), sorted(PATHS), ids=[f"{f}/{s}" for f, s in sorted(PATHS)]
)
def test_the_template_role_allows_the_path_and_fails_without_the_statement(
    env: Env, function: str, sid: str
) -> None:
    probe = PATHS[(function, sid)]
    probe(assume(env.stack.roles[function]), env.stack)  # the template's own role: allowed
    iam = boto3.client("iam")
    mutated = create_roles(iam, without(env.stack, function, sid), f"no-{sid}")[function]
    with pytest.raises((ClientError, Transient, Rejected, PermissionError)) as denied:
        probe(assume(mutated), env.stack)
    assert re.search(r"AccessDenied|access_denied", repr(denied.value)), denied.value


def test_the_process_role_cannot_write_raw_or_read_an_ungranted_bucket(env: Env) -> None:
    session = assume(env.stack.roles[PROCESS_FUNCTION])
    s3 = s3_client(session=session)
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.put_object(Bucket=env.stack.raw_bucket, Key="uploads/u/loop.jpg", Body=b"x")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.get_object(Bucket="ungranted", Key="uploads/u/cat.jpg")


def test_the_api_role_cannot_read_renditions_or_write_outside_uploads(env: Env) -> None:
    """Not even with OnDemandProcessing: POST /process has a function and a role of its own.
    The API role reads raw objects only under uploads/ (HeadUploads, for PENDING)."""
    session = assume(env.stack.roles[API_FUNCTION])
    s3 = s3_client(session=session)
    store_rendition(boto3.session.Session(), env.stack)  # as the operator
    boto3.client("s3").put_object(Bucket=env.stack.raw_bucket, Key="elsewhere/cat.jpg", Body=b"x")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.get_object(Bucket=env.stack.raw_bucket, Key="elsewhere/cat.jpg")
    with pytest.raises((ClientError, Transient, Rejected), match="AccessDenied|access_denied"):
        store_rendition(session, env.stack)
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.get_object(Bucket=env.stack.output_bucket, Key="thumb/uploads/u/cat.jpg.webp")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.put_object(Bucket=env.stack.raw_bucket, Key="elsewhere/cat.jpg", Body=b"x")
    post = S3Storage(s3).presigned_post(
        env.stack.raw_bucket, "elsewhere/x.jpg", "image/jpeg", 4, 60
    )
    response = requests.post(post["url"], data=post["fields"], files={"file": b"jpeg"}, timeout=10)
    assert response.status_code == 403 and "<Code>AccessDenied</Code>" in response.text


def test_dynamodb_denials_are_the_json_error_aws_sends(env: Env) -> None:
    session = assume(env.stack.roles[PROCESS_FUNCTION])  # GetItem and PutItem only
    with pytest.raises(ClientError) as denied:
        session.client("dynamodb").delete_item(
            TableName=env.stack.table, Key={"image_id": {"S": "x"}}
        )
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


def test_unknown_keys_and_wrong_secrets_are_refused(env: Env) -> None:
    unknown = boto3.session.Session(
        aws_access_key_id="AKIAUNKNOWN00000000", aws_secret_access_key="x"
    )
    with pytest.raises(ClientError, match="InvalidClientTokenId"):
        unknown.client("sqs", region_name="us-east-1").list_queues()
    operator = env.aws.operator
    wrong = boto3.session.Session(
        aws_access_key_id=operator.access_key_id, aws_secret_access_key="not-the-secret"
    )
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        s3_client(session=wrong, region="us-east-1").list_buckets()


def test_a_function_process_runs_with_refreshing_role_credentials(env: Env, tmp_path: Any) -> None:
    """What a worker or API process gets: botocore's assume-role provider (which refreshes
    before expiry) for the function's role, and no static key of the operator's."""
    config = write_profiles(tmp_path / "config", env.aws.operator, env.stack.roles)
    child = {k: v for k, v in os.environ.items() if k not in STATIC_CREDENTIALS}
    child.update(function_env(config, PROCESS_FUNCTION))
    code = (
        "import boto3; c = boto3.Session().get_credentials(); print(c.method);"
        "print(boto3.client('sts').get_caller_identity()['Arn'])"
    )
    result = subprocess.run([sys.executable, "-c", code], env=child, capture_output=True,
                            text=True, timeout=60, check=True)  # fmt: skip
    method, arn = result.stdout.split()
    assert method == "assume-role"
    assert ":assumed-role/iam-ProcessFunctionRole/ProcessFunction" in arn


def test_presigned_gets_are_verified_and_run_under_the_signers_policies(env: Env) -> None:
    """SigV4 query authentication: the signature, the expiry and the signer's IAM all count."""
    storage = S3Storage(s3_client(session=assume(env.stack.roles[PROCESS_FUNCTION])))
    url = storage.presigned_get(env.stack.raw_bucket, "uploads/u/cat.jpg")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Security-Token=" in url
    fetched = requests.get(url, timeout=10)
    assert (fetched.status_code, fetched.content) == (200, b"raw bytes")
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert "<Code>SignatureDoesNotMatch</Code>" in requests.get(tampered, timeout=10).text
    other = storage.presigned_get("ungranted", "uploads/u/cat.jpg")
    denied = requests.get(other, timeout=10)
    assert denied.status_code == 403 and "<Code>AccessDenied</Code>" in denied.text
    expired = storage.presigned_get(env.stack.raw_bucket, "uploads/u/cat.jpg", expires_in=1)
    time.sleep(2)
    assert "Request has expired" in requests.get(expired, timeout=10).text


@pytest.mark.parametrize(
    ("origin", "status"),
    [("http://localhost:8080", 200), ("http://127.0.0.1:8080", 200), ("https://evil.example", 403)],
)
def test_upload_preflights_are_answered_from_the_buckets_cors_rule(
    env: Env, origin: str, status: int
) -> None:
    response = requests.options(
        f"{env.aws.endpoint}/{env.stack.raw_bucket}",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert response.status_code == status
    allowed = response.headers.get("Access-Control-Allow-Origin")
    assert allowed == (origin if status == 200 else None)
