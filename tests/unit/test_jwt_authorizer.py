"""The local JWT authorizer, point by point against API Gateway's documented checks ("Control
access to HTTP APIs with JWT authorizers in API Gateway"), with moto's own Cognito signing
key and key set (documents nobody here wrote) and a second RSA key for forgeries."""

import base64
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from moto.utilities.utils import load_resource

from infra.local.jwt_authorizer import JwtAuthorizer, route_authorizers
from infra.template.evaluation import Evaluator
from infra.template.loading import load_template

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example"
CLIENT = "5fnl3ejdfcb4i2vc4k6ifuqs1a"
SIGNER = RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json"))
PUBLIC = KeySet.import_key_set(load_resource("cognitoidp/resources/jwks-public.json"))
NOW = 1_800_000_000


def authorizer(audiences: tuple[str, ...] = (CLIENT,)) -> JwtAuthorizer:
    return JwtAuthorizer(ISSUER, audiences, lambda: PUBLIC, clock=lambda: NOW)


def id_claims(**changes: Any) -> dict[str, Any]:
    claims = {"iss": ISSUER, "sub": "u-1", "aud": CLIENT, "token_use": "id", "iat": NOW - 10,
              "exp": NOW + 3600, "cognito:groups": ["imgpipe-admins"]}  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def token(claims: dict[str, Any], key: Any = SIGNER, header: dict[str, Any] | None = None) -> str:
    return jwt.encode(header or {"kid": "dummy", "alg": "RS256"}, claims, key)


def verdict(value: str | None, scopes: tuple[str, ...] = (), **kw: Any) -> Any:
    headers = {} if value is None else {"authorization": value}
    return authorizer(**kw).authorize(headers, scopes)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_valid_id_token_passes_its_claims_as_strings() -> None:
    context = verdict(f"Bearer {token(id_claims())}")
    claims = context["jwt"]["claims"]
    assert claims["sub"] == "u-1" and claims["cognito:groups"] == "[imgpipe-admins]"
    assert claims["exp"] == str(NOW + 3600) and context["jwt"]["scopes"] is None
    assert verdict(token(id_claims())) is not None  # the token alone, without "Bearer"


def test_no_token_is_refused() -> None:
    assert verdict(None) is None and verdict("") is None and verdict("Bearer ") is None


def test_a_tampered_signature_is_refused() -> None:
    head, body, signature = token(id_claims()).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[len(raw) // 2] ^= 1
    assert verdict(f"{head}.{body}.{signature}") is not None
    assert verdict(f"{head}.{body}.{b64(bytes(raw))}") is None
    assert verdict(f"{head}.{body}.") is None


def test_a_payload_changed_under_a_valid_signature_is_refused() -> None:
    head, _, signature = token(id_claims()).split(".")
    forged = b64(json.dumps(id_claims(sub="someone-else")).encode())
    assert verdict(f"{head}.{forged}.{signature}") is None


def test_a_token_signed_by_another_key_or_algorithm_is_refused() -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "dummy"})
    assert verdict(token(id_claims(), other)) is None
    hmac = OctKey.import_key(b"k" * 32)
    assert verdict(token(id_claims(), hmac, {"kid": "dummy", "alg": "HS256"})) is None
    none_header = b64(json.dumps({"kid": "dummy", "alg": "none"}).encode())
    assert verdict(f"{none_header}.{b64(json.dumps(id_claims()).encode())}.") is None


def test_a_kid_outside_the_key_set_is_refused() -> None:
    assert verdict(token(id_claims(), header={"kid": "other", "alg": "RS256"})) is None
    assert verdict(token(id_claims(), header={"alg": "RS256"})) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": NOW - 1},  # expired
        {"exp": NOW},  # "must be after the current time"
        {"exp": None},
        {"nbf": NOW + 60},  # not yet valid
        {"iat": NOW + 60},  # issued in the future
        {"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"},
        {"iss": ISSUER + "/"},  # exactly equal, not a prefix
        {"aud": "another-client"},
        {"aud": ["another-client", "third"]},
    ],
)
def test_claims_out_of_bounds_are_refused(changes: dict[str, Any]) -> None:
    assert verdict(token(id_claims(**changes))) is None


def test_access_tokens_are_matched_by_client_id_and_aud_comes_first() -> None:
    access = id_claims(aud=None, client_id=CLIENT, token_use="access", scope="read write")
    assert verdict(token(access)) is not None
    assert verdict(token({**access, "client_id": "other"})) is None
    assert verdict(token({**access, "aud": "other"})) is None  # aud present: client_id unused
    assert verdict(token(id_claims(aud=["x", CLIENT]))) is not None


def test_route_scopes_need_at_least_one_in_the_token() -> None:
    access = token(id_claims(aud=None, client_id=CLIENT, scope="images/read profile"))
    context = verdict(access, ("images/write", "images/read"))
    assert context is not None and context["jwt"]["scopes"] == ["images/read", "profile"]
    assert verdict(access, ("images/write",)) is None
    assert verdict(token(id_claims()), ("images/read",)) is None  # an ID token has no scope


def test_the_templates_routes_get_the_templates_authorizer() -> None:
    on_demand = Evaluator(load_template(), {"OnDemandProcessing": "true"}).resources()
    routes = route_authorizers(on_demand)
    assert sorted(routes) == ["GET /images/{image_id+}", "POST /process", "POST /uploads"]
    assert "GET /config" not in routes  # public: it tells the page how to sign in
    assert route_authorizers(Evaluator(load_template(), {"AuthMode": "none"}).resources()) == {}
    with pytest.raises(NotImplementedError, match="iam"):
        route_authorizers(Evaluator(load_template(), {"AuthMode": "iam"}).resources())


def test_the_clock_is_real_by_default() -> None:
    live = JwtAuthorizer(ISSUER, (CLIENT,), lambda: PUBLIC)
    fresh = token(id_claims(iat=int(time.time()) - 5, exp=int(time.time()) + 60))
    assert live.authorize({"authorization": fresh}) is not None
    assert live.authorize({"authorization": token(id_claims())}) is None  # NOW is in the future
