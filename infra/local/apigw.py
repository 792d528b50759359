"""A local API Gateway HTTP API (payload format 2.0): routes, CORS and the Lambda event.

Rules cite the AWS API Gateway Developer Guide: [routes] "Create routes for HTTP APIs in API
Gateway" (was "Working with routes for HTTP APIs"), [lambda] "Create AWS Lambda proxy
integrations for HTTP APIs in API Gateway" (was "Working with AWS Lambda proxy integrations
for HTTP APIs"), [cors] "Configure CORS for HTTP APIs in API Gateway" (was "Configuring CORS
for an HTTP API"), [quotas] "Quotas for configuring and running an HTTP API in API Gateway",
[errors] "Troubleshooting issues with HTTP API Lambda integrations"; and the AWS SAM guide,
[sam] "HttpApi" (event source). Where the docs are silent: [capture] live HTTP API v2 events in
github.com/hotsock/voker (vokerhttp/testdata), [binary] the body encoding measured on AWS in
github.com/ministackorg/ministack pull 766.
"""

import base64
import contextlib
import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

DEFAULT_ROUTE = "$default"
_IMPLICIT_REF = "<ServerlessHttpApi>"  # [sam]: the API of HttpApi events that name no ApiId
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript")
_VARIABLE = re.compile(r"\{([^{}+]+)(\+?)\}")
_LITERAL, _PARAM, _GREEDY = 0, 1, 2

HeaderPairs = list[tuple[str, str]]
Invoke = Callable[[dict[str, Any]], Any]
Authorize = Callable[[Mapping[str, str]], dict[str, Any] | None]  # headers -> context or refusal
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """One route: a method (or ``ANY``) and a path with ``{name}``/``{name+}`` variables."""

    method: str  # "GET", "POST", ..., "ANY"; "" for the $default route
    path: str  # "/images/{image_id+}", or "$default"

    def __post_init__(self) -> None:
        """[routes]: "The greedy path variable must be at the end of the resource path"."""
        if self.path == DEFAULT_ROUTE:
            return
        kinds = _parse(self.path)[2]
        if not self.path.startswith("/") or _GREEDY in kinds[:-1] or not self.method:
            raise ValueError(f"invalid HTTP API route {self.method!r} {self.path!r}")

    @classmethod
    def from_key(cls, key: str) -> "Route":
        """The route of a route key: ``"POST /process"`` or ``"$default"``."""
        method, _, path = key.partition(" ")
        return cls("", DEFAULT_ROUTE) if key == DEFAULT_ROUTE else cls(method.upper(), path)

    @property
    def key(self) -> str:
        """The route key API Gateway puts in the event: ``"GET /pets/{id}"`` or ``$default``."""
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"

    def rank(self) -> tuple[bool, tuple[int, ...], bool]:
        """Sort key, most specific first. [routes]: "API Gateway selects the route with the
        most-specific match": full matches before greedy ones; then, segment by segment,
        literal before ``{name}`` before ``{name+}``; then a method before ``ANY``, which
        "matches all methods that you haven't defined for a route"."""
        kinds = _parse(self.path)[2]
        return _GREEDY in kinds, kinds, self.method == "ANY"

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters if ``path`` (already percent-decoded) matches, else None."""
        if self.path == DEFAULT_ROUTE:
            return {}
        pattern, names, _ = _parse(self.path)
        found = pattern.fullmatch(path)
        return dict(zip(names, found.groups(), strict=True)) if found else None


@functools.cache
def _parse(path: str) -> tuple[re.Pattern[str], tuple[str, ...], tuple[int, ...]]:
    """A route path's regex, variable names and segment kinds. ``{name}`` takes one non-empty
    segment; ``{name+}`` "catches all child resources" [routes]: the rest, slashes included."""
    parts, names, kinds = [], [], []
    for segment in path.split("/"):
        variable = _VARIABLE.fullmatch(segment)
        kind = _LITERAL if not variable else _GREEDY if variable[2] else _PARAM
        names += [variable[1]] if variable else []
        parts.append((re.escape(segment), "([^/]+)", "(.+)")[kind])
        kinds.append(kind)
    return re.compile("/".join(parts)), tuple(names), tuple(kinds)


@dataclass(frozen=True)
class Cors:
    """An HTTP API CORS configuration; each field maps to one header [cors]."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    def allowed_origin(self, origin: str) -> str | None:
        """Access-Control-Allow-Origin for ``origin`` (exact, or ``*``: answered ``*``, or the
        origin with credentials, which browsers refuse with ``*``); None if not allowed."""
        if origin and origin in self.allow_origins:
            return origin
        if origin and "*" in self.allow_origins:
            return origin if self.allow_credentials else "*"
        return None

    def preflight_headers(self, headers: Mapping[str, str]) -> HeaderPairs:
        """Headers of the gateway's own answer to a preflight with these (joined) headers;
        none unless the origin, the method and every requested header are allowed."""
        allow_origin = self.allowed_origin(headers.get("origin", ""))
        method = headers.get("access-control-request-method", "").upper()
        requested = headers.get("access-control-request-headers", "").split(",")
        methods = {m.upper() for m in self.allow_methods}
        allowed = {h.lower() for h in self.allow_headers}
        names = {h.strip().lower() for h in requested if h.strip()}
        if (
            allow_origin is None
            or not (method in methods or "*" in methods)
            or not (names <= allowed or "*" in allowed)
        ):
            return []
        out = [("Access-Control-Allow-Origin", allow_origin)]
        out += [("Access-Control-Allow-Methods", ",".join(self.allow_methods))]
        if self.allow_headers:
            out.append(("Access-Control-Allow-Headers", ",".join(self.allow_headers)))
        if self.max_age is not None:
            out.append(("Access-Control-Max-Age", str(self.max_age)))
        return out + self._credentials()

    def response_headers(self, origin: str) -> HeaderPairs:
        """Headers the gateway adds to an integration's response for this origin [cors]."""
        allow_origin = self.allowed_origin(origin)
        if allow_origin is None:
            return []
        out = [("Access-Control-Allow-Origin", allow_origin)]
        if self.expose_headers:
            out.append(("Access-Control-Expose-Headers", ",".join(self.expose_headers)))
        return out + self._credentials()

    def _credentials(self) -> HeaderPairs:
        return [("Access-Control-Allow-Credentials", "true")] if self.allow_credentials else []


