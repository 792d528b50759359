"""The local API Gateway HTTP API: routing, the v2 event, responses and CORS (no servers)."""

import base64
import json
import re
from typing import Any

import pytest

from infra.local.apigw import (
    Cors,
    HttpApiGateway,
    HttpRequest,
    HttpResponse,
    Route,
    cors_from_template,
    routes_from_template,
    template_routes,
)
from infra.template.evaluation import Evaluator
from infra.template.loading import load_template

LOCAL_ORIGINS = ("http://127.0.0.1:8080", "http://localhost:8080")

# The payload format 2.0 example of "Create AWS Lambda proxy integrations for HTTP APIs in API
# Gateway" (AWS API Gateway Developer Guide), as published.
AWS_EXAMPLE_V2: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/my/path",
    "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
    "cookies": ["cookie1", "cookie2"],
    "headers": {"header1": "value1", "header2": "value1,value2"},
    "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "api-id",
        "authentication": {
            "clientCert": {
                "clientCertPem": "CERT_CONTENT",
                "subjectDN": "www.example.com",
                "issuerDN": "Example issuer",
                "serialNumber": "a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1",
                "validity": {
                    "notBefore": "May 28 12:30:02 2019 GMT",
                    "notAfter": "Aug  5 09:36:04 2021 GMT",
                },
            }
        },
        "authorizer": {
            "jwt": {
                "claims": {"claim1": "value1", "claim2": "value2"},
                "scopes": ["scope1", "scope2"],
            }
        },
        "domainName": "id.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "id",
        "http": {
            "method": "POST",
            "path": "/my/path",
            "protocol": "HTTP/1.1",
            "sourceIp": "IP",
            "userAgent": "agent",
        },
        "requestId": "id",
        "routeKey": "$default",
        "stage": "$default",
        "time": "12/Mar/2020:19:03:58 +0000",
        "timeEpoch": 1583348638390,
    },
    "body": "Hello from Lambda",
    "pathParameters": {"parameter1": "value1"},
    "isBase64Encoded": False,
    "stageVariables": {"stageVariable1": "value1", "stageVariable2": "value2"},
}


