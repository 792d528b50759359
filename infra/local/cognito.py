"""The template's Cognito user pool on moto, and the local stack's demo users.

The pool, its app client and the admins group are made from the template's resources
(password policy, auth flows and token lifetimes included). Demo users get generated passwords
and sign in as the upload page does: an unsigned ``InitiateAuth`` with USER_PASSWORD_AUTH.

moto signs every token with one RSA key of its own (``kid`` "dummy", RS256), sets ``iss`` to
``https://cognito-idp.{region}.amazonaws.com/{pool id}`` as Cognito does, and serves the
discovery document and the key set at ``{endpoint}/{pool id}/.well-known/...``; the local
JWT authorizer fetches them from there. moto does not apply the client's token lifetimes
(its tokens live one hour).
"""

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from core.tenancy import ADMIN_GROUP

DEMO_USERS = (("alice", False), ("bob", False), ("admin", True))
_CLIENT_FIELDS = ("ClientName", "GenerateSecret", "ExplicitAuthFlows", "PreventUserExistenceErrors",
                  "EnableTokenRevocation", "TokenValidityUnits", "IdTokenValidity",
                  "AccessTokenValidity", "RefreshTokenValidity")  # fmt: skip


@dataclass(frozen=True)
class DemoUser:
    password: str
    admin: bool
    token: str  # a current ID token

    def as_json(self) -> dict[str, Any]:
        return {"password": self.password, "token": self.token, "admin": self.admin}


def create_user_pool(idp: Any, resources: Mapping[str, Any]) -> dict[str, str]:
    """Create the template's ``UserPool``, ``UserPoolClient`` and ``AdminsGroup``; what
    ``Ref``/``GetAtt`` give for them (nothing when the template has no pool)."""
    if "UserPool" not in resources:
        return {}
    pool_props = resources["UserPool"]["Properties"]
    policy = dict(pool_props["Policies"]["PasswordPolicy"])
    policy = {k: _typed(v) for k, v in policy.items()}
    pool = idp.create_user_pool(
        PoolName=pool_props["UserPoolName"],
        Policies={"PasswordPolicy": policy},
        AdminCreateUserConfig=pool_props["AdminCreateUserConfig"],
        UsernameConfiguration=pool_props["UsernameConfiguration"],
    )["UserPool"]
    client_props = resources["UserPoolClient"]["Properties"]
    client = idp.create_user_pool_client(
        UserPoolId=pool["Id"],
        **{k: _typed(client_props[k]) for k in _CLIENT_FIELDS if k in client_props},
    )["UserPoolClient"]
    group = resources["AdminsGroup"]["Properties"]
    idp.create_group(
        UserPoolId=pool["Id"], GroupName=group["GroupName"], Description=group["Description"]
    )
    return {"UserPool": pool["Id"], "UserPool.Arn": pool["Arn"],
            "UserPoolClient": client["ClientId"]}  # fmt: skip


def _typed(value: Any) -> Any:
    """Template parameters are strings; the API wants numbers and booleans."""
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    return int(value) if isinstance(value, str) and value.isdigit() else value


def create_demo_users(
    idp: Any, endpoint: str, region: str, pool_id: str, client_id: str
) -> dict[str, DemoUser]:
    """The demo users (two plain, one admin), each with a generated password and an ID token."""
    users = {}
    for name, admin in DEMO_USERS:
        password = generated_password()
        idp.admin_create_user(UserPoolId=pool_id, Username=name, MessageAction="SUPPRESS")
        idp.admin_set_user_password(
            UserPoolId=pool_id, Username=name, Password=password, Permanent=True
        )
        if admin:
            idp.admin_add_user_to_group(UserPoolId=pool_id, Username=name, GroupName=ADMIN_GROUP)
        token = sign_in(endpoint, region, client_id, name, password)["IdToken"]
        users[name] = DemoUser(password, admin, token)
    return users


def generated_password() -> str:
    """Random, and within any policy the template allows (upper, lower, digit, symbol)."""
    return f"{secrets.token_urlsafe(15)}Aa7!"


def sign_in(endpoint: str, region: str, client_id: str, name: str, password: str) -> Any:
    """The tokens of a USER_PASSWORD_AUTH sign-in: an unsigned call, as a browser makes it."""
    public = boto3.client("cognito-idp", endpoint_url=endpoint, region_name=region,
                          config=Config(signature_version=UNSIGNED))  # fmt: skip
    answer = public.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": name, "PASSWORD": password},
    )
    return answer["AuthenticationResult"]


def pool_and_client(resources: Mapping[str, Any]) -> tuple[str, str] | None:
    """The user pool and app client ids the API function tells the page, None without a pool."""
    if "UserPool" not in resources:
        return None
    variables = resources["ApiFunction"]["Properties"]["Environment"]["Variables"]
    return str(variables["IMGPIPE_AUTH_USER_POOL_ID"]), str(variables["IMGPIPE_AUTH_CLIENT_ID"])
