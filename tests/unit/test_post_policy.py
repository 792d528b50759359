"""The strict S3 form-POST checker: AWS's published SigV4 POST example, forms signed by real
botocore with each mutation S3 refuses, the policy language, and fuzzing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from xml.etree import ElementTree

import boto3
import pytest
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.local.post_policy import (
    MAX_PRE_DATA,
    FormUpload,
    PostPolicyError,
    check_upload,
    error_xml,
    parse_form,
    sign_policy,
)

BOUNDARY = "----imgpipe-test-boundary-7MA4YWxkTrZu0gW"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
AKID = "AKIAIMGPIPETEST00001"
SECRET = "imgpipe/test/secret+key"
TOKEN = "FwoGZXIvYXdzEXAMPLEsessiontoken"
BUCKET = "raw-bucket"
REGION = "eu-central-1"
FAILED = "Invalid according to Policy: Policy Condition failed: "
SIMPLE = "Invalid Policy: Invalid Simple-Condition: "
ONE_PROPERTY = SIMPLE + "Simple-Conditions must have exactly one property specified."

# AWS's worked example, "Example: Browser-Based Upload using HTTP POST (Using AWS Signature
# Version 4)", https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-post-example.html : the
# policy (with CRLF line ends) as the page gives it base64-encoded, the example credentials and
# the signature it publishes. The same vector is in aws-sdk-php's and minio-go's test suites.
DOCS_AKID = "AKIAIOSFODNN7EXAMPLE"
DOCS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOCS_CREDENTIAL = "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request"
DOCS_SIGNATURE = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
DOCS_POLICY = (
    "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAg"
    "ICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAi"
    "dXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25f"
    "cmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxf"
    "dXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQog"
    "ICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRl"
    "LWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAi"
    "Il0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMt"
    "ZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEy"
    "NTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9"
)
DOCS_BEFORE_EXPIRY = datetime(2015, 12, 29, 12, 0, tzinfo=UTC)
# The example form's fields, in the page's order and spelling (it mixes X-Amz-* and x-amz-*).
DOCS_FIELDS = [
    ("key", "user/user1/${filename}"),
    ("acl", "public-read"),
    (
        "success_action_redirect",
        "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html",
    ),
    ("Content-Type", "image/jpeg"),
    ("x-amz-meta-uuid", "14365123651274"),
    ("x-amz-server-side-encryption", "AES256"),
    ("X-Amz-Credential", DOCS_CREDENTIAL),
    ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
    ("X-Amz-Date", "20151229T000000Z"),
    ("x-amz-meta-tag", ""),
    ("Policy", DOCS_POLICY),
    ("X-Amz-Signature", DOCS_SIGNATURE),
]


def multipart(
    fields: Iterable[tuple[str, str]],
    content: bytes = b"\xff\xd8\xff\xe0 jpeg bytes",
    filename: str | None = "MyPhoto.jpg",
    after: Iterable[tuple[str, str]] = (("submit", "Upload to Amazon S3"),),
) -> bytes:
    """A browser-style form body: the fields, the file, then fields S3 must ignore."""

    def part(name: str, data: bytes, extra: str = "") -> bytes:
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n'
        return head.encode() + b"\r\n" + data + b"\r\n"

    body = b"".join(part(name, value.encode()) for name, value in fields)
    file_extra = "" if filename is None else f'; filename="{filename}"'
    body += part("file", content, file_extra + "\r\nContent-Type: image/jpeg")
    body += b"".join(part(name, value.encode()) for name, value in after)
    return body + f"--{BOUNDARY}--\r\n".encode()


def secrets_of(akid: str, token: str | None) -> str | None:
    return {AKID: SECRET, DOCS_AKID: DOCS_SECRET}.get(akid)


def check(body: bytes, bucket: str = BUCKET, **kwargs: Any) -> FormUpload:
    return check_upload(bucket, body, CONTENT_TYPE, secrets_of, **kwargs)


def refused(body: bytes, code: str, **kwargs: Any) -> PostPolicyError:
    with pytest.raises(PostPolicyError) as caught:
        check(body, **kwargs)
    assert caught.value.code == code, caught.value
    return caught.value


@cache
def s3_client(token: str | None) -> Any:
    """Real botocore with fixed dummy credentials; presigning needs no network."""
    return boto3.client(
        "s3",
        region_name=REGION,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
        config=Config(signature_version="s3v4"),
    )


def presigned_post(
    key: str = "uploads/${filename}",
    fields: dict[str, str] | None = None,
    conditions: list[Any] | None = None,
    token: str | None = None,
) -> dict[str, str]:
    """Form fields from botocore's generate_presigned_post."""
    post = s3_client(token).generate_presigned_post(
        BUCKET, key, Fields=fields, Conditions=conditions, ExpiresIn=600
    )
    return dict(post["fields"])