class Recorder:
    """An integration that records the events it gets and returns ``output`` (or raises it)."""

    def __init__(self, output: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.output = {"statusCode": 200, "body": "ok"} if output is None else output

    def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if isinstance(self.output, Exception):
            raise self.output
        return self.output


def request(
    method: str, target: str, headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> HttpRequest:
    path, _, query = target.partition("?")
    return HttpRequest(method, path, query, headers or [], body)


def gateway(keys: list[str], cors: Cors | None = None, output: Any = None) -> HttpApiGateway:
    return HttpApiGateway([Route.from_key(k) for k in keys], cors, Recorder(output))


def recorder_of(api: HttpApiGateway) -> Recorder:
    """The one Recorder a gateway built by these helpers sends every route to."""
    (recorder,) = set(api.integrations.values())
    assert isinstance(recorder, Recorder)
    return recorder


def routed(api: HttpApiGateway, method: str, target: str) -> str | None:
    """The route key the integration saw, None when nothing was invoked."""
    recorder = recorder_of(api)
    recorder.events.clear()
    api.handle(request(method, target))
    return recorder.events[0]["routeKey"] if recorder.events else None


def header(response: HttpResponse, name: str) -> list[str]:
    return [v for k, v in response.headers if k.lower() == name.lower()]


def cors_names(response: HttpResponse) -> set[str]:
    return {k.lower() for k, _ in response.headers if k.lower().startswith("access-control-")}


# ----------------------------------------------------------------------------------- routes


def test_path_variables_match_one_segment_greedy_ones_the_rest() -> None:
    assert Route("GET", "/pets/{petID}").match("/pets/6") == {"petID": "6"}
    assert Route("GET", "/pets/{petID}").match("/pets/6/toys") is None
    assert Route("GET", "/pets/{petID}").match("/pets/") is None
    greedy = Route("GET", "/pets/{proxy+}")
    assert greedy.match("/pets/cat/1") == {"proxy": "cat/1"}
    assert greedy.match("/pets/6") == {"proxy": "6"}
    assert greedy.match("/pets") is None and greedy.match("/pets/") is None
    assert Route("GET", "/").match("/") == {}
    assert Route("GET", "/config").match("/config/") is None
    assert Route("GET", "/Config").match("/config") is None


def test_route_keys_and_invalid_routes() -> None:
    assert Route.from_key("POST /process") == Route("POST", "/process")
    assert Route.from_key("$default").key == "$default"
    assert Route("ANY", "/{proxy+}").key == "ANY /{proxy+}"
    with pytest.raises(ValueError, match="invalid HTTP API route"):
        Route("GET", "/{proxy+}/more")  # "The greedy path variable must be at the end"
    with pytest.raises(ValueError, match="invalid HTTP API route"):
        Route("GET", "pets")


@pytest.mark.parametrize(
    ("method", "target", "selected"),
    [  # The table of "Create routes for HTTP APIs in API Gateway", then the rest.
        ("GET", "/pets/dog/1", "GET /pets/dog/{id}"),
        ("GET", "/pets/cat/1", "GET /pets/{proxy+}"),
        ("POST", "/test/5", "ANY /{proxy+}"),
        ("GET", "/", "$default"),
        ("PATCH", "/", "$default"),
    ],
)
def test_the_aws_routing_example(method: str, target: str, selected: str) -> None:
    api = gateway(["GET /pets/dog/{id}", "GET /pets/{proxy+}", "ANY /{proxy+}", "$default"])
    assert routed(api, method, target) == selected


def test_exact_beats_variable_beats_greedy_and_a_method_beats_any() -> None:
    api = gateway(["GET /pets/{id}", "GET /pets/dog", "GET /{proxy+}", "ANY /pets/{id}"])
    assert routed(api, "GET", "/pets/dog") == "GET /pets/dog"
    assert routed(api, "GET", "/pets/cat") == "GET /pets/{id}"
    assert routed(api, "DELETE", "/pets/cat") == "ANY /pets/{id}"
    assert routed(api, "GET", "/pets/cat/1") == "GET /{proxy+}"
    # A full match (variables only) beats a greedy one with more literals.
    api = gateway(["GET /{a}/{b}/{c}", "GET /pets/{proxy+}"])
    assert routed(api, "GET", "/pets/x/y") == "GET /{a}/{b}/{c}"


def test_no_match_is_a_404_not_found() -> None:
    api = gateway(["GET /pets/{id}"])
    for method, target in (("POST", "/pets/1"), ("GET", "/pets"), ("HEAD", "/pets/1")):
        response = api.handle(request(method, target))
        assert (response.status, json.loads(response.body)) == (404, {"message": "Not Found"})
        assert header(response, "content-type") == ["application/json"]
    assert routed(api, "GET", "/owners/1") is None


# ---------------------------------------------------------------------- template routes


def api_routes(parameters: dict[str, str]) -> set[str]:
    return {r.key for r in routes_from_template(Evaluator(load_template(), parameters).resources())}


def test_routes_from_the_template() -> None:
    expected = {"GET /images/{image_id+}", "POST /uploads", "GET /config"}
    assert api_routes({}) == expected
    assert api_routes({"OnDemandProcessing": "true"}) == expected | {"POST /process"}
    assert routes_from_template(Evaluator(load_template()).resources(), "OtherApi") == []


def test_each_route_integrates_the_function_its_template_names() -> None:
    """SAM events integrate their own function; an ApiGatewayV2 Route its Target's
    integration's IntegrationUri (POST /process: its own function, not the API's)."""
    on_demand = Evaluator(load_template(), {"OnDemandProcessing": "true"}).resources()
    assert template_routes(on_demand) == {
        "POST /uploads": "ApiFunction",
        "GET /images/{image_id+}": "ApiFunction",
        "GET /config": "ApiFunction",
        "POST /process": "ProcessNowFunction",
    }


def test_a_route_target_that_names_no_function_is_refused() -> None:
    resources = Evaluator(load_template(), {"OnDemandProcessing": "true"}).resources()
    resources["ProcessNowRoute"]["Properties"]["Target"] = "integrations/<Nowhere>"
    with pytest.raises(ValueError, match="names no function"):
        template_routes(resources)


def test_the_gateway_invokes_each_routes_own_integration() -> None:
    uploads, process = Recorder(), Recorder()
    routes = [Route.from_key("POST /uploads"), Route.from_key("POST /process")]
    api = HttpApiGateway(routes, None, {"POST /uploads": uploads, "POST /process": process})
    api.handle(request("POST", "/process"))
    assert [e["routeKey"] for e in process.events] == ["POST /process"] and uploads.events == []
    with pytest.raises(ValueError, match="without an integration: POST /process"):
        HttpApiGateway(routes, None, {"POST /uploads": uploads})


def template_gateway(image_path: str | None = None) -> HttpApiGateway:
    """A gateway on the default template, GetImage's path optionally replaced."""
    template = load_template()
    if image_path is not None:
        route = template["Resources"]["GetImageRoute"]["Properties"]
        route["RouteKey"] = f"GET {image_path}"
    resources = Evaluator(template).resources()
    return HttpApiGateway(
        routes_from_template(resources), cors_from_template(resources), Recorder()
    )


def test_image_ids_with_slashes_need_the_greedy_variable() -> None:
    target = "/images/imgpipe-raw/uploads/x/cat.jpg"
    assert routed(template_gateway(), "GET", target) == "GET /images/{image_id+}"
    mutated = template_gateway("/images/{image_id}")
    assert mutated.handle(request("GET", target)).status == 404


def test_path_parameters_are_percent_decoded() -> None:
    """ "API Gateway decodes URL-encoded request parameters before passing them to your backend
    integration" (Create routes for HTTP APIs); live events show rawPath decoded too."""
    api = template_gateway()
    api.handle(request("GET", "/images/imgpipe-raw%2Fuploads%2Fx%2Fc%C3%A4t%20a.jpg?v=1"))
    (event,) = recorder_of(api).events
    assert event["pathParameters"] == {"image_id": "imgpipe-raw/uploads/x/cät a.jpg"}
    assert event["rawPath"] == event["requestContext"]["http"]["path"]
    assert event["rawPath"] == "/images/imgpipe-raw/uploads/x/cät a.jpg"
    assert event["rawQueryString"] == "v=1"


# ------------------------------------------------------------------------------ the event


def test_the_event_matches_the_aws_example() -> None:
    recorder = Recorder()
    api = HttpApiGateway([Route.from_key("$default")], None, recorder)
    headers = [("Header1", "value1"), ("Header2", "value1"), ("Header2", "value2")]
    headers += [("Cookie", "cookie1"), ("Cookie", "cookie2"), ("User-Agent", "agent")]
    headers += [("Content-Type", "text/plain")]  # the example's body is text
    query = AWS_EXAMPLE_V2["rawQueryString"]
    api.handle(HttpRequest("POST", "/my/path", query, headers, b"Hello from Lambda", "IP"))
    (event,) = recorder.events
    for key in ("version", "routeKey", "rawPath", "rawQueryString", "cookies", "body"):
        assert event[key] == AWS_EXAMPLE_V2[key], key
    assert event["queryStringParameters"] == AWS_EXAMPLE_V2["queryStringParameters"]
    assert event["isBase64Encoded"] is False
    assert AWS_EXAMPLE_V2["headers"].items() <= event["headers"].items()
    assert "cookie" not in event["headers"]
    context, expected = event["requestContext"], AWS_EXAMPLE_V2["requestContext"]
    assert context["http"] == expected["http"]
    assert {k: context[k] for k in ("accountId", "routeKey", "stage")} == {
        k: expected[k] for k in ("accountId", "routeKey", "stage")
    }
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["time"])
    assert set(event) <= set(AWS_EXAMPLE_V2) and set(context) <= set(expected)


def test_repeated_headers_and_query_parameters_are_joined_and_decoded() -> None:
    recorder = Recorder()
    api = HttpApiGateway([Route("GET", "/q/{id}")], None, recorder)
    headers = [("X-Probe", "first"), ("x-probe", "second"), ("Cookie", "a=1; b=2")]
    api.handle(
        request("GET", "/q/7?r=one&r=two&R=3&s=a+b&t=a%2Bb&u=https%3A%2F%2Fx%2Fy&e=", headers)
    )
    (event,) = recorder.events
    assert event["headers"]["x-probe"] == "first,second"
    assert event["cookies"] == ["a=1", "b=2"]
    params = event["queryStringParameters"]
    assert params == {"r": "one,two", "R": "3", "s": "a b", "t": "a+b", "u": "https://x/y", "e": ""}
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "GET /q/{id}"
    assert event["pathParameters"] == {"id": "7"}


def test_no_query_no_cookies_no_body_no_parameters_leave_the_fields_out() -> None:
    recorder = Recorder()
    HttpApiGateway([Route("GET", "/config")], None, recorder).handle(request("GET", "/config"))
    (event,) = recorder.events
    assert not {"queryStringParameters", "cookies", "body", "pathParameters"} & set(event)
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("content_type", "body", "encoded"),
    [
        ("application/json", '{"a": "ä"}'.encode(), False),
        ("text/plain; charset=utf-8", "hé".encode(), False),
        ("image/jpeg", b"\xff\xd8\xff\xe0binary", True),
        (None, b"no content type", True),
        ("application/x-www-form-urlencoded", b"a=1", True),
        ("text/plain", b"\xff\xfe not utf-8", True),
    ],
)
def test_binary_bodies_are_base64_encoded(
    content_type: str | None, body: bytes, encoded: bool
) -> None:
    recorder = Recorder()
    headers = [("Content-Type", content_type)] if content_type else []
    HttpApiGateway([Route("POST", "/up")], None, recorder).handle(
        request("POST", "/up", headers, body)
    )
    (event,) = recorder.events
    assert event["isBase64Encoded"] is encoded
    assert (base64.b64decode(event["body"]) if encoded else event["body"].encode()) == body


