"""The HTTP API handlers behind the local gateway and its JWT authorizer (tokens from the
template's user pool on moto): presigned POST, image lookup and tenancy, on-demand processing
and errors."""

import base64
import functools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import boto3
import pytest
import requests
from aws_helpers import context, embedded_aws, error_response, receive_event, role_env
from botocore.awsrequest import AWSResponse

import handlers.api
import handlers.process
import handlers.process_now
from core.tenancy import owner_of_key
from infra.local.apigw import (
    Authorize,
    HttpApiGateway,
    HttpRequest,
    routes_from_template,
    template_routes,
)
from infra.local.canned import canned_response
from infra.local.cognito import create_demo_users, pool_and_client
from infra.local.jwt_authorizer import route_authorizers
from infra.local.moto_server import EmbeddedAws
from infra.local.provision import Stack, provision
from infra.local.strict_front import FormPostGuard
from infra.template.evaluation import Evaluator
from infra.template.loading import load_template
from loadtest.synthetic import photo_like_bytes

JPEG = photo_like_bytes(640, 480, seed=3)
ON_DEMAND = {"OnDemandProcessing": "true"}
RESOURCES = Evaluator(load_template(), ON_DEMAND).resources()
ROUTES = routes_from_template(RESOURCES)
HANDLERS = {"ApiFunction": handlers.api.handler, "ProcessNowFunction": handlers.process_now.handler}
RUNTIMES = {
    "ApiFunction": handlers.api.runtime,
    "ProcessNowFunction": handlers.process_now.runtime,
    "ProcessFunction": handlers.process.runtime,
}


TOKENS: dict[str, str] = {}  # user name -> ID token, for the module's stack
AUTHORIZERS: dict[str, Authorize] = {}


@pytest.fixture(scope="module")
def strict_stack() -> Iterator[tuple[EmbeddedAws, Stack]]:
    """A strict embedded AWS (IAM, SigV4, POST policies) with the template's resources, its
    user pool's demo users, and the template's authorizer (keys from moto's issuer)."""
    with embedded_aws() as aws:
        stack = provision("api", parameters=ON_DEMAND)
        assert aws.front is not None
        aws.front.guard(FormPostGuard(stack.raw_bucket))
        ids = pool_and_client(stack.resources)
        assert ids is not None
        users = create_demo_users(boto3.client("cognito-idp"), aws.endpoint, aws.region, *ids)
        TOKENS.update({name: user.token for name, user in users.items()})
        AUTHORIZERS.update(route_authorizers(stack.resources, origin=aws.endpoint))
        yield aws, stack
        TOKENS.clear()
        AUTHORIZERS.clear()


def build_as(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], build: Callable[[], Any]
) -> None:
    """Build a handler's clients (once per container, as on Lambda) with a role's credentials;
    the test's own calls go on as the operator."""
    with monkeypatch.context() as scoped:
        for name, value in env.items():
            scoped.setenv(name, value)
        boto3.DEFAULT_SESSION = None  # the default session caches the credentials it found
        build()
    boto3.DEFAULT_SESSION = None