def jpeg_post() -> dict[str, str]:
    return presigned_post(
        fields={"Content-Type": "image/jpeg", "x-amz-meta-source": "browser"},
        conditions=[
            ["content-length-range", 5, 64],
            ["eq", "$Content-Type", "image/jpeg"],
            ["starts-with", "$x-amz-meta-source", ""],
        ],
    )


def signed(
    conditions: list[Any],
    fields: dict[str, str],
    expiration: str = "2099-01-01T00:00:00Z",
    document: Any = None,
) -> list[tuple[str, str]]:
    """A form for an arbitrary policy document, signed as botocore would."""
    date = "20260101T000000Z"
    auth = {
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": f"{AKID}/20260101/{REGION}/s3/aws4_request",
        "x-amz-date": date,
    }
    doc = {"expiration": expiration, "conditions": conditions} if document is None else document
    policy = base64.b64encode(json.dumps(doc).encode()).decode()
    signature = sign_policy(policy, SECRET, date[:8], REGION)
    return [*fields.items(), *auth.items(), ("policy", policy), ("x-amz-signature", signature)]


AUTH_CONDITIONS: list[Any] = [
    {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
    {"x-amz-credential": f"{AKID}/20260101/{REGION}/s3/aws4_request"},
    {"x-amz-date": "20260101T000000Z"},
]


def plain(extra: list[Any], **fields: str) -> list[tuple[str, str]]:
    """A signed form with the bucket, key and auth conditions plus ``extra``."""
    conditions = [{"bucket": BUCKET}, ["starts-with", "$key", "uploads/"], *AUTH_CONDITIONS]
    return signed(conditions + extra, {"key": "uploads/a.jpg", **fields})


# --- AWS's published example -------------------------------------------------------------


def test_docs_vector_signature() -> None:
    assert sign_policy(DOCS_POLICY, DOCS_SECRET, "20151229", "us-east-1") == DOCS_SIGNATURE


def test_docs_example_form_is_accepted() -> None:
    body = multipart(DOCS_FIELDS, filename="C:\\Users\\me\\MyPhoto.jpg")
    upload = check(body, bucket="sigv4examplebucket", now=DOCS_BEFORE_EXPIRY)
    assert upload.key == "user/user1/MyPhoto.jpg"  # ${filename}, after the last backslash
    assert upload.access_key_id == DOCS_AKID and upload.session_token is None
    assert "submit" not in upload.fields  # after the file, so ignored
    assert upload.header_fields() == {
        "Content-Type": "image/jpeg",
        "x-amz-meta-uuid": "14365123651274",
        "x-amz-server-side-encryption": "AES256",
        "x-amz-meta-tag": "",
    }


def test_docs_example_expires_at_noon() -> None:
    noon = datetime(2015, 12, 30, 12, 0, tzinfo=UTC)
    body = multipart(DOCS_FIELDS)
    check(body, bucket="sigv4examplebucket", now=noon)  # "not valid after" noon, valid at it
    error = refused(body, "AccessDenied", bucket="sigv4examplebucket", now=noon + timedelta(0, 1))
    assert (error.status, error.message) == (403, "Invalid according to Policy: Policy expired.")


def test_docs_example_other_content_type() -> None:
    fields = [(n, "text/html" if n == "Content-Type" else v) for n, v in DOCS_FIELDS]
    error = refused(
        multipart(fields), "AccessDenied", bucket="sigv4examplebucket", now=DOCS_BEFORE_EXPIRY
    )
    assert error.message == FAILED + '["starts-with", "$Content-Type", "image/"]'


# --- botocore's presigned POST, and each mutation S3 refuses ------------------------------


def test_botocore_form_is_accepted() -> None:
    fields = jpeg_post()
    upload = check(multipart(fields.items(), content=b"123456", filename="cat.jpg"))
    assert (upload.bucket, upload.key, upload.content) == (BUCKET, "uploads/cat.jpg", b"123456")
    assert upload.header_fields() == {"Content-Type": "image/jpeg", "x-amz-meta-source": "browser"}
    assert upload.fields["policy"] == fields["policy"]


def test_botocore_form_with_session_token() -> None:
    seen: list[tuple[str, str | None]] = []

    def lookup(akid: str, token: str | None) -> str | None:
        seen.append((akid, token))
        return SECRET

    body = multipart(presigned_post(token=TOKEN).items())
    upload = check_upload(BUCKET, body, CONTENT_TYPE, lookup)
    assert seen == [(AKID, TOKEN)] and upload.session_token == TOKEN
    assert "x-amz-security-token" not in upload.header_fields()


def test_botocore_exact_key() -> None:
    body = multipart(presigned_post(key="uploads/fixed.jpg").items())
    assert check(body).key == "uploads/fixed.jpg"
    fields = presigned_post(key="uploads/fixed.jpg") | {"key": "uploads/other.jpg"}
    error = refused(multipart(fields.items()), "AccessDenied")
    assert error.message.endswith('["eq", "$key", "uploads/fixed.jpg"]')


def test_too_large() -> None:
    error = refused(multipart(jpeg_post().items(), content=b"x" * 65), "EntityTooLarge")
    assert (error.status, error.message) == (
        400,
        "Your proposed upload exceeds the maximum allowed size",
    )
    assert error.extra == {"ProposedSize": "65", "MaxSizeAllowed": "64"}
    check(multipart(jpeg_post().items(), content=b"x" * 64))  # the bounds are inclusive


def test_too_small() -> None:
    error = refused(multipart(jpeg_post().items(), content=b"1234"), "EntityTooSmall")
    assert error.message == "Your proposed upload is smaller than the minimum allowed size"
    assert (error.status, error.extra) == (400, {"ProposedSize": "4", "MinSizeAllowed": "5"})
    check(multipart(jpeg_post().items(), content=b"12345"))


def test_other_content_type() -> None:
    fields = jpeg_post() | {"Content-Type": "image/png"}
    error = refused(multipart(fields.items()), "AccessDenied")
    assert error.status == 403
    assert error.message == FAILED + '["eq", "$Content-Type", "image/jpeg"]'


def test_expired() -> None:
    later = datetime.now(UTC) + timedelta(minutes=11)
    error = refused(multipart(jpeg_post().items()), "AccessDenied", now=later)
    assert error.message == "Invalid according to Policy: Policy expired."


def test_tampered_policy() -> None:
    fields = jpeg_post()
    document = bytearray(base64.b64decode(fields["policy"]))
    document[document.index(b"64")] = ord("9")  # content-length-range max 64 -> 94
    fields["policy"] = base64.b64encode(bytes(document)).decode()
    error = refused(multipart(fields.items()), "SignatureDoesNotMatch")
    assert error.status == 403
    assert error.extra["StringToSign"] == fields["policy"]
    assert error.extra["SignatureProvided"] == fields["x-amz-signature"]
    assert error.extra["AWSAccessKeyId"] == AKID
    assert bytes.fromhex(error.extra["StringToSignBytes"]) == fields["policy"].encode()


def test_tampered_signature() -> None:
    fields = jpeg_post()
    flipped = "0" if fields["x-amz-signature"][0] != "0" else "1"
    fields["x-amz-signature"] = flipped + fields["x-amz-signature"][1:]
    refused(multipart(fields.items()), "SignatureDoesNotMatch")


def test_wrong_secret() -> None:
    with pytest.raises(PostPolicyError) as caught:
        check_upload(BUCKET, multipart(jpeg_post().items()), CONTENT_TYPE, lambda a, t: "nope")
    assert caught.value.code == "SignatureDoesNotMatch"


def test_unknown_key() -> None:
    with pytest.raises(PostPolicyError) as caught:
        check_upload(BUCKET, multipart(jpeg_post().items()), CONTENT_TYPE, lambda a, t: None)
    error = caught.value
    assert (error.code, error.status, error.extra) == (
        "InvalidAccessKeyId",
        403,
        {"AWSAccessKeyId": AKID},
    )
    assert error.message == "The AWS Access Key Id you provided does not exist in our records."


def test_extra_field() -> None:
    fields = jpeg_post() | {"x-amz-meta-Extra": "1"}
    error = refused(multipart(fields.items()), "AccessDenied")
    assert error.message == "Invalid according to Policy: Extra input fields: x-amz-meta-Extra"


def test_extra_field_exemptions() -> None:
    fields = jpeg_post() | {"x-ignore-tracker": "1", "X-Ignore-Other": "2"}
    check(multipart(fields.items()))
    fields = jpeg_post() | {"bucket": BUCKET}  # covered by the bucket condition, not exempt
    check(multipart(fields.items()))
    fields = jpeg_post() | {"success_action_status": "201"}
    refused(multipart(fields.items()), "AccessDenied")


@pytest.mark.parametrize(
    ("missing", "name"),
    [
        ("key", "key"),
        ("policy", "Policy"),
        ("x-amz-algorithm", "X-Amz-Algorithm"),
        ("x-amz-credential", "X-Amz-Credential"),
        ("x-amz-date", "X-Amz-Date"),
        ("x-amz-signature", "X-Amz-Signature"),
    ],
)
def test_missing_field(missing: str, name: str) -> None:
    fields = {k: v for k, v in jpeg_post().items() if k != missing}
    error = refused(multipart(fields.items()), "InvalidArgument")
    assert error.message == (
        f"Bucket POST must contain a field named '{name}'.  "
        "If it is specified, please check the order of the fields."
    )
    assert error.extra == {"ArgumentName": name, "ArgumentValue": ""}


def test_field_after_the_file_is_missing() -> None:
    fields = jpeg_post()
    key = fields.pop("key")
    refused(multipart(fields.items(), after=[("key", key)]), "InvalidArgument")


def test_key_outside_prefix() -> None:
    fields = jpeg_post() | {"key": "elsewhere/${filename}"}
    error = refused(multipart(fields.items()), "AccessDenied")
    assert error.message.endswith('["starts-with", "$key", "uploads/"]')


def test_wrong_bucket() -> None:
    error = refused(multipart(jpeg_post().items()), "AccessDenied", bucket="other-bucket")
    assert error.message.endswith('["eq", "$bucket", "raw-bucket"]')
    fields = jpeg_post() | {"bucket": "other-bucket"}  # a bucket field must agree as well
    refused(multipart(fields.items()), "AccessDenied")


def test_region_of_the_bucket() -> None:
    body = multipart(jpeg_post().items())
    check(body, region=REGION)
    error = refused(body, "InvalidArgument", region="us-east-1")
    assert error.message == "the region 'eu-central-1' is wrong; expecting 'us-east-1'"
    assert error.extra["Region"] == "us-east-1"


# --- the form ----------------------------------------------------------------------------


def test_parse_form_order_case_and_duplicates() -> None:
    body = multipart([("Key", "a"), ("x-amz-meta-tag", "Ninja"), ("X-AMZ-META-TAG", "Stallman")])
    fields, content, filename = parse_form(body, CONTENT_TYPE)
    assert fields == {"Key": "a", "x-amz-meta-tag": "Ninja,Stallman"}
    assert (content, filename) == (b"\xff\xd8\xff\xe0 jpeg bytes", "MyPhoto.jpg")
    assert parse_form(multipart([], filename=None), CONTENT_TYPE)[2] == ""


def test_no_file() -> None:
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="key"\r\n\r\nk\r\n--{BOUNDARY}--\r\n'
    )
    with pytest.raises(PostPolicyError) as caught:
        parse_form(body.encode(), CONTENT_TYPE)
    assert caught.value.message == "POST requires exactly one file upload per request."
    assert caught.value.extra == {"ArgumentName": "file", "ArgumentValue": "0"}