# --------------------------------------------------------------------------- the response


def respond(output: Any) -> HttpResponse:
    return gateway(["GET /x"], output=output).handle(request("GET", "/x"))


def test_response_with_cookies_headers_and_base64_body() -> None:
    response = respond(
        {
            "statusCode": 201,
            "headers": {"content-type": "image/png", "x-n": 3},
            "cookies": ["a=1; Path=/", "b=2"],
            "multiValueHeaders": {"x-multi": ["1", "2"]},  # not part of the 2.0 format
            "body": base64.b64encode(b"\x89PNG").decode(),
            "isBase64Encoded": True,
        }
    )
    assert (response.status, response.body) == (201, b"\x89PNG")
    assert header(response, "set-cookie") == ["a=1; Path=/", "b=2"]
    assert header(response, "x-n") == ["3"] and header(response, "x-multi") == []


@pytest.mark.parametrize(
    ("output", "body"),
    [
        ({"message": "Hello from Lambda!"}, {"message": "Hello from Lambda!"}),
        ("Hello from Lambda!", None),
        ([1, 2], [1, 2]),
    ],
)
def test_a_response_without_status_code_is_a_200_json_body(output: Any, body: Any) -> None:
    response = respond(output)
    assert response.status == 200
    assert header(response, "content-type") == ["application/json"]
    assert response.body == (output.encode() if body is None else json.dumps(body).encode())


