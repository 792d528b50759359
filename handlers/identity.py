"""The caller's identity, from the authorizer context API Gateway puts in the event.

API Gateway verified the caller before the function runs: a JWT authorizer passes the token's
claims (``requestContext.authorizer.jwt.claims``, every value a string: a list claim such as
``cognito:groups`` arrives as ``"[a b]"``), the IAM authorizer the caller's ARN
(``requestContext.authorizer.iam.userArn``). With ``AuthMode=none`` there is no caller: every
request is the anonymous admin, as the stack's warning output says.
"""

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler.exceptions import UnauthorizedError

from core.tenancy import ADMIN_GROUP, Identity

ANONYMOUS = Identity("anonymous", admin=True)


def caller(event: Mapping[str, Any], auth_mode: str) -> Identity:
    """The identity of the request's caller; 401 when the authorizer context is missing (a
    route deployed without its authorizer must not become public)."""
    if auth_mode == "none":
        return ANONYMOUS
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    if auth_mode == "iam":
        arn = (authorizer.get("iam") or {}).get("userArn")
        if isinstance(arn, str) and arn:
            return Identity(arn)
    else:
        claims = (authorizer.get("jwt") or {}).get("claims") or {}
        subject = claims.get("sub")
        if isinstance(subject, str) and subject:
            return Identity(subject, admin=ADMIN_GROUP in groups(claims.get("cognito:groups")))
    raise UnauthorizedError("Unauthorized")


def groups(claim: Any) -> list[str]:
    """``cognito:groups`` as API Gateway passes it (``"[a b]"``), or as a JSON list."""
    if isinstance(claim, list):
        return [str(group) for group in claim]
    if isinstance(claim, str):
        return claim.strip().removeprefix("[").removesuffix("]").split()
    return []