@pytest.mark.parametrize(
    ("body", "content_type", "code", "status"),
    [
        (b"key=a", "application/x-www-form-urlencoded", "PreconditionFailed", 412),
        (b"", "multipart/form-data", "MalformedPOSTRequest", 400),
        (b"garbage", CONTENT_TYPE, "MalformedPOSTRequest", 400),
        (
            multipart([], content=b"x" * 99, after=())[:-90],
            CONTENT_TYPE,
            "MalformedPOSTRequest",
            400,
        ),
        (
            multipart([("k", "v")]).replace(b'name="k"', b""),
            CONTENT_TYPE,
            "MalformedPOSTRequest",
            400,
        ),
        (
            multipart([("k", "v")]).replace(b"v\r\n", b"\xff\r\n", 1),
            CONTENT_TYPE,
            "MalformedPOSTRequest",
            400,
        ),
    ],
)
def test_malformed_forms(body: bytes, content_type: str, code: str, status: int) -> None:
    with pytest.raises(PostPolicyError) as caught:
        parse_form(body, content_type)
    assert (caught.value.code, caught.value.status) == (code, status)


def test_fields_before_the_file_are_limited() -> None:
    parse_form(multipart([("x-ignore-pad", "p" * (MAX_PRE_DATA - 400))]), CONTENT_TYPE)
    big = multipart([("x-ignore-pad", "p" * MAX_PRE_DATA)])
    with pytest.raises(PostPolicyError) as caught:
        parse_form(big, CONTENT_TYPE)
    assert caught.value.code == "MaxPostPreDataLengthExceeded"
    assert caught.value.extra == {"MaxPostPreDataLengthBytes": "20480"}
    parse_form(multipart([], content=b"f" * (3 * MAX_PRE_DATA)), CONTENT_TYPE)  # the file is not


