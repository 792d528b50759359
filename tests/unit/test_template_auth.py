"""The template's AuthMode: the authorizer, the routes that use it, the user pool's policy and
token lifetimes, and the warning when the API is left open."""

from typing import Any

import pytest

from infra.template.evaluation import Evaluator
from infra.template.loading import load_template

PROTECTED = ("POST /uploads", "GET /images/{image_id+}", "POST /process")
JWT = {"AuthMode": "jwt", "JwtIssuer": "https://issuer.example.com", "JwtAudience": "a,b"}


def resources(**parameters: str) -> dict[str, Any]:
    return Evaluator(load_template(), {"OnDemandProcessing": "true", **parameters}).resources()


def routes(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in res.values()
        if r["Type"] == "AWS::ApiGatewayV2::Route"
    }


def test_cognito_is_the_default_with_a_pool_a_client_and_the_admins_group() -> None:
    res = resources()
    authorizer = res["JwtAuthorizer"]["Properties"]
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    assert authorizer["JwtConfiguration"] == {
        "Issuer": "https://cognito-idp.us-east-1.amazonaws.com/<UserPool>",
        "Audience": ["<UserPoolClient>"],
    }
    client = res["UserPoolClient"]["Properties"]
    assert client["GenerateSecret"] is False
    assert set(client["ExplicitAuthFlows"]) == {
        "ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}  # fmt: skip
    assert res["AdminsGroup"]["Properties"]["GroupName"] == "imgpipe-admins"
    assert res["UserPool"]["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"]
    env = res["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert (env["IMGPIPE_AUTH_MODE"], env["IMGPIPE_AUTH_USER_POOL_ID"]) == ("cognito", "<UserPool>")


@pytest.mark.parametrize("parameters", [{}, JWT])
def test_jwt_modes_protect_every_route_but_config(parameters: dict[str, str]) -> None:
    by_key = routes(resources(**parameters))
    for key in PROTECTED:
        assert (by_key[key]["AuthorizationType"], by_key[key]["AuthorizerId"]) == (
            "JWT",
            "<JwtAuthorizer>",
        )
    assert by_key["GET /config"]["AuthorizationType"] == "NONE"
    assert "AuthorizerId" not in by_key["GET /config"]


def test_jwt_brings_its_own_issuer_and_audiences_and_no_pool() -> None:
    res = resources(**JWT)
    assert res["JwtAuthorizer"]["Properties"]["JwtConfiguration"] == {
        "Issuer": "https://issuer.example.com",
        "Audience": ["a", "b"],
    }
    assert not {"UserPool", "UserPoolClient", "AdminsGroup"} & res.keys()
    assert Evaluator(load_template(), JWT).refusals() == []
    refused = Evaluator(load_template(), {"AuthMode": "jwt"}).refusals()
    assert refused == [
        "JwtModeNeedsAnIssuerAndAnAudience: AuthMode jwt needs JwtIssuer.",
        "JwtModeNeedsAnIssuerAndAnAudience: AuthMode jwt needs JwtAudience.",
    ]


def test_iam_uses_aws_iam_on_every_route_but_config() -> None:
    res = resources(AuthMode="iam")
    by_key = routes(res)
    assert {by_key[key]["AuthorizationType"] for key in PROTECTED} == {"AWS_IAM"}
    assert by_key["GET /config"]["AuthorizationType"] == "NONE"
    assert "JwtAuthorizer" not in res and "UserPool" not in res
    cors = res["HttpApi"]["Properties"]["CorsConfiguration"]["AllowHeaders"]
    assert {"authorization", "x-amz-date", "x-amz-security-token"} <= set(cors)


def test_none_must_be_chosen_and_outputs_a_warning() -> None:
    template = load_template()
    assert template["Parameters"]["AuthMode"]["Default"] == "cognito"
    by_key = routes(resources(AuthMode="none"))
    assert {by_key[key]["AuthorizationType"] for key in by_key} == {"NONE"}
    warning = template["Outputs"]["AuthWarning"]
    assert warning["Condition"] == "AuthNone" and "WARNING" in warning["Value"]
    evaluator = Evaluator(template, {"AuthMode": "none"})
    assert evaluator.condition("AuthNone") and not Evaluator(template).condition("AuthNone")


def test_password_policy_and_token_lifetimes_are_parameters_with_sensible_defaults() -> None:
    defaults = resources()
    policy = defaults["UserPool"]["Properties"]["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] == "12"
    assert policy["RequireLowercase"] and policy["RequireUppercase"] and policy["RequireNumbers"]
    assert policy["RequireSymbols"] == "true"
    client = defaults["UserPoolClient"]["Properties"]
    assert client["TokenValidityUnits"] == {
        "IdToken": "minutes", "AccessToken": "minutes", "RefreshToken": "days"}  # fmt: skip
    lifetimes = ("IdTokenValidity", "AccessTokenValidity", "RefreshTokenValidity")
    assert [client[k] for k in lifetimes] == ["60", "60", "30"]
    custom = resources(PasswordMinimumLength="16", PasswordRequireSymbols="false",
                       IdTokenValidityMinutes="15", AccessTokenValidityMinutes="10",
                       RefreshTokenValidityDays="7")  # fmt: skip
    policy = custom["UserPool"]["Properties"]["Policies"]["PasswordPolicy"]
    assert (policy["MinimumLength"], policy["RequireSymbols"]) == ("16", "false")
    assert [custom["UserPoolClient"]["Properties"][k] for k in lifetimes] == ["15", "10", "7"]
