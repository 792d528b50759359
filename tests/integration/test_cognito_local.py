"""The template's user pool on moto, its demo users, and the local JWT authorizer fetching
the issuer's keys as API Gateway does (discovery document, then ``jwks_uri``)."""

from collections.abc import Iterator

import boto3
import pytest
import requests
from aws_helpers import embedded_aws
from botocore.exceptions import ClientError

from infra.local.cognito import create_demo_users, pool_and_client, sign_in
from infra.local.jwt_authorizer import IssuerKeys, route_authorizers
from infra.local.moto_server import EmbeddedAws
from infra.local.provision import Stack, provision


@pytest.fixture(scope="module")
def pool() -> Iterator[tuple[EmbeddedAws, Stack]]:
    with embedded_aws() as aws:
        yield aws, provision("auth", parameters={"PasswordMinimumLength": "14"})


def test_the_pool_client_and_group_are_the_templates(pool: tuple[EmbeddedAws, Stack]) -> None:
    _, stack = pool
    ids = pool_and_client(stack.resources)
    assert ids is not None
    pool_id, client_id = ids
    idp = boto3.client("cognito-idp")
    described = idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    policy = described["Policies"]["PasswordPolicy"]
    assert (policy["MinimumLength"], policy["RequireSymbols"]) == (14, True)
    assert described["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    client = idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)
    assert "ALLOW_USER_PASSWORD_AUTH" in client["UserPoolClient"]["ExplicitAuthFlows"]
    assert "ClientSecret" not in client["UserPoolClient"]
    groups = idp.list_groups(UserPoolId=pool_id)["Groups"]
    assert [g["GroupName"] for g in groups] == ["imgpipe-admins"]
    issuer = stack.resources["JwtAuthorizer"]["Properties"]["JwtConfiguration"]["Issuer"]
    assert issuer == f"https://cognito-idp.us-east-1.amazonaws.com/{pool_id}"


def test_demo_users_sign_in_and_their_tokens_pass_the_templates_authorizer(
    pool: tuple[EmbeddedAws, Stack],
) -> None:
    aws, stack = pool
    ids = pool_and_client(stack.resources)
    assert ids is not None
    users = create_demo_users(boto3.client("cognito-idp"), aws.endpoint, aws.region, *ids)
    assert sorted(users) == ["admin", "alice", "bob"]
    assert [name for name, user in users.items() if user.admin] == ["admin"]
    assert len({user.password for user in users.values()}) == 3
    authorize = route_authorizers(stack.resources, origin=aws.endpoint)["POST /uploads"]
    context = authorize({"authorization": f"Bearer {users['admin'].token}"})
    assert context is not None
    claims = context["jwt"]["claims"]
    assert claims["cognito:username"] == "admin" and claims["cognito:groups"] == "[imgpipe-admins]"
    plain = authorize({"authorization": users["alice"].token})
    assert plain is not None and "cognito:groups" not in plain["jwt"]["claims"]
    access = sign_in(aws.endpoint, aws.region, ids[1], "bob", users["bob"].password)["AccessToken"]
    assert authorize({"authorization": access}) is not None  # client_id in the audience
    with pytest.raises(ClientError, match="NotAuthorized"):
        sign_in(aws.endpoint, aws.region, ids[1], "bob", users["alice"].password)


def test_the_keys_come_from_the_issuers_discovery_document(
    pool: tuple[EmbeddedAws, Stack],
) -> None:
    aws, stack = pool
    issuer = stack.resources["JwtAuthorizer"]["Properties"]["JwtConfiguration"]["Issuer"]
    pool_id = issuer.rsplit("/", 1)[1]
    discovery = requests.get(f"{aws.endpoint}/{pool_id}/.well-known/openid-configuration",
                             timeout=10).json()  # fmt: skip
    assert discovery["issuer"] == issuer
    keys = IssuerKeys(issuer, aws.endpoint).key_set()
    assert [key.kid for key in keys.keys] == ["dummy"]  # moto's one signing key
    assert (
        keys.keys[0].as_dict()["n"]
        == requests.get(discovery["jwks_uri"], timeout=10).json()["keys"][0]["n"]
    )