# --- the policy language -----------------------------------------------------------------


def test_content_type_list_starts_with() -> None:
    form = plain(
        [["starts-with", "$Content-Type", "image/"]], **{"Content-Type": "image/jpg,image/png"}
    )
    check(multipart(form))
    form = plain(
        [["starts-with", "$Content-Type", "image/"]], **{"Content-Type": "image/jpg,text/plain"}
    )
    refused(multipart(form), "AccessDenied")
    form = plain([["starts-with", "$x-amz-meta-a", "b/"]], **{"x-amz-meta-a": "b/1,c/2"})
    check(multipart(form))  # other fields are plain strings, commas and all


def test_names_case_insensitive_values_not() -> None:
    check(multipart(plain([["StArTs-WiTh", "$X-AMZ-META-A", "v"]], **{"x-amz-meta-a": "v1"})))
    refused(
        multipart(plain([["eq", "$x-amz-meta-a", "V1"]], **{"x-amz-meta-a": "v1"})), "AccessDenied"
    )


def test_condition_on_an_absent_field_fails() -> None:
    error = refused(multipart(plain([["starts-with", "$Content-Type", ""]])), "AccessDenied")
    assert error.message.endswith('["starts-with", "$Content-Type", ""]')


def test_condition_without_dollar_fails() -> None:
    form = plain([["eq", "success_action_status", "201"]], success_action_status="201")
    refused(multipart(form), "AccessDenied")