def rebuild_runtimes(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every handler's clients and settings built again from the environment, each with its
    own template role (as a new container would be)."""
    for function, runtime in RUNTIMES.items():
        runtime.cache_clear()
        build_as(monkeypatch, role_env(stack.roles[function]), runtime)


@pytest.fixture
def api_stack(
    strict_stack: tuple[EmbeddedAws, Stack], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    """Each handler runs as its own template role (the API, on-demand and process functions),
    and presigned URLs are real HTTP endpoints behind the POST policy checker."""
    _, stack = strict_stack
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    rebuild_runtimes(stack, monkeypatch)
    yield stack
    for runtime in RUNTIMES.values():
        runtime.cache_clear()


def call(method: str, path: str, body: Any = None, user: str | None = "alice") -> tuple[int, Any]:
    """A request by ``user`` (None: no token) through the local API Gateway, its authorizer,
    and each route to the function the template integrates it with."""
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    integrations = {
        key: functools.partial(_invoke, HANDLERS[function])
        for key, function in template_routes(RESOURCES).items()
    }
    gateway = HttpApiGateway(ROUTES, None, integrations, authorizers=AUTHORIZERS)
    headers = [("content-type", "application/json")]
    headers += [("authorization", f"Bearer {TOKENS[user]}")] if user else []
    request = HttpRequest(method, path, "", headers, raw)
    response = gateway.handle(request)
    return response.status, json.loads(response.body) if response.body else None


def call_as_admin(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return call(method, path, body, user="admin")


def _invoke(handler: Callable[[Any, Any], Any], event: dict[str, Any]) -> Any:
    return handler(event, context())


def get_image(image_id: str, user: str | None = "alice") -> tuple[int, Any]:
    """GET /images/{image_id+} as a client sends it: the id percent-encoded, slashes kept."""
    return call("GET", f"/images/{quote(image_id, safe='/')}", user=user)


def test_presigned_post_uploads_and_the_object_is_processed(api_stack: Stack) -> None:
    status, upload = call(
        "POST",
        "/uploads",
        {"filename": "../../etc/Cät photo.JPG", "contentType": "image/jpeg", "size": len(JPEG)},
    )
    assert status == 200
    assert upload["key"].startswith("uploads/") and upload["key"].endswith("/Cät-photo.JPG")
    assert ".." not in upload["key"]
    posted = requests.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("x.jpg", JPEG, "image/jpeg")},
        timeout=30,
    )
    assert posted.status_code in (200, 201, 204), posted.text
    status, waiting = get_image(upload["imageId"])
    assert (status, waiting["status"], waiting["size"]) == (200, "PENDING", len(JPEG))
    assert get_image(upload["imageId"], user="bob")[0] == 404  # not even that it waits

    event = receive_event(api_stack, 10)
    bodies = [r["body"] for r in event["Records"] if "ObjectCreated" in r["body"]]
    assert len(bodies) == 1
    response = handlers.process.handler(event, context())
    assert response == {"batchItemFailures": []}

    status, item = get_image(upload["imageId"])
    assert status == 200
    assert item["status"] == "PROCESSED" and item["key"] == upload["key"]
    assert item["owner"] == owner_of_key(upload["key"])
    for rendition in item["renditions"]:
        # The API role may not read renditions: on AWS they are served by CloudFront.
        assert requests.get(rendition["url"], timeout=30).status_code == 403
        stored = boto3.client("s3").get_object(Bucket=api_stack.output_bucket, Key=rendition["key"])
        assert stored["ContentLength"] == rendition["bytes"]


def test_the_upload_must_be_exactly_the_declared_size(api_stack: Stack) -> None:
    status, upload = call(
        "POST", "/uploads", {"filename": "a.jpg", "contentType": "image/jpeg", "size": len(JPEG)}
    )
    assert status == 200
    for data, code in ((JPEG + b"\0", "EntityTooLarge"), (JPEG[:-1], "EntityTooSmall")):
        posted = requests.post(upload["url"], data=upload["fields"],
                               files={"file": ("a.jpg", data, "image/jpeg")}, timeout=30)  # fmt: skip
        assert posted.status_code == 400 and f"<Code>{code}</Code>" in posted.text


def test_presigned_post_policy_carries_every_condition(api_stack: Stack) -> None:
    """The policy's conditions, as signed (the checker in front of moto enforces them)."""
    before = time.time()
    status, upload = call(
        "POST", "/uploads", {"filename": "a.png", "contentType": "image/png", "size": 1234}
    )
    assert status == 200
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    conditions = policy["conditions"]
    assert {"key": upload["key"]} in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert {"bucket": api_stack.raw_bucket} in conditions
    assert ["content-length-range", 1234, 1234] in conditions
    expires = time.mktime(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 0 < expires - before <= 300 + 5
    assert upload["fields"]["Content-Type"] == "image/png"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "JSON object"),
        ({"contentType": "image/png", "size": 10}, "filename"),
        ({"filename": "a.svg", "contentType": "image/svg+xml", "size": 10}, "contentType"),
        ({"filename": "a.png", "contentType": "image/png", "size": 0}, "size"),
        ({"filename": "a.png", "contentType": "image/png", "size": 60 * 1024 * 1024}, "size"),
    ],
)
def test_bad_upload_requests_get_400(api_stack: Stack, body: Any, field: str) -> None:
    status, error = call("POST", "/uploads", body)
    assert status == 400
    assert field in error["message"]


def test_unknown_image_is_404(api_stack: Stack) -> None:
    status, error = get_image(f"{api_stack.raw_bucket}/nope.jpg")
    assert status == 404 and "nope.jpg" in error["message"]
    for missing in (f"{api_stack.raw_bucket}/uploads/none/nope.jpg", "other-bucket/uploads/a.jpg"):
        assert get_image(missing)[0] == 404
    # An object outside uploads/ is not looked at: the API role may only read uploads/*.
    boto3.client("s3").put_object(Bucket=api_stack.raw_bucket, Key="elsewhere/a.jpg", Body=JPEG)
    assert get_image(f"{api_stack.raw_bucket}/elsewhere/a.jpg")[0] == 404


