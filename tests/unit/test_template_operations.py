"""The template's operational contract: the Rules that refuse what AWS would, the visibility
timeout against the batching window, least-privilege grants, alarms, access logs, and the
reasons for every checkov suppression."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra.template.evaluation import Evaluator, stack_settings
from infra.template.loading import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


# ------------------------------------------------------------------------------- Rules


@pytest.mark.parametrize(
    ("parameters", "refused"),
    [
        ({}, False),
        ({"BatchSize": "10"}, False),
        ({"BatchSize": "11"}, True),
        ({"BatchSize": "10000"}, True),
        ({"BatchSize": "11", "MaximumBatchingWindowInSeconds": "1"}, False),
    ],
)
def test_rules_refuse_large_batches_without_a_window(
    template: dict[str, Any], parameters: dict[str, str], refused: bool
) -> None:
    refusals = Evaluator(template, parameters).refusals()
    if refused:
        assert len(refusals) == 1
        assert refusals[0].startswith("LargeBatchesNeedABatchingWindow: BatchSize above 10")
    else:
        assert refusals == []


def test_the_local_stack_refuses_what_the_rules_refuse(template: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Rules refuse these parameters: LargeBatches"):
        stack_settings(template, {"BatchSize": "100"})


@pytest.mark.parametrize("timeout", [30, 120, 900])
@pytest.mark.parametrize("window", [0, 1, 20, 300])
def test_visibility_covers_six_timeouts_plus_the_window(
    template: dict[str, Any], timeout: int, window: int
) -> None:
    parameters = {"Timeout": str(timeout), "MaximumBatchingWindowInSeconds": str(window)}
    settings = stack_settings(template, parameters)
    assert settings.batching_window == window
    assert settings.visibility_timeout >= 6 * timeout + window
    if window == 0:  # no window: no extra wait for the retry of a crashed batch
        assert settings.visibility_timeout == 6 * timeout


# ---------------------------------------------------------------------- least privilege


def _actions(resources: dict[str, Any], role: str) -> set[str]:
    found: set[str] = set()
    for policy in resources[role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            action = statement["Action"]
            found |= {action} if isinstance(action, str) else set(action)
    return found


def test_roles_grant_only_what_the_code_calls(template: dict[str, Any]) -> None:
    """Each grant is an API call the code makes (the local stack enforces the same policies,
    so a missing one fails the integration tests); nothing more."""
    default = Evaluator(template).resources()
    assert _actions(default, "ProcessFunctionRole") == {
        "s3:GetObject",
        "s3:ListBucket",  # a missing key then reads 404, not 403
        "s3:PutObject",
        "s3:DeleteObject",  # the renditions of a removed or replaced version
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    on_demand = Evaluator(template, {"OnDemandProcessing": "true"}).resources()
    # POST /process has its own role; the API's gains nothing from OnDemandProcessing.
    assert _actions(on_demand, "ApiFunctionRole") == _actions(default, "ApiFunctionRole")
    assert _actions(on_demand, "ProcessNowFunctionRole") == {
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
        "s3:DeleteObject",  # the renditions of the version an on-demand render replaces
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert "ProcessNowFunctionRole" not in default


def test_the_raw_bucket_notifies_creations_and_removals_and_the_table_forgets_tombstones(
    template: dict[str, Any],
) -> None:
    resources = Evaluator(template, {"NotificationPrefix": "uploads/"}).resources()
    queues = resources["RawBucket"]["Properties"]["NotificationConfiguration"]
    events = {entry["Event"] for entry in queues["QueueConfigurations"]}
    assert events == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    for entry in queues["QueueConfigurations"]:  # the same prefix filter for both
        assert entry["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "uploads/"}]
    ttl = resources["ImagesTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expires_at", "Enabled": True}


# ---------------------------------------------------------------------------- operations


def _lambda_alarms(resources: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    alarms = {}
    for r in resources.values():
        props = r["Properties"]
        if r["Type"] == "AWS::CloudWatch::Alarm" and props["Namespace"] == "AWS/Lambda":
            (dimension,) = props["Dimensions"]
            alarms[(dimension["Value"], props["MetricName"])] = props
    return alarms


def test_every_function_has_error_and_throttle_alarms(template: dict[str, Any]) -> None:
    parameters = {"AlarmEmail": "ops@example.com", "OnDemandProcessing": "true"}
    resources = Evaluator(template, parameters).resources()
    alarms = _lambda_alarms(resources)
    functions = [n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    assert sorted(functions) == ["ApiFunction", "ProcessFunction", "ProcessNowFunction"]
    for function in (f"<{name}>" for name in functions):
        for metric in ("Errors", "Throttles"):
            alarm = alarms[(function, metric)]
            assert alarm["AlarmActions"] == ["<AlarmTopic>"]
            assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 0)
    every = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(every) == 8 and all(a["AlarmActions"] == ["<AlarmTopic>"] for a in every)


@pytest.mark.parametrize(
    ("parameters", "warned"),
    [
        ({}, True),
        ({"AlarmEmail": "ops@example.com"}, False),
        ({"AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:ops"}, False),
    ],
)
def test_the_stack_warns_when_no_one_gets_the_alarms(
    template: dict[str, Any], parameters: dict[str, str], warned: bool
) -> None:
    output = template["Outputs"]["AlarmWarning"]
    assert Evaluator(template, parameters).condition(output["Condition"]) is warned
    assert "notify nobody" in output["Value"]


def test_http_api_writes_json_access_logs_with_retention(template: dict[str, Any]) -> None:
    resources = Evaluator(template).resources()
    settings = resources["HttpApi"]["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == "<HttpApiAccessLogGroup.Arn>"
    group = resources["HttpApiAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == str(template["Parameters"]["LogRetentionDays"]["Default"])
    # What API Gateway writes once it has substituted each $context variable.
    line = re.sub(r"\$context\.[A-Za-z.]+", "x", settings["Format"])
    assert {"requestId", "ip", "routeKey", "status", "latencyMs"} <= set(json.loads(line))


def test_every_checkov_suppression_has_a_reason(template: dict[str, Any]) -> None:
    skips = [
        (name, skip)
        for name, r in template["Resources"].items()
        for skip in ((r.get("Metadata") or {}).get("checkov") or {}).get("skip") or []
    ]
    assert skips, "the suppressions live in the resources' Metadata"
    for name, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), (name, skip)
        assert len(skip.get("comment", "").split()) >= 8, f"{name} {skip['id']}: no reason"


def test_the_smallest_memory_fits_one_worst_case_record(template: dict[str, Any]) -> None:
    from core.settings import BASE_MEMORY_MB, WORST_BYTES_PER_PIXEL

    parameters = template["Parameters"]
    budget_mb = int(parameters["MaxPixels"]["Default"]) * WORST_BYTES_PER_PIXEL / 2**20
    assert int(parameters["MemorySize"]["MinValue"]) >= BASE_MEMORY_MB + budget_mb