@dataclass(frozen=True)
class HttpRequest:
    """A request as the client sent it."""

    method: str
    raw_path: str  # as received, still percent-encoded
    raw_query: str
    headers: HeaderPairs  # as received, repeated names allowed
    body: bytes
    source_ip: str = "127.0.0.1"


@dataclass(frozen=True)
class HttpResponse:
    """A response for the client."""

    status: int
    headers: HeaderPairs
    body: bytes


def routes_from_template(
    resources: Mapping[str, Any], api_logical_id: str = "HttpApi"
) -> list[Route]:
    """The routes of one HTTP API in resolved template resources (see :func:`template_routes`)."""
    return [Route.from_key(key) for key in template_routes(resources, api_logical_id)]


def template_routes(
    resources: Mapping[str, Any], api_logical_id: str = "HttpApi"
) -> dict[str, str]:
    """``{route key: logical id of the function it integrates}`` for one HTTP API.

    SAM ``HttpApi`` events whose ``ApiId`` refers to the API (an event without ``ApiId``
    belongs to ``ServerlessHttpApi``; one without Path and Method is the $default route
    [sam]) integrate their own function. An ``AWS::ApiGatewayV2::Route`` with that ``ApiId``
    integrates what its ``Target`` (``integrations/{IntegrationId}``) names: the
    integration's ``IntegrationUri``, a function's ARN.
    """
    api_ref, routes = f"<{api_logical_id}>", {}
    for name, resource in resources.items():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::ApiGatewayV2::Route" and props.get("ApiId") == api_ref:
            routes[props["RouteKey"]] = _target_function(resources, str(props.get("Target", "")))
        for event in (props.get("Events") or {}).values():
            spec = event.get("Properties") or {}
            if event.get("Type") == "HttpApi" and spec.get("ApiId", _IMPLICIT_REF) == api_ref:
                has_route = spec.get("Path") or spec.get("Method")
                routes[f"{spec['Method']} {spec['Path']}" if has_route else DEFAULT_ROUTE] = name
    return routes


def _target_function(resources: Mapping[str, Any], target: str) -> str:
    """The function behind a route's ``Target``; ValueError when it names none."""
    integration = target.removeprefix("integrations/").strip("<>")
    props = (resources.get(integration) or {}).get("Properties") or {}
    function = str(props.get("IntegrationUri", "")).strip("<>").split(".", 1)[0]
    if not target.startswith("integrations/") or function not in resources:
        raise ValueError(f"route target {target!r} names no function of the template")
    return function