def test_process_on_demand(api_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGPIPE_CDN_DOMAIN", "d111.cloudfront.net")
    rebuild_runtimes(api_stack, monkeypatch)
    key = "uploads/manual/ü b.jpg"
    boto3.client("s3").put_object(Bucket=api_stack.raw_bucket, Key=key, Body=JPEG)
    status, item = call_as_admin("POST", "/process", {"bucket": api_stack.raw_bucket, "key": key})
    assert status == 200
    assert item["status"] == "PROCESSED" and item["outcome"] == "PROCESSED"
    assert item["renditions"][0]["url"].startswith("https://d111.cloudfront.net/")
    status, again = call_as_admin("POST", "/process", {"bucket": api_stack.raw_bucket, "key": key})
    assert (status, again["outcome"], again["outcomeReason"]) == (200, "SKIPPED", "duplicate")


def test_responsive_renditions_get_auto_urls_and_a_srcset(
    api_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGPIPE_CDN_DOMAIN", "d111.cloudfront.net")
    monkeypatch.setenv("IMGPIPE_RENDITIONS", "responsive")
    rebuild_runtimes(api_stack, monkeypatch)
    key = "uploads/responsive/a.jpg"
    boto3.client("s3").put_object(Bucket=api_stack.raw_bucket, Key=key, Body=JPEG)
    status, item = call_as_admin("POST", "/process", {"bucket": api_stack.raw_bucket, "key": key})
    assert status == 200 and len(item["renditions"]) == 12
    assert item["placeholder"] and item["color"].startswith("#")
    auto = {r["name"]: r["url"] for r in item["auto"]}
    stored = {r["key"] for r in item["renditions"] if r["name"] == "mobile"}
    webp = next(k for k in stored if k.endswith(".webp"))  # mobile/{key}.{etag8}-{profile}.webp
    assert webp.startswith(f"mobile/{key}.")
    assert stored == {webp.removesuffix(".webp") + ext for ext in (".avif", ".webp", ".jpg")}
    assert auto["mobile"] == f"https://d111.cloudfront.net/{webp.removesuffix('.webp')}.auto"
    assert set(auto) == {"thumb", "mobile", "720p", "1080p"}
    # A 640 x 480 source: mobile, 720p and 1080p all keep it at 640 wide; the crop is left out.
    assert item["srcset"] == f"{auto['mobile']} 640w"
    status, again = get_image(f"{api_stack.raw_bucket}/{key}", user="admin")
    assert (status, again["srcset"], again["placeholder"]) == (200, item["srcset"],
                                                               item["placeholder"])  # fmt: skip


def test_the_image_id_is_the_greedy_path_parameter_taken_as_is(api_stack: Stack) -> None:
    """A key that holds "%" and "/" is found: the id is not decoded a second time."""
    key = "uploads/50%25 off/ü+b.jpg"
    boto3.client("s3").put_object(Bucket=api_stack.raw_bucket, Key=key, Body=JPEG)
    assert call_as_admin("POST", "/process", {"bucket": api_stack.raw_bucket, "key": key})[0] == 200
    status, item = get_image(f"{api_stack.raw_bucket}/{key}", user="admin")  # no owner: admins
    assert status == 200 and item["key"] == key


def head_forbidden(request: Any, **_: Any) -> AWSResponse:
    """S3's answer to a HEAD it refuses: 403 with no body (botocore reads the code "403")."""
    return canned_response(request.url, 403, b"")


@pytest.mark.parametrize(
    ("operation", "hook"),
    [
        ("HeadObject", head_forbidden),
        ("GetObject", error_response("AccessDenied", 403)),
        ("PutObject", error_response("AccessDenied", 403)),
    ],
)
def test_process_access_denied_anywhere_is_403_json(
    api_stack: Stack, operation: str, hook: Callable[..., AWSResponse]
) -> None:
    key = "uploads/denied/a.jpg"
    boto3.client("s3").put_object(Bucket=api_stack.raw_bucket, Key=key, Body=JPEG)
    client = handlers.process_now.runtime().storage.client
    client.meta.events.register_first(f"before-send.s3.{operation}", hook)
    status, error = call_as_admin("POST", "/process", {"bucket": api_stack.raw_bucket, "key": key})
    assert status == 403, error
    assert "the on-demand processing function" in error["message"] and key in error["message"]


def test_process_other_bucket_is_403_and_missing_is_404(api_stack: Stack) -> None:
    status, _ = call_as_admin(
        "POST", "/process", {"bucket": api_stack.output_bucket, "key": "x.jpg"}
    )
    assert status == 403
    status, _ = call_as_admin(
        "POST", "/process", {"bucket": api_stack.raw_bucket, "key": "missing.jpg"}
    )
    assert status == 404
    status, _ = call_as_admin("POST", "/process", {"key": "x.jpg"})
    assert status == 400


def test_config_mirrors_the_server_limits(
    api_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, config = call("GET", "/config")
    assert status == 200
    assert config["maxBytes"] == 50 * 1024 * 1024
    assert "image/heic" in config["contentTypes"]
    assert config["renditions"] == ["thumb", "mobile", "720p", "1080p"]
    monkeypatch.setenv("IMGPIPE_RENDITIONS", "responsive")  # each name once, not per format
    assert call("GET", "/config")[1]["renditions"] == ["thumb", "mobile", "720p", "1080p"]


def upload_as(stack: Stack, user: str, name: str) -> dict[str, Any]:
    """An upload by ``user`` through its presigned POST, processed; its POST /uploads answer."""
    status, upload = call("POST", "/uploads", {"filename": name, "contentType": "image/jpeg",
                                                "size": len(JPEG)}, user=user)  # fmt: skip
    assert status == 200, upload
    posted = requests.post(upload["url"], data=upload["fields"],
                           files={"file": (name, JPEG, "image/jpeg")}, timeout=30)  # fmt: skip
    assert posted.status_code == 204, posted.text
    event = receive_event(stack, 10)
    assert handlers.process.handler(event, context()) == {"batchItemFailures": []}
    return dict(upload)


def with_claims(token: str, **changes: Any) -> str:
    """The token with its payload changed and its signature kept."""
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload = json.dumps({**claims, **changes}).encode()
    return f"{head}.{base64.urlsafe_b64encode(payload).rstrip(b'=').decode()}.{signature}"


def test_no_token_or_a_forged_one_is_401_unauthorized(api_stack: Stack) -> None:
    body = {"filename": "a.jpg", "contentType": "image/jpeg", "size": 10}
    assert call("POST", "/uploads", body, user=None) == (401, {"message": "Unauthorized"})
    assert get_image(f"{api_stack.raw_bucket}/uploads/x/y/a.jpg", user=None)[0] == 401
    assert call("POST", "/process", {}, user=None)[0] == 401
    TOKENS["forged"] = with_claims(TOKENS["bob"], **{"cognito:groups": ["imgpipe-admins"]})
    assert call("POST", "/process", {}, user="forged") == (401, {"message": "Unauthorized"})
    assert call("GET", "/config", user=None)[0] == 200  # public: it tells how to sign in


def test_users_see_only_their_own_images_and_admins_see_all(api_stack: Stack) -> None:
    upload = upload_as(api_stack, "alice", "写真.jpg")
    assert upload["key"].endswith("/写真.jpg")
    status, item = get_image(upload["imageId"], user="alice")
    assert status == 200 and item["status"] == "PROCESSED" and item["key"] == upload["key"]
    other, unknown = get_image(upload["imageId"], user="bob"), get_image(
        upload["imageId"] + "-nope", user="bob")  # fmt: skip
    assert other[0] == unknown[0] == 404  # someone else's image is as unknown as a missing one
    assert other[1]["message"] == f"no image {upload['imageId']!r}"
    assert get_image(upload["imageId"], user="admin")[0] == 200


def test_only_admins_may_process_on_demand(api_stack: Stack) -> None:
    key = "uploads/manual/admin-only.jpg"
    boto3.client("s3").put_object(Bucket=api_stack.raw_bucket, Key=key, Body=JPEG)
    body = {"bucket": api_stack.raw_bucket, "key": key}
    status, error = call("POST", "/process", body, user="bob")
    assert status == 403 and "imgpipe-admins" in error["message"]
    assert (
        boto3.client("dynamodb")
        .get_item(
            TableName=api_stack.table, Key={"image_id": {"S": f"{api_stack.raw_bucket}/{key}"}}
        )
        .get("Item")
        is None
    )
    status, item = call_as_admin("POST", "/process", body)
    assert status == 200 and item["outcome"] == "PROCESSED"
