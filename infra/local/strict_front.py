"""What our local layer adds in front of moto so that it is as strict as AWS where moto is not.

- **Form POSTs to guarded buckets** (the raw bucket) go through :mod:`infra.local.post_policy`:
  signature, expiration and every policy condition, with S3's XML errors. A valid upload is
  then stored as a ``PutObject`` signed with the *signer's own* credentials, so moto's IAM
  decides whether that principal may write that key, exactly as S3 does for POST uploads, and
  the bucket notification fires as usual. (moto accepts any form POST without auth, and
  crashes on one with auth.)
- **Presigned URLs** (SigV4 query authentication): moto fails on them with IAM on, so the
  signature and expiry are verified by :mod:`infra.local.presigned`, and the GET or HEAD is
  made as the signer, under the signer's IAM policies.
- **JSON-protocol errors.** moto answers an IAM denial of a JSON-protocol call (DynamoDB,
  SQS) with an XML body that botocore cannot parse, so the caller would see code ``403``
  instead of ``AccessDeniedException``. They are rewritten as the JSON error AWS sends.
- **IAM as AWS evaluates it** (:func:`authorise_like_iam`). moto checks every DynamoDB action
  against ``"*"``, so no table-scoped policy could ever allow anything: it now checks the
  table's ARN. And moto asks for ``sqs:DeleteMessageBatch`` where IAM asks for
  ``sqs:DeleteMessage`` (batch calls need the single action's permission).
"""

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree

import boto3
from botocore.exceptions import ClientError
from moto.dynamodb.responses import DynamoHandler
from moto.iam.access_control import IAMRequest
from moto.sqs.responses import SQSResponse

from core.aws import S3_SIGNING
from infra.local import presigned
from infra.local.post_policy import FormUpload, PostPolicyError, check_upload, error_xml

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
SecretLookup = Callable[[str, str | None], str | None]
Header = tuple[str, str]


@dataclass(frozen=True)
class FormPostGuard:
    """A bucket whose browser uploads are checked, with its CORS rule for POST."""

    bucket: str
    allowed_origins: tuple[str, ...] = ()
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None

    @classmethod
    def from_rule(cls, bucket: str, rule: Mapping[str, Any]) -> "FormPostGuard":
        """From a CloudFormation ``CorsRules`` entry (AllowedOrigins, ExposedHeaders...)."""
        age = rule.get("MaxAge")
        return cls(bucket, tuple(rule.get("AllowedOrigins") or ()),
                   tuple(rule.get("AllowedHeaders") or ()),
                   tuple(rule.get("ExposedHeaders") or ()), None if age is None else int(age))  # fmt: skip

    def _allows(self, origin: str | None) -> bool:
        return bool(origin) and ("*" in self.allowed_origins or origin in self.allowed_origins)

    def cors_headers(self, origin: str | None) -> list[tuple[str, str]]:
        """S3's CORS headers on the answer to an upload from ``origin``."""
        if not self._allows(origin):
            return []
        headers = [("Access-Control-Allow-Origin", str(origin)),
                   ("Access-Control-Allow-Methods", "POST"), ("Vary", "Origin")]  # fmt: skip
        if self.expose_headers:
            headers.append(("Access-Control-Expose-Headers", ", ".join(self.expose_headers)))
        return headers

    def preflight(self, origin: str | None, method: str, requested: str) -> list[tuple[str, str]]:
        """S3's answer headers to a preflight, or [] when the rule does not allow it."""
        names = [n.strip().lower() for n in requested.split(",") if n.strip()]
        allowed = {h.lower() for h in self.allowed_headers}
        if method != "POST" or not ("*" in allowed or set(names) <= allowed):
            return []
        headers = self.cors_headers(origin)
        if headers and names:
            headers.append(("Access-Control-Allow-Headers", ", ".join(names)))
        if headers and self.max_age is not None:
            headers.append(("Access-Control-Max-Age", str(self.max_age)))
        return headers