def cors_from_template(
    resources: Mapping[str, Any], api_logical_id: str = "HttpApi"
) -> Cors | None:
    """The API's ``CorsConfiguration`` (SAM HttpApi or ApiGatewayV2 Api), None when absent."""
    props = (resources.get(api_logical_id) or {}).get("Properties") or {}
    config = props.get("CorsConfiguration")
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise TypeError(f"unsupported CorsConfiguration {config!r}: use the object form")
    return Cors(
        allow_origins=tuple(config.get("AllowOrigins") or ()),
        allow_methods=tuple(config.get("AllowMethods") or ()),
        allow_headers=tuple(config.get("AllowHeaders") or ()),
        expose_headers=tuple(config.get("ExposeHeaders") or ()),
        max_age=None if config.get("MaxAge") is None else int(config["MaxAge"]),
        allow_credentials=bool(config.get("AllowCredentials", False)),
    )


class HttpApiGateway:
    """Route a request, call the integration with a v2 event, apply CORS to the answer.

    ``invoke`` is one integration for every route, or ``{route key: integration}`` (each
    route to the function its template integration names). ``authorizers`` gives, for each
    route that has one, the authorizer context of a request's headers, None to refuse it
    (``infra.local.jwt_authorizer``)."""

    def __init__(
        self,
        routes: Sequence[Route],
        cors: Cors | None,
        invoke: Invoke | Mapping[str, Invoke],
        max_body_bytes: int = 10 * 1024 * 1024,
        authorizers: Mapping[str, Authorize] | None = None,
    ) -> None:
        self.authorizers = dict(authorizers or {})
        self.routes = sorted((r for r in routes if r.path != DEFAULT_ROUTE), key=Route.rank)
        self.default = next((r for r in routes if r.path == DEFAULT_ROUTE), None)
        self.cors = cors
        keys = [route.key for route in routes]
        self.integrations = (
            dict(invoke) if isinstance(invoke, Mapping) else dict.fromkeys(keys, invoke)
        )
        missing = set(keys) - self.integrations.keys()
        if missing:
            raise ValueError(f"routes without an integration: {', '.join(sorted(missing))}")
        self.max_body_bytes = max_body_bytes  # [quotas]: "Payload size: 10 MB"

    def select(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The best route and its parameters [routes]; the $default route catches the rest."""
        for route in self.routes:
            params = route.match(path)
            if params is not None and route.method in (method.upper(), "ANY"):
                return route, params
        return (self.default, {}) if self.default else None

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request the way API Gateway does."""
        if len(request.body) > self.max_body_bytes:
            return _gateway_error(413, "Request Entity Too Large")
        headers = joined_headers(request.headers)
        # [cors]: a preflight is an OPTIONS with Origin and Access-Control-Request-Method.
        preflight = {"origin", "access-control-request-method"} <= headers.keys()
        if self.cors and request.method.upper() == "OPTIONS" and preflight:
            return HttpResponse(204, self.cors.preflight_headers(headers), b"")
        path = unquote(request.raw_path)  # [routes]: decoded before it reaches the integration
        selected = self.select(request.method, path)
        if selected is None:
            return _gateway_error(404, "Not Found")  # [routes]: {"message":"Not Found"}
        route, params = selected
        authorizer = self.authorizers.get(route.key)
        context = authorizer(headers) if authorizer else None
        if authorizer and context is None:  # preflights above never reach an authorizer
            return self._with_cors(_gateway_error(401, "Unauthorized"), headers)
        event = http_api_event(
            request.method,
            path,
            request.body,
            request.headers,
            request.raw_query,
            request.source_ip,
            route_key=route.key,
            path_parameters=params,
            authorizer=context,
        )
        try:
            status, out_headers, body = integration_response(self.integrations[route.key](event))
        except Exception:  # [errors]: a failing or malformed integration gives a 500
            log.exception("integration for %s failed", route.key)
            return _gateway_error(500, "Internal Server Error")
        return self._with_cors(HttpResponse(status, out_headers, body), headers)

    def _with_cors(self, response: HttpResponse, headers: Mapping[str, str]) -> HttpResponse:
        """[cors]: the API "ignores CORS headers returned from your backend integration" and
        sends its own, on every response."""
        if not self.cors:
            return response
        kept = [h for h in response.headers if not h[0].lower().startswith("access-control-")]
        cors = self.cors.response_headers(headers.get("origin", ""))
        return HttpResponse(response.status, kept + cors, response.body)


def _gateway_error(status: int, message: str) -> HttpResponse:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [("Content-Type", "application/json")], body)


