"""CORS for Cognito's user pool API on the moto server, as Cognito answers browsers.

A page signs in with an unsigned ``InitiateAuth`` from its own origin (Amazon Cognito's
``cognito-idp.{region}.amazonaws.com`` accepts those from any origin); moto answers no
preflight, so a browser could not sign in against it. This layer answers the preflight of a
JSON-protocol call to ``/`` (moto refuses it, unsigned, with IAM on) and makes sure the
answers of Cognito's ``AWSCognitoIdentityProviderService.*`` targets carry one
``Access-Control-Allow-Origin``; everything else passes unchanged.
"""

from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
COGNITO_TARGET = "AWSCognitoIdentityProviderService."
ALLOWED_HEADERS = "content-type,x-amz-target,x-amz-user-agent"


def cognito_cors(app: WsgiApp) -> WsgiApp:
    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        requested = str(environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")).lower()
        if (
            environ.get("REQUEST_METHOD") == "OPTIONS"
            and environ.get("PATH_INFO") in ("", "/")
            and environ.get("HTTP_ORIGIN")
            and "x-amz-target" in requested
        ):
            start_response("200 OK", [
                ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Methods", "POST"),
                ("Access-Control-Allow-Headers", ALLOWED_HEADERS),
                ("Access-Control-Max-Age", "86400"),
                ("Content-Length", "0"),
            ])  # fmt: skip
            return [b""]
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(COGNITO_TARGET):
            return app(environ, start_response)

        def with_origin(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            names = {name.lower() for name, _ in headers}
            if "access-control-allow-origin" not in names:  # moto may already have added one
                headers = [*headers, ("Access-Control-Allow-Origin", "*")]
            return start_response(status, headers, *args)

        return app(environ, with_origin)

    return serve
