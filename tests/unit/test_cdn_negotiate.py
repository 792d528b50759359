"""infra/cdn/negotiate.js, the CloudFront viewer-request function, run under Node with the
Accept headers that real clients send, and the template that deploys it.

The Accept strings are the ones MDN lists in "HTTP content negotiation: List of default
Accept values", section "Values for images" (what a browser sends for an <img>), and in
"Accept" ("curl and wget use */*"); the Safari one is also what Safari 17.6 and 18.x send in
published request captures.
"""

from pathlib import Path
from typing import Any

import pytest
from node_runner import REPO, run_module

from infra.template.evaluation import Evaluator
from infra.template.loading import load_template

FUNCTION = REPO / "infra" / "cdn" / "negotiate.js"

# What CloudFront does with the file: it defines handler() at the top level, with no module
# system; the runner evaluates it the same way, in a fresh context with nothing in it.
RUNNER = f"""
import {{ readFileSync }} from "node:fs";
import vm from "node:vm";
const handler = vm.runInNewContext(readFileSync({str(FUNCTION)!r}, "utf8") + "\\nhandler", {{}});
let input = "";
for await (const chunk of process.stdin) input += chunk;
process.stdout.write(JSON.stringify(JSON.parse(input).map((event) => handler(event))));
"""

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
CHROME_NAVIGATION = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
SAFARI = (
    "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
)
SAFARI_BEFORE_BIG_SUR = "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"  # 128+
FIREFOX_92_TO_127 = "image/avif,image/webp,*/*"
FIREFOX_65_TO_91 = "image/webp,*/*"
CURL = "*/*"

URI = "/720p/uploads/9f3c/cat%20photo.heic.auto"


def event(uri: str, accept: str | None = None, multi: list[str] | None = None) -> dict[str, Any]:
    headers: dict[str, Any] = {"host": {"value": "d111.cloudfront.net"}}
    if accept is not None:
        headers["accept"] = {"value": accept}
    if multi is not None:
        headers["accept"] = {"value": multi[0], "multiValue": [{"value": v} for v in multi]}
    return {"version": "1.0", "context": {"eventType": "viewer-request"},
            "viewer": {"ip": "198.51.100.7"},
            "request": {"method": "GET", "uri": uri, "querystring": {}, "headers": headers,
                        "cookies": {}}}  # fmt: skip


CASES = [
    ("Chrome", event(URI, CHROME), "avif"),
    ("Chrome, navigating to the URL", event(URI, CHROME_NAVIGATION), "avif"),
    ("Safari 17+", event(URI, SAFARI), "avif"),
    ("Safari before Big Sur", event(URI, SAFARI_BEFORE_BIG_SUR), "jpeg"),
    ("Firefox 128+", event(URI, FIREFOX), "avif"),
    ("Firefox 92-127", event(URI, FIREFOX_92_TO_127), "avif"),
    ("Firefox 65-91", event(URI, FIREFOX_65_TO_91), "webp"),
    ("curl", event(URI, CURL), "jpeg"),
    ("no Accept at all", event(URI), "jpeg"),
    ("AVIF refused with q=0", event(URI, "image/avif;q=0, image/webp;q=0.9, */*"), "webp"),
    ("upper case, spaces", event(URI, " IMAGE/AVIF ; Q=0.5 , */*"), "avif"),
    ("several Accept headers", event(URI, multi=["image/jpeg", "image/webp"]), "webp"),
]
EXTENSIONS = {"avif": ".avif", "webp": ".webp", "jpeg": ".jpg"}


@pytest.fixture(scope="module")
def answers() -> list[dict[str, Any]]:
    events = [case[1] for case in CASES] + [e for _, e in PASSED_THROUGH]
    return list(run_module(RUNNER, events))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case[0] for case in CASES])
def test_auto_becomes_the_best_format_the_client_lists(
    answers: list[dict[str, Any]], index: int
) -> None:
    _, sent, chosen = CASES[index]
    request = answers[index]
    assert request["uri"] == URI.removesuffix(".auto") + EXTENSIONS[chosen]
    # The cache key's Accept is normalised to the one type chosen.
    assert request["headers"]["accept"] == {"value": f"image/{chosen}"}
    assert request["headers"]["host"] == sent["request"]["headers"]["host"]
    assert request["method"] == "GET" and request["querystring"] == {}


PASSED_THROUGH = [
    ("a stored rendition", event("/720p/uploads/a/cat.jpg.webp", CHROME)),
    (".auto in a folder, not the last segment", event("/x.auto/uploads/cat.jpg", CHROME)),
    ("a segment that is only .auto", event("/thumb/.auto", CHROME)),
    ("autos, not .auto", event("/thumb/cat.autos", SAFARI)),
]


@pytest.mark.parametrize("index", range(len(PASSED_THROUGH)), ids=[p[0] for p in PASSED_THROUGH])
def test_other_uris_pass_unchanged(answers: list[dict[str, Any]], index: int) -> None:
    _, sent = PASSED_THROUGH[index]
    assert answers[len(CASES) + index] == sent["request"]


def test_the_template_deploys_this_very_file() -> None:
    resources = Evaluator(load_template()).resources()
    function = resources["NegotiateFormat"]["Properties"]
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert function["FunctionCode"] == Path(FUNCTION).read_text(), (
        "infra/template.yaml's NegotiateFormat FunctionCode differs from infra/cdn/negotiate.js:"
        " paste the file into the template"
    )
    config = resources["Distribution"]["Properties"]["DistributionConfig"]
    [behaviour] = [b for b in config["CacheBehaviors"] if b["PathPattern"] == "*.auto"]
    assert behaviour["FunctionAssociations"] == [
        {"EventType": "viewer-request", "FunctionARN": "<NegotiateFormat.FunctionARN>"}
    ]
    assert behaviour["CachePolicyId"] == "<AutoFormatCachePolicy>"
    policy = resources["AutoFormatCachePolicy"]["Properties"]["CachePolicyConfig"]
    headers = policy["ParametersInCacheKeyAndForwardedToOrigin"]["HeadersConfig"]
    assert headers == {"HeaderBehavior": "whitelist", "Headers": ["Accept"]}
    assert "FunctionAssociations" not in config["DefaultCacheBehavior"]