def test_string_bounds() -> None:
    check(multipart(plain([["content-length-range", "1", "100"]])))
    error = refused(multipart(plain([["content-length-range", "test", "10"]])), "AccessDenied")
    assert error.message.endswith('["content-length-range", "test", "10"]')


def test_key_too_long() -> None:
    form = plain([], key="uploads/" + "k" * 1020)
    assert refused(multipart(form), "KeyTooLongError").extra == {
        "Size": "1028",
        "MaxSizeAllowed": "1024",
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "Invalid Policy: Invalid JSON."),
        ([], "Invalid Policy: Invalid JSON."),
        ({"conditions": []}, "Invalid Policy: Policy missing expiration."),
        ({"expiration": "2099-01-01T00:00:00Z"}, "Invalid Policy: Policy missing conditions."),
        ({"EXPIRATION": "x", "conditions": []}, "Invalid Policy: Unexpected: 'expiration'"),
        ({"expiration": "2099-01-01T00:00:00+02:00", "conditions": []},
         "Invalid Policy: Invalid 'expiration' value: '2099-01-01T00:00:00+02:00'"),
        ({"expiration": "2099-13-01T00:00:00Z", "conditions": []},
         "Invalid Policy: Invalid 'expiration' value: '2099-13-01T00:00:00Z'"),
        ({"expiration": "2099-01-01T00:00:00Z", "conditions": {}},
         "Invalid Policy: Invalid 'conditions' value: must be a List."),
    ],
)  # fmt: skip
def test_malformed_policy_document(document: Any, message: str) -> None:
    error = refused(multipart(signed([], {"key": "k"}, document=document)), "InvalidPolicyDocument")
    assert (error.status, error.message) == (400, message)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"bucket": BUCKET, "key": "k"}, ONE_PROPERTY),
        ({}, ONE_PROPERTY),
        ({"Content-Length": 6199034}, SIMPLE + "value must be a string."),
        ({"success_action_redirect": None}, "Invalid Policy: Invalid JSON."),
        (["content-length-range", 0, 512.0], "Invalid Policy: Invalid JSON."),
        (["content-length-range", 0],
         "Invalid Policy: Invalid content-length-range: wrong number of arguments."),
        ([], "Invalid Policy: Invalid Condition: missing operation identifier."),
        (["in", "$key", "k"], "Invalid Policy: Invalid Condition: unknown operation 'in'."),
        ("key", "Invalid Policy: Invalid condition test: must be a List or Object."),
        (["starts-with", "$success_action_status", ""],
         "Invalid Policy: Invalid starts-with: '$success_action_status' supports exact " +
         "matching only."),
    ],
)  # fmt: skip
def test_malformed_condition(condition: Any, message: str) -> None:
    error = refused(multipart(signed([condition], {"key": "k"})), "InvalidPolicyDocument")
    assert error.message == message