def joined_headers(pairs: Iterable[tuple[str, str]], lower: bool = True) -> dict[str, str]:
    """Lower-cased names; "Duplicate headers are combined with commas" [lambda], no space."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def _query_parameters(query: str) -> dict[str, str]:
    """Decoded, ``+`` as a space [capture]; duplicates "combined with commas" [lambda]."""
    return joined_headers(parse_qsl(query, keep_blank_values=True), lower=False)


def _event_body(body: bytes, content_type: str) -> tuple[str | None, bool]:
    """Text for text/*, JSON, XML and JavaScript bodies, base64 otherwise, even with no
    content-type or form-urlencoded [binary]; base64 too when the text is not UTF-8."""
    if not body:
        return None, False
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("text/") or media in _TEXT_TYPES:
        with contextlib.suppress(UnicodeDecodeError):
            return body.decode("utf-8"), False
    return base64.b64encode(body).decode(), True


def http_api_event(
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    query: str = "",
    source_ip: str = "127.0.0.1",
    *,
    route_key: str = DEFAULT_ROUTE,
    path_parameters: Mapping[str, str] | None = None,
    authorizer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event API Gateway sends a Lambda integration for this request (payload 2.0) [lambda].

    ``path`` is the request path as API Gateway delivers it (decoded, [capture]); ``query`` is
    the raw query string. Cookie headers become ``cookies``, one item per cookie, and leave
    ``headers`` [capture]; empty optional fields are left out.
    """
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
    lowered = joined_headers((n, v) for n, v in pairs if n.lower() != "cookie")
    cookies = [c.strip() for n, v in pairs if n.lower() == "cookie" for c in v.split(";")]
    text_body, encoded = _event_body(body, lowered.get("content-type", ""))
    now = time.time()
    context: dict[str, Any] = {"authorizer": dict(authorizer)} if authorizer else {}
    optional = {
        "cookies": [c for c in cookies if c],
        "queryStringParameters": _query_parameters(query),
        "pathParameters": dict(path_parameters or {}),
        "body": text_body,
    }
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
            **context,
        },
        "isBase64Encoded": encoded,
        **{name: value for name, value in optional.items() if value},
    }


def integration_response(output: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of the client response for a Lambda's output [lambda].

    Without ``statusCode`` the output is the body of a 200 ``application/json`` response (a
    string as is, anything else as JSON). Otherwise ``headers``, ``cookies`` (one Set-Cookie
    each), ``body`` and ``isBase64Encoded`` are read; ``multiValueHeaders`` is not part of the
    2.0 response format and is ignored, as API Gateway does (aws/serverless-java-container
    issue 377). Raises TypeError or ValueError for a malformed response.
    """
    if not isinstance(output, Mapping) or "statusCode" not in output:
        text = output if isinstance(output, str) else json.dumps(output)
        return 200, [("Content-Type", "application/json")], text.encode()
    status, headers = output["statusCode"], output.get("headers") or {}
    cookies, body = output.get("cookies") or [], output.get("body") or ""
    scalar = (str, int, float)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"statusCode {status!r}")
    if not isinstance(headers, Mapping) or not all(isinstance(v, scalar) for v in headers.values()):
        raise TypeError(f"headers {headers!r}")
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise TypeError(f"cookies {cookies!r}")
    if not isinstance(body, str):
        raise TypeError(f"body of type {type(body).__name__}")
    encoded = output.get("isBase64Encoded")
    data = base64.b64decode(body, validate=True) if encoded else body.encode()  # ValueError
    pairs = [(str(name), str(value)) for name, value in headers.items()]
    return status, pairs + [("Set-Cookie", cookie) for cookie in cookies], data


def response_parts(response: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body bytes of a Lambda proxy response (lenient, for direct calls)."""
    body = response.get("body") or ""
    data = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
    headers = {k: str(v) for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(str(v) for v in values)
    return int(response.get("statusCode", 200)), headers, data
