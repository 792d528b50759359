"""Verify a SigV4 presigned S3 URL (query-string authentication) as S3 does.

moto cannot check these with IAM on: it looks for an ``Authorization`` header and fails with a
500. The front verifies the signature, the expiry and the key here, then performs the request
as the signer, so IAM decides what the signer may read.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra.local.post_policy import PostPolicyError

MAX_EXPIRES_S = 7 * 24 * 3600  # SigV4 presigned URLs are valid for 7 days at most


@dataclass(frozen=True)
class Signer:
    access_key_id: str
    secret_access_key: str
    session_token: str | None


def is_presigned(query: str) -> bool:
    return "X-Amz-Signature=" in query and "X-Amz-Credential=" in query


def verify(
    method: str,
    url: str,
    headers: Mapping[str, str],
    secret_for: Callable[[str, str | None], str | None],
    now: datetime | None = None,
) -> Signer:
    """The signer of a valid presigned request; raises PostPolicyError with S3's error."""
    path, _, query = url.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    credential = params.get("X-Amz-Credential", "").split("/")
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or len(credential) != 5:
        raise PostPolicyError("AuthorizationQueryParametersError",
                              "X-Amz-Algorithm or X-Amz-Credential is malformed", 400)  # fmt: skip
    access_key_id, _, region, service, _ = credential
    token = params.get("X-Amz-Security-Token")
    secret = secret_for(access_key_id, token)
    if secret is None:
        raise PostPolicyError("InvalidAccessKeyId",
                              "The AWS Access Key Id you provided does not exist in our records.",
                              403)  # fmt: skip
    _check_expiry(params, now or datetime.now(UTC))
    unsigned = "&".join(p for p in query.split("&") if not p.startswith("X-Amz-Signature="))
    request = AWSRequest(method=method, url=f"{path}?{unsigned}", headers=_signed_headers(
        params.get("X-Amz-SignedHeaders", "host"), headers))  # fmt: skip
    request.context["timestamp"] = params["X-Amz-Date"]
    auth = S3SigV4QueryAuth(Credentials(access_key_id, secret, token), service, region)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)),
                              request)  # fmt: skip
    if expected != params.get("X-Amz-Signature"):
        raise PostPolicyError("SignatureDoesNotMatch", "The request signature we calculated "
                              "does not match the signature you provided. Check your key and "
                              "signing method.", 403)  # fmt: skip
    return Signer(access_key_id, secret, token)


def _check_expiry(params: Mapping[str, str], now: datetime) -> None:
    try:
        signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expires = int(params["X-Amz-Expires"])
    except (KeyError, ValueError):
        raise PostPolicyError("AuthorizationQueryParametersError",
                              "X-Amz-Date or X-Amz-Expires is missing or malformed", 400) from None  # fmt: skip
    if not 0 < expires <= MAX_EXPIRES_S:
        raise PostPolicyError("AuthorizationQueryParametersError",
                              "X-Amz-Expires must be between 1 and 604800 seconds", 400)  # fmt: skip
    if now > signed_at + timedelta(seconds=expires):
        raise PostPolicyError("AccessDenied", "Request has expired", 403)


def _signed_headers(names: str, headers: Mapping[str, str]) -> dict[str, str]:
    lowered = {name.lower(): value for name, value in headers.items()}
    return {name: lowered.get(name, "") for name in names.split(";") if name}