def test_bad_base64_policy_with_a_valid_signature() -> None:
    form = dict(signed([], {"key": "k"}))
    form["policy"] = "not base64!"
    form["x-amz-signature"] = sign_policy(form["policy"], SECRET, "20260101", REGION)
    error = refused(multipart(form.items()), "InvalidPolicyDocument")
    assert error.message == "Invalid Policy: invalid Base64 encoding."


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("x-amz-algorithm", "AWS4-HMAC-SHA1", 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"'),
        ("x-amz-credential", "AKID/20260101/eu-central-1/s3",
         "the Credential is mal-formed; expecting " +
         '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'),
        ("x-amz-credential", "/20260101/eu-central-1/s3/aws4_request",
         "a non-empty Access Key (AKID) must be provided in the credential."),
        ("x-amz-credential", f"{AKID}/2026-01-01/eu-central-1/s3/aws4_request",
         'incorrect date format "2026-01-01". ' +
         'This date in the credential must be in the format "yyyyMMdd".'),
        ("x-amz-credential", f"{AKID}/20260101/eu-central-1/sqs/aws4_request",
         'incorrect service "sqs". This endpoint belongs to "s3".'),
        ("x-amz-credential", f"{AKID}/20260101/eu-central-1/s3/aws4",
         'incorrect terminal "aws4". This endpoint uses "aws4_request".'),
        ("x-amz-credential", f"{AKID}/20260102/eu-central-1/s3/aws4_request",
         'Invalid credential date "20260102". ' +
         'This date is not the same as X-Amz-Date: "20260101".'),
        ("x-amz-date", "2026-01-01T00:00:00Z",
         "X-Amz-Date must be formated via ISO8601 Long format"),
    ],
)  # fmt: skip
def test_malformed_auth_fields(field: str, value: str, message: str) -> None:
    form = dict(plain([])) | {field: value}
    assert refused(multipart(form.items()), "InvalidArgument").message == message


def test_anonymous_and_sigv2_forms() -> None:
    error = refused(multipart([("key", "k")]), "AccessDenied")
    assert error.message == "Access Denied"
    sigv2 = [("key", "k"), ("AWSAccessKeyId", AKID), ("policy", "e30="), ("signature", "x")]
    refused(multipart(sigv2), "InvalidArgument")  # a policy but no SigV4 fields
    error = refused(
        multipart([("key", "k"), ("AWSAccessKeyId", AKID), ("signature", "x")]), "InvalidRequest"
    )
    assert "Please use AWS4-HMAC-SHA256." in error.message


# --- the XML answer ----------------------------------------------------------------------