@pytest.mark.parametrize(
    "output",
    [
        {"statusCode": "abc"},
        {"statusCode": 99},
        {"statusCode": 200, "headers": ["x"]},
        {"statusCode": 200, "headers": {"x": {"nested": 1}}},
        {"statusCode": 200, "cookies": "a=1"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "not base64!", "isBase64Encoded": True},
    ],
)
def test_a_malformed_response_is_a_500(output: dict[str, Any]) -> None:
    response = respond(output)
    assert (response.status, json.loads(response.body)) == (
        500,
        {"message": "Internal Server Error"},
    )


def test_an_integration_error_is_a_500() -> None:
    response = respond(RuntimeError("boom"))
    assert (response.status, json.loads(response.body)) == (
        500,
        {"message": "Internal Server Error"},
    )


def test_a_body_over_the_payload_quota_is_a_413() -> None:
    recorder = Recorder()
    api = HttpApiGateway([Route("POST", "/up")], None, recorder, max_body_bytes=10)
    response = api.handle(request("POST", "/up", [("Content-Type", "text/plain")], b"x" * 11))
    assert (response.status, json.loads(response.body)) == (
        413,
        {"message": "Request Entity Too Large"},
    )
    assert recorder.events == []
    assert api.handle(request("POST", "/up", [], b"x" * 10)).status == 200
    assert HttpApiGateway([], None, recorder).max_body_bytes == 10 * 1024 * 1024


# ------------------------------------------------------------------------------------ CORS


def test_cors_from_the_template() -> None:
    cors = cors_from_template(Evaluator(load_template()).resources())
    headers = ("authorization", "content-type", "x-amz-content-sha256", "x-amz-date",
               "x-amz-security-token")  # fmt: skip
    assert cors == Cors(LOCAL_ORIGINS, ("GET", "POST", "OPTIONS"), headers, (), 600)
    assert cors_from_template({"HttpApi": {"Type": "AWS::Serverless::HttpApi"}}) is None


def preflight(api: HttpApiGateway, origin: str, method: str, headers: str = "") -> HttpResponse:
    sent = [("Origin", origin), ("Access-Control-Request-Method", method)]
    sent += [("Access-Control-Request-Headers", headers)] if headers else []
    return api.handle(request("OPTIONS", "/uploads", sent))