class StrictFront:
    """WSGI middleware around moto's application."""

    def __init__(self, app: WsgiApp, endpoint: str, region: str, secret_for: SecretLookup) -> None:
        self.app = app
        self.endpoint = endpoint
        self.region = region
        self.secret_for = secret_for
        self.guards: dict[str, FormPostGuard] = {}

    def guard(self, guard: FormPostGuard) -> None:
        self.guards[guard.bucket] = guard

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        guard = self._guarded_form_post(environ)
        if guard is not None:
            return self._form_post(guard, environ, start_response)
        if environ.get("REQUEST_METHOD") == "OPTIONS" and environ.get("HTTP_ORIGIN"):
            return self._preflight(environ, start_response)
        if presigned.is_presigned(str(environ.get("QUERY_STRING", ""))):
            return self._presigned(environ, start_response)
        if environ.get("HTTP_X_AMZ_TARGET"):
            return self._json_protocol(environ, start_response)
        return self.app(environ, start_response)

    def _guarded_form_post(self, environ: Mapping[str, Any]) -> FormPostGuard | None:
        if environ.get("REQUEST_METHOD") != "POST":
            return None
        if not str(environ.get("CONTENT_TYPE", "")).startswith("multipart/form-data"):
            return None
        bucket = str(environ.get("PATH_INFO", "")).strip("/")
        return self.guards.get(bucket)

    def _form_post(
        self, guard: FormPostGuard, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        cors = guard.cors_headers(environ.get("HTTP_ORIGIN"))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            upload = check_upload(guard.bucket, body, str(environ["CONTENT_TYPE"]), self.secret_for)
            status, headers = self._store(upload)
        except PostPolicyError as error:
            return _error_answer(start_response, error, cors)
        start_response(status, [*headers, *cors])
        return [b""]

    def _preflight(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """S3 answers CORS preflights from the bucket's rules, unauthenticated (moto fails on
        them with IAM on). Buckets without a rule here have no CORS configuration."""
        bucket = str(environ.get("PATH_INFO", "")).strip("/").split("/", 1)[0]
        guard = self.guards.get(bucket)
        headers = guard.preflight(
            environ.get("HTTP_ORIGIN"),
            str(environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "")),
            str(environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")),
        ) if guard else []  # fmt: skip
        if headers:
            start_response("200 OK", [*headers, ("Content-Length", "0")])
            return [b""]
        error = PostPolicyError("AccessForbidden", "CORSResponse: This CORS request is not "
                                "allowed. This is usually because the evalution of Origin, "
                                "request method / Access-Control-Request-Method or "
                                "Access-Control-Request-Headers are not whitelisted by the "
                                "resource's CORS spec.", 403)  # fmt: skip
        return _error_answer(start_response, error)

    def _presigned(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = str(environ["REQUEST_METHOD"])
        raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
        headers = {key[5:].replace("_", "-").lower(): str(value)
                   for key, value in environ.items() if key.startswith("HTTP_")}  # fmt: skip
        try:
            if method not in ("GET", "HEAD"):
                raise PostPolicyError("NotImplemented", f"presigned {method} is not emulated "
                                      "locally; only GET and HEAD are", 501)  # fmt: skip
            signer = presigned.verify(method, f"{self.endpoint}{raw}", headers, self.secret_for)
            status, out, body = self._read_as(signer, method, raw.partition("?")[0])
        except PostPolicyError as error:
            answer = _error_answer(start_response, error)
            return [b""] if method == "HEAD" else answer
        start_response(status, out)
        return [b"" if method == "HEAD" else body]

    def _read_as(
        self, signer: presigned.Signer, method: str, path: str
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        bucket, _, key = path.lstrip("/").partition("/")
        s3 = self._client_as(signer.access_key_id, signer.secret_access_key, signer.session_token)
        try:
            if method == "HEAD":
                result, body = s3.head_object(Bucket=bucket, Key=unquote(key)), b""
            else:
                result = s3.get_object(Bucket=bucket, Key=unquote(key))
                body = result["Body"].read()
        except ClientError as exc:
            raise _s3_error(exc) from exc
        headers = [("Content-Type", str(result.get("ContentType", "binary/octet-stream"))),
                   ("ETag", str(result.get("ETag", ""))),
                   ("Cache-Control", str(result.get("CacheControl", ""))),
                   ("Content-Length", str(result.get("ContentLength", len(body))))]  # fmt: skip
        return "200 OK", [h for h in headers if h[1]], body

    def _client_as(self, access_key_id: str, secret: str | None, token: str | None) -> Any:
        return boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret,
            aws_session_token=token,
            region_name=self.region,
        ).client("s3", endpoint_url=self.endpoint, config=S3_SIGNING)

    def _store(self, upload: FormUpload) -> tuple[str, list[tuple[str, str]]]:
        """PutObject as the principal that signed the policy; IAM and notifications apply."""
        secret = self.secret_for(upload.access_key_id, upload.session_token)
        s3 = self._client_as(upload.access_key_id, secret, upload.session_token)
        try:
            result = s3.put_object(
                Bucket=upload.bucket, Key=upload.key, Body=upload.content,
                **_put_arguments(upload.header_fields()),
            )  # fmt: skip
        except ClientError as exc:
            raise _s3_error(exc) from exc
        # Percent-encoded: a key in any script is UTF-8, and headers are Latin-1.
        location = f"{self.endpoint}/{upload.bucket}/{quote(upload.key, safe='/')}"
        headers = [("ETag", str(result.get("ETag", ""))), ("Location", location)]
        wanted = upload.fields.get("success_action_status", "")
        code = int(wanted) if wanted in ("200", "201") else 204
        return _status_line(code), headers

    def _json_protocol(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            captured.update(status=status, headers=headers)
            return lambda _data: None

        chunks = list(self.app(environ, capture))
        status, headers = captured["status"], captured["headers"]
        body = b"".join(chunks)
        if status.startswith("403") and body.lstrip().startswith(b"<"):
            target = str(environ["HTTP_X_AMZ_TARGET"])
            body, headers = json_error(body, target)
        start_response(status, headers)
        return [body]


def _s3_error(exc: ClientError) -> PostPolicyError:
    """moto's answer to the call made as the signer, as S3's error for the client."""
    error = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 403))
    code = str(error.get("Code", "AccessDenied"))
    if code == str(status):  # a HEAD error has no body: S3's code for the status
        code = {403: "AccessDenied", 404: "NoSuchKey"}.get(status, code)
    return PostPolicyError(code, str(error.get("Message", code)), status)


def json_error(xml_body: bytes, target: str) -> tuple[bytes, list[tuple[str, str]]]:
    """moto's XML ``<Error>`` as the JSON error a JSON-protocol service sends."""
    try:
        root = ElementTree.fromstring(xml_body)
    except ElementTree.ParseError:
        root = ElementTree.Element("Error")
    code = root.findtext(".//Code") or "AccessDenied"
    message = root.findtext(".//Message") or "Access Denied"
    if target.startswith("DynamoDB_") and code == "AccessDenied":
        code = "AccessDeniedException"
    body = json.dumps({"__type": code, "message": message}).encode()
    return body, [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", code)]


_PUT_HEADERS = {
    "content-type": "ContentType",
    "cache-control": "CacheControl",
    "content-disposition": "ContentDisposition",
    "content-encoding": "ContentEncoding",
    "expires": "Expires",
}


def _put_arguments(fields: Mapping[str, str]) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    metadata = {}
    for name, value in fields.items():
        lowered = name.lower()
        if lowered in _PUT_HEADERS:
            arguments[_PUT_HEADERS[lowered]] = value
        elif lowered.startswith("x-amz-meta-"):
            metadata[lowered.removeprefix("x-amz-meta-")] = value
    if metadata:
        arguments["Metadata"] = metadata
    return arguments


def _status_line(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def _error_answer(
    start_response: Callable[..., Any], error: PostPolicyError, headers: Iterable[Header] = ()
) -> list[bytes]:
    """S3's XML error for the client, with its status line and any CORS headers."""
    start_response(_status_line(error.status), [("Content-Type", "application/xml"), *headers])
    return [error_xml(error, request_id=uuid.uuid4().hex)]


_TABLE_ARN = "arn:{partition}:dynamodb:{region}:{account}:table/{table}"


# IAM has no batch actions: a batch call needs the permission of the single call.
SQS_BATCH_ACTIONS = {
    "DeleteMessageBatch": "DeleteMessage",
    "SendMessageBatch": "SendMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def authorise_like_iam() -> None:
    """Correct the two places where moto's authorisation differs from IAM's (see above)."""

    class SqsRequest(IAMRequest):
        def __init__(self, **kwargs: Any) -> None:
            action = kwargs.pop("action")
            super().__init__(**kwargs, action=SQS_BATCH_ACTIONS.get(action, action))

    def authorise_sqs(self: Any, resource: str = "*") -> None:  # a method of SQSResponse
        self._authenticate_and_authorize_action(SqsRequest, resource)

    setattr(SQSResponse, "_authenticate_and_authorize_normal_action", authorise_sqs)  # noqa: B010

    def determine_resource(handler: Any) -> str:
        body = handler.body
        tables = list(_tables_in(body if isinstance(body, Mapping) else json.loads(body or "{}")))
        if not tables:
            return "*"
        partition = "aws-cn" if str(handler.region).startswith("cn-") else "aws"
        return _TABLE_ARN.format(
            partition=partition,
            region=handler.region,
            account=handler.current_account,
            table=tables[0],
        )

    setattr(DynamoHandler, "_determine_resource", determine_resource)  # noqa: B010


def _tables_in(body: Mapping[str, Any]) -> Iterator[str]:
    if isinstance(body.get("TableName"), str):
        name = body["TableName"]
        yield name.rsplit("/", 1)[-1] if name.startswith("arn:") else name
    yield from (body.get("RequestItems") or {}).keys()
    for item in body.get("TransactItems") or []:
        for operation in item.values():
            if isinstance(operation, Mapping) and isinstance(operation.get("TableName"), str):
                yield operation["TableName"]