def test_error_xml() -> None:
    error = PostPolicyError(
        "EntityTooLarge", "a <b> & c", 400, {"ProposedSize": 9, "MaxSizeAllowed": 5}
    )
    root = ElementTree.fromstring(error_xml(error, request_id="REQ1"))
    assert [child.tag for child in root] == [
        "Code", "Message", "ProposedSize", "MaxSizeAllowed", "RequestId", "HostId",
    ]  # fmt: skip
    assert root.findtext("Message") == "a <b> & c" and root.findtext("RequestId") == "REQ1"
    assert root.findtext("ProposedSize") == "9" and root.findtext("HostId")
    odd = PostPolicyError("SignatureDoesNotMatch", "m", 403, {"StringToSign": "\x00\x1b"})
    assert ElementTree.fromstring(error_xml(odd)).findtext("StringToSign") == "\ufffd\ufffd"


# --- fuzzing: nothing but PostPolicyError ever escapes -----------------------------------

NAMES = ["key", "Content-Type", "x-amz-meta-a", "acl", "bucket", "success_action_status"]
scalars = st.none() | st.booleans() | st.integers(-5, 70) | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=10,
)
field_refs = st.sampled_from(NAMES).map(lambda n: "$" + n) | st.text(max_size=6)
operators = st.sampled_from(["eq", "starts-with", "content-length-range", "EQ", "in", ""])
shaped = st.lists(st.one_of(operators, field_refs, scalars), max_size=4)
junk = st.one_of(shaped, st.dictionaries(st.sampled_from(NAMES), scalars, max_size=2), json_values)
values = st.text("abc/$,{}éimage", max_size=10)


@st.composite
def forms(draw: st.DrawFn) -> tuple[list[Any], dict[str, str]]:
    """Mostly-valid policies: a covering condition per field, some wrong, some junk."""
    fields = {"key": "uploads/k"} | draw(st.dictionaries(st.sampled_from(NAMES), values))
    fields |= draw(st.dictionaries(st.sampled_from(["X-Ignore-x", "other"]), values, max_size=1))
    conditions: list[Any] = [{"bucket": BUCKET}, *AUTH_CONDITIONS]
    for name, value in fields.items():
        kind = draw(st.sampled_from(["simple", "eq", "prefix", "any", "none", "other"]))
        prefix = value[: draw(st.integers(0, len(value)))]
        choices: dict[str, list[Any]] = {
            "simple": [{name: value}],
            "eq": [["eq", "$" + name.upper(), value]],
            "prefix": [["starts-with", "$" + name, prefix]],
            "any": [["starts-with", "$" + name, ""]],
            "none": [],
            "other": [["eq", "$" + name, value + "x"]],
        }
        conditions += choices[kind]
    conditions.append(["content-length-range", draw(st.integers(0, 9)), draw(st.integers(0, 90))])
    conditions += draw(st.lists(junk, max_size=2))
    return draw(st.permutations(conditions)), fields


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form=forms(), content=st.binary(max_size=80))
def test_random_policies_only_raise_policy_errors(
    form: tuple[list[Any], dict[str, str]], content: bytes
) -> None:
    conditions, fields = form
    try:
        upload = check(multipart(signed(conditions, fields), content=content))
    except PostPolicyError as error:
        assert error.status in (400, 403) and error.code and error.message
        ElementTree.fromstring(error_xml(error))
    else:
        assert upload.content == content and upload.key == fields["key"]


@cache
def jpeg_body() -> bytes:
    return multipart(jpeg_post().items(), content=b"123456")


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutated_bodies_only_raise_policy_errors(data: st.DataObject) -> None:
    body = bytearray(jpeg_body())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body) - 1))
        action = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        if action == "flip":
            body[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "drop":
            del body[at : at + data.draw(st.integers(1, 40))]
        else:
            body[at:at] = data.draw(st.sampled_from([b"\r\n", b"--", BOUNDARY.encode(), b"\x00"]))
    content_type = data.draw(
        st.sampled_from([CONTENT_TYPE, CONTENT_TYPE.upper(), "text/plain", ""])
    )
    try:
        check_upload(BUCKET, bytes(body), content_type, secrets_of)
    except PostPolicyError as error:
        assert error.status in (400, 403, 412)