@pytest.mark.parametrize("origin", LOCAL_ORIGINS)
def test_the_gateway_answers_an_allowed_preflight(origin: str) -> None:
    api = template_gateway()
    response = preflight(api, origin, "POST", "Content-Type")
    assert (response.status, response.body) == (204, b"")
    assert dict(response.headers) == {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "GET,POST,OPTIONS",
        "Access-Control-Allow-Headers": (
            "authorization,content-type,x-amz-content-sha256,x-amz-date,x-amz-security-token"
        ),
        "Access-Control-Max-Age": "600",
    }
    assert recorder_of(api).events == []


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        ("http://evil.example", "POST", ""),
        ("http://localhost:8081", "POST", ""),
        ("http://localhost:8080", "DELETE", ""),
        ("http://localhost:8080", "POST", "content-type, x-secret"),
    ],
)
def test_a_denied_preflight_gets_no_cors_headers(origin: str, method: str, headers: str) -> None:
    response = preflight(template_gateway(), origin, method, headers)
    assert (response.status, cors_names(response)) == (204, set())


def test_wildcards_and_credentials() -> None:
    anyone = Cors(("*",), ("*",), ("*",), ("x-total",), None, False)
    response = preflight(gateway(["GET /x"], anyone), "https://a.example", "PUT", "x-anything")
    assert dict(response.headers) == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "*",
        "Access-Control-Allow-Headers": "*",
    }
    with_credentials = Cors(("*",), ("GET",), (), ("x-total",), None, True)
    response = gateway(["GET /x"], with_credentials).handle(
        request("GET", "/x", [("Origin", "https://a.example")])
    )
    assert dict(response.headers) == {
        "Access-Control-Allow-Origin": "https://a.example",
        "Access-Control-Expose-Headers": "x-total",
        "Access-Control-Allow-Credentials": "true",
    }


def test_an_options_request_that_is_not_a_preflight_is_routed() -> None:
    api = template_gateway()
    response = api.handle(request("OPTIONS", "/uploads", [("Origin", LOCAL_ORIGINS[0])]))
    assert response.status == 404


INTEGRATION_CORS = {
    "statusCode": 200,
    "headers": {"Access-Control-Allow-Origin": "*", "access-control-allow-credentials": "true"},
    "body": "{}",
}


@pytest.mark.parametrize("origin", LOCAL_ORIGINS)
def test_actual_responses_carry_the_gateway_cors_headers_only(origin: str) -> None:
    api = HttpApiGateway(
        [Route("GET", "/config")], template_gateway().cors, Recorder(INTEGRATION_CORS)
    )
    allowed = api.handle(request("GET", "/config", [("Origin", origin)]))
    assert [(k, v) for k, v in allowed.headers if k.lower().startswith("access-control-")] == [
        ("Access-Control-Allow-Origin", origin)
    ]
    denied = api.handle(request("GET", "/config", [("Origin", "http://evil.example")]))
    assert cors_names(denied) == set()
    assert cors_names(api.handle(request("GET", "/config"))) == set()


def test_without_cors_the_integration_headers_pass_through() -> None:
    response = gateway(["GET /x"], None, INTEGRATION_CORS).handle(
        request("GET", "/x", [("Origin", "http://evil.example")])
    )
    assert header(response, "access-control-allow-origin") == ["*"]
    preflight_response = preflight(gateway(["GET /x"]), "http://evil.example", "GET")
    assert preflight_response.status == 404


# ------------------------------------------------------------------------------ authorizers


def test_a_refused_request_is_401_unauthorized_and_never_reaches_the_integration() -> None:
    recorder = Recorder()
    cors = Cors(("http://127.0.0.1:8080",), ("GET", "POST"), ("authorization",))
    context = {"jwt": {"claims": {"sub": "u-1"}, "scopes": None}}
    authorizers = {"POST /uploads": lambda h: context if h.get("authorization") == "ok" else None}
    routes = [Route.from_key("POST /uploads"), Route.from_key("GET /config")]
    api = HttpApiGateway(routes, cors, recorder, authorizers=authorizers)
    origin = [("Origin", "http://127.0.0.1:8080")]
    refused = api.handle(request("POST", "/uploads", origin))
    assert (refused.status, json.loads(refused.body)) == (401, {"message": "Unauthorized"})
    assert header(refused, "Access-Control-Allow-Origin") == ["http://127.0.0.1:8080"]
    assert recorder.events == []
    assert api.handle(request("POST", "/uploads", [*origin, ("Authorization", "ok")])).status == 200
    (event,) = recorder.events
    assert event["requestContext"]["authorizer"] == context
    assert api.handle(request("GET", "/config")).status == 200  # no authorizer on this route
    assert "authorizer" not in recorder.events[1]["requestContext"]
    preflight_answer = preflight(api, "http://127.0.0.1:8080", "POST", "Authorization")
    assert preflight_answer.status == 204  # preflights are answered before any authorizer
