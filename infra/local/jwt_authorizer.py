"""API Gateway's JWT authorizer for HTTP APIs, reproduced for the local gateway.

It follows the AWS API Gateway Developer Guide, "Control access to HTTP APIs with JWT
authorizers in API Gateway", point by point ([jwt] below):

1. the token comes from the ``identitySource`` (``$request.header.Authorization``), alone or
   after ``Bearer``;
2. it is decoded, and its algorithm and signature are checked against the public key, chosen
   by ``kid``, from the issuer's ``jwks_uri`` (found through the issuer's OpenID discovery
   document; "API Gateway can cache the public keys for two hours"); RS256 only;
3. the claims: ``kid`` names a key of the set; ``iss`` equals the configured issuer;
   ``aud``, or ``client_id`` when there is no ``aud`` (access tokens), is one of the
   configured audiences; ``exp`` is after now, ``nbf`` and ``iat`` before now; and, where
   the route requires scopes, ``scope`` (or ``scp``) holds at least one of them.

Any failure is API Gateway's ``401 {"message":"Unauthorized"}``. The claims reach the
integration as ``requestContext.authorizer.jwt.claims`` with string values (a list as
``"[a b]"``), and the token's scopes as ``...jwt.scopes``. The signature is verified by
joserfc; nothing here is hand-written cryptography.
"""

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ALGORITHMS = ("RS256",)
KEYS_CACHE_S = 2 * 3600  # [jwt]: "API Gateway can cache the public keys for two hours"
FETCH_TIMEOUT_S = 5
AuthorizerContext = dict[str, Any]
RouteAuthorizer = Callable[[Mapping[str, str]], AuthorizerContext | None]


class IssuerKeys:
    """The issuer's JSON Web Key Set, found through ``{issuer}/.well-known/openid-configuration``
    and cached. ``origin`` replaces the issuer's scheme and host for the fetch (the local
    stack's endpoint stands in for ``cognito-idp.{region}.amazonaws.com``, as
    ``AWS_ENDPOINT_URL`` does for the SDK); the issuer itself is compared unchanged."""

    def __init__(self, issuer: str, origin: str | None = None) -> None:
        self.issuer, self.origin = issuer, origin
        self._lock = threading.Lock()
        self._keys: tuple[float, KeySet] | None = None

    def _fetch_json(self, url: str) -> Any:
        if self.origin:
            parts = urlsplit(url)
            url = self.origin.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            return json.load(response)

    def key_set(self) -> KeySet:
        with self._lock:
            if self._keys is None or time.monotonic() - self._keys[0] > KEYS_CACHE_S:
                discovery = self._fetch_json(f"{self.issuer}/.well-known/openid-configuration")
                keys = KeySet.import_key_set(self._fetch_json(str(discovery["jwks_uri"])))
                self._keys = (time.monotonic(), keys)
            return self._keys[1]


@dataclass(frozen=True)
class JwtAuthorizer:
    """One ``AWS::ApiGatewayV2::Authorizer`` of type JWT."""

    issuer: str
    audiences: tuple[str, ...]
    keys: Callable[[], KeySet]
    identity_header: str = "authorization"
    clock: Callable[[], float] = time.time

    def authorize(
        self, headers: Mapping[str, str], scopes: Sequence[str] = ()
    ) -> AuthorizerContext | None:
        """The authorizer context for the integration, or None: answer 401."""
        value = headers.get(self.identity_header, "").strip()
        token = value[len("bearer ") :].strip() if value.lower().startswith("bearer ") else value
        if not token:
            return None
        try:
            claims = self._verified_claims(token)
        except (JoseError, ValueError, KeyError, OSError):
            return None
        if claims is None or not self._claims_valid(claims, scopes):
            return None
        granted = _scopes(claims)
        return {"jwt": {"claims": {k: _claim_text(v) for k, v in claims.items()},
                        "scopes": granted or None}}  # fmt: skip

    def _verified_claims(self, token: str) -> dict[str, Any] | None:
        header = jws.extract_compact(token.encode()).headers()  # not yet trusted
        kid = header.get("kid")
        if header.get("alg") not in ALGORITHMS or not isinstance(kid, str):
            return None
        # [jwt] kid: "must have a header claim that matches the key" (else InvalidKeyIdError)
        key = self.keys().get_by_kid(kid)
        return dict(jwt.decode(token, key, algorithms=list(ALGORITHMS)).claims)

    def _claims_valid(self, claims: Mapping[str, Any], scopes: Sequence[str]) -> bool:
        now = self.clock()
        if claims.get("iss") != self.issuer:
            return False
        audience = claims.get("aud", claims.get("client_id"))  # aud first, if present
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(a, str) and a in self.audiences for a in audiences):
            return False
        if not _number(claims.get("exp")) or not now < claims["exp"]:
            return False
        for name in ("nbf", "iat"):
            if name in claims and (not _number(claims[name]) or claims[name] > now):
                return False
        return not scopes or bool(set(scopes) & set(_scopes(claims)))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    value = claims.get("scope", claims.get("scp", ""))
    return value.split() if isinstance(value, str) else [str(v) for v in value or ()]


def _claim_text(value: Any) -> str:
    """Claims reach the integration as strings; a list as ``[a b]``."""
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    return value if isinstance(value, str) else json.dumps(value)


def route_authorizers(
    resources: Mapping[str, Any], origin: str | None = None, api_logical_id: str = "HttpApi"
) -> dict[str, RouteAuthorizer]:
    """``{route key: authorizer}`` for the API's ``AWS::ApiGatewayV2::Route`` resources with
    ``AuthorizationType: JWT``, each with its ``AuthorizationScopes``. A route with
    ``AWS_IAM`` is refused: SigV4 callers of the API are not reproduced locally."""
    out: dict[str, RouteAuthorizer] = {}
    authorizers: dict[str, JwtAuthorizer] = {}
    for resource in resources.values():
        props = resource.get("Properties") or {}
        if resource.get("Type") != "AWS::ApiGatewayV2::Route":
            continue
        if props.get("ApiId") != f"<{api_logical_id}>":
            continue
        kind = props.get("AuthorizationType", "NONE")
        if kind == "AWS_IAM":
            raise NotImplementedError("AuthMode=iam (AWS_IAM routes) is not reproduced locally")
        if kind != "JWT":
            continue
        logical = str(props["AuthorizerId"]).strip("<>")
        if logical not in authorizers:
            authorizers[logical] = _jwt_authorizer(resources[logical]["Properties"], origin)
        scopes = tuple(props.get("AuthorizationScopes") or ())
        out[props["RouteKey"]] = _bind(authorizers[logical], scopes)
    return out


def _bind(authorizer: JwtAuthorizer, scopes: tuple[str, ...]) -> RouteAuthorizer:
    return lambda headers: authorizer.authorize(headers, scopes)


def _jwt_authorizer(props: Mapping[str, Any], origin: str | None) -> JwtAuthorizer:
    config = props["JwtConfiguration"]
    (source,) = props.get("IdentitySource") or ["$request.header.Authorization"]
    header = str(source).removeprefix("$request.header.").lower()
    issuer = str(config["Issuer"])
    keys = IssuerKeys(issuer, origin)
    return JwtAuthorizer(issuer, tuple(config["Audience"]), keys.key_set, header)
