"""The SAM template: cfn-lint clean with the project's rules, whose invariants hold (and are
caught when broken)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cfnlint.config import ConfigMixIn
from cfnlint.decode import convert_dict
from cfnlint.match import Match
from cfnlint.rules import CloudFormationLintRule, Rules
from cfnlint.runner import run_template_by_data

from infra.template import rules
from infra.template.evaluation import OPTIONAL_PARAMETER_SAMPLES, Evaluator, stack_settings
from infra.template.loading import load_template
from infra.template.rules import (
    BucketsEncryptedTlsOnly,
    BucketsPrivate,
    CloudFrontOacOnly,
    DeadLetterQueue,
    IamStatementsScoped,
    QueuesEncryptedAndScoped,
    QueueVisibilityTimeout,
    RawAndOutputBucketsDiffer,
    ReportBatchItemFailures,
)
from infra.template.rules.policies import as_list

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
# What `--append-rules infra.template.rules` loads.
PROJECT_RULES = Rules.create_from_module(rules.__name__)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _project_findings(t: dict[str, Any]) -> list[Match]:
    """cfn-lint's runner on ``t`` with the project's rules only."""
    data = convert_dict(copy.deepcopy(t))  # cfn-lint merges the SAM Globals in place
    return list(run_template_by_data(data, ConfigMixIn([]), PROJECT_RULES))


def _res(t: dict[str, Any], name: str) -> dict[str, Any]:
    props: dict[str, Any] = t["Resources"][name]["Properties"]
    return props


def _process_statements(t: dict[str, Any]) -> list[Any]:
    role = _res(t, "ProcessFunctionRole")
    statements: list[Any] = role["Policies"][0]["PolicyDocument"]["Statement"]
    return statements


# ------------------------------------------------------------------------------ cfn-lint


def _cfn_lint(*args: str) -> subprocess.CompletedProcess[str]:
    """The cfn-lint command line, with the project's rules appended."""
    exe = Path(sys.executable).with_name("cfn-lint")
    cmd = [str(exe)] if exe.exists() else [shutil.which("cfn-lint") or "cfn-lint"]
    # Templates come before --append-rules, which would take them for more rule modules.
    return subprocess.run(
        [*cmd, *args, "--append-rules", rules.__name__],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cfn_lint_clean() -> None:
    proc = _cfn_lint(str(TEMPLATE.relative_to(ROOT)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == ""


def test_cfn_lint_command_line_loads_the_project_rules() -> None:
    proc = _cfn_lint("--list-rules")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = {line.split(":", 1)[0] for line in proc.stdout.splitlines()}
    assert set(PROJECT_RULES.keys()) <= listed


def test_lint_suppressions_are_explained(template: dict[str, Any]) -> None:
    """Any cfn-lint suppression lives in the template Metadata, with a reason."""
    config = (template.get("Metadata") or {}).get("cfn-lint", {}).get("config", {})
    ignored = config.get("ignore_checks") or []
    reasons = (template.get("Metadata") or {}).get("cfn-lint-reasons") or {}
    assert set(ignored) <= set(reasons), f"unexplained suppressions: {set(ignored) - set(reasons)}"
    for name, res in template["Resources"].items():
        res_ignored = (res.get("Metadata") or {}).get("cfn-lint", {}).get("config", {})
        assert not res_ignored.get("ignore_checks") or (res.get("Metadata") or {}).get(
            "cfn-lint-reasons"
        ), f"{name}: suppression without a reason"


# ---------------------------------------------------------------------------- invariants


def test_invariants_hold(template: dict[str, Any]) -> None:
    assert _project_findings(template) == []


def test_loader_handles_short_form_intrinsics(template: dict[str, Any]) -> None:
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    queue = _res(template, "JobsQueue")
    assert queue["VisibilityTimeout"]["Fn::If"][2] == {
        "Fn::FindInMap": ["TimeoutSettings", {"Ref": "Timeout"}, "VisibilityTimeout"]
    }
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }


def test_loader_keeps_unquoted_dates_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("AWSTemplateFormatVersion: 2010-09-09\nResources: {}\n", encoding="utf-8")
    version = load_template(path)["AWSTemplateFormatVersion"]
    assert version == "2010-09-09" and type(version) is str


def test_stack_settings_defaults(template: dict[str, Any]) -> None:
    s = stack_settings(template)
    assert s.function_timeout == 120
    assert s.visibility_timeout == 720 == 6 * s.function_timeout
    assert s.memory_size == 2048
    assert s.max_receive_count == 5
    assert s.batch_size == 10
    assert s.batching_window == 0
    assert s.max_concurrency == 10
    assert s.report_batch_item_failures
    assert s.queue_retention == 4 * 24 * 3600
    assert s.dlq_retention == 14 * 24 * 3600
    assert s.max_message_size >= 64 * 1024
    assert s.queue_attributes["VisibilityTimeout"] == "720"
    assert '"maxReceiveCount": "5"' in s.redrive_policy("arn:aws:sqs:us-east-1:1:dlq")
    assert s.environment["IMGPIPE_RENDITIONS"] == "default"
    assert s.environment["IMGPIPE_MAX_BYTES"] == "52428800"
    assert s.environment["IMGPIPE_MAX_PIXELS"] == "50000000"
    assert "IMGPIPE_WORKERS" not in s.environment  # 0 -> unset -> CPU count
    assert s.environment["POWERTOOLS_SERVICE_NAME"] == "imgpipe"
    assert s.environment["POWERTOOLS_METRICS_NAMESPACE"] == "imgpipe"


def test_local_stack_provisions_what_the_template_says(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded stack (moto) gets the template's queue, DLQ and table settings."""
    provision = pytest.importorskip("infra.local.provision")
    moto = pytest.importorskip("moto")
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    expected = stack_settings(template)
    import boto3

    with moto.mock_aws():
        stack = provision.provision(prefix="agree")
        sqs = boto3.client("sqs", region_name="us-east-1")
        jobs = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])
        dlq = sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["All"])
        table = boto3.client("dynamodb", region_name="us-east-1").describe_table(
            TableName=stack.table
        )["Table"]
    attributes = jobs["Attributes"]
    for name in ("VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize"):
        assert attributes[name] == expected.queue_attributes[name], name
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == expected.max_receive_count
    assert redrive["deadLetterTargetArn"] == dlq["Attributes"]["QueueArn"]
    assert dlq["Attributes"]["MessageRetentionPeriod"] == str(expected.dlq_retention)
    assert table["KeySchema"] == [{"AttributeName": "image_id", "KeyType": "HASH"}]
    # ... and the poller batches the way the event source mapping does.
    assert stack.settings.batch_size == expected.batch_size
    assert stack.settings.batching_window == expected.batching_window
    assert stack.settings.function_timeout == expected.function_timeout


@pytest.mark.parametrize("timeout", [30, 60, 90, 120, 180, 300, 600, 900])
def test_visibility_follows_timeout_parameter(template: dict[str, Any], timeout: int) -> None:
    s = stack_settings(template, {"Timeout": str(timeout)})
    assert s.function_timeout == timeout
    assert s.visibility_timeout == 6 * timeout


def test_parameters_reach_the_event_source(template: dict[str, Any]) -> None:
    s = stack_settings(
        template,
        {"BatchSize": 50, "MaximumBatchingWindowInSeconds": 1, "MaximumConcurrency": 3},
    )
    assert (s.batch_size, s.batching_window, s.max_concurrency) == (50, 1, 3)


def test_contract_shape(template: dict[str, Any]) -> None:
    res = Evaluator(template).resources()
    process, api = res["ProcessFunction"]["Properties"], res["ApiFunction"]["Properties"]
    for fn in (process, api):
        assert fn["PackageType"] == "Image"
        assert fn["Architectures"] == ["arm64"]
        for var in (
            "IMGPIPE_RAW_BUCKET",
            "IMGPIPE_OUTPUT_BUCKET",
            "IMGPIPE_TABLE",
            "IMGPIPE_QUEUE_URL",
            "IMGPIPE_RENDITIONS",
            "IMGPIPE_CDN_DOMAIN",
        ):
            assert var in fn["Environment"]["Variables"]
    assert process["ImageConfig"]["Command"] == ["handlers.process.handler"]
    assert api["ImageConfig"]["Command"] == ["handlers.api.handler"]
    routes = {r["Properties"]["RouteKey"] for r in res.values()
              if r["Type"] == "AWS::ApiGatewayV2::Route"}  # fmt: skip
    assert routes == {"POST /uploads", "GET /images/{image_id+}", "GET /config"}
    assert res["ApiIntegration"]["Properties"]["IntegrationUri"] == "<ApiFunction.Arn>"
    assert "ProcessNowRoute" not in res  # POST /process exists only with OnDemandProcessing
    on_demand = Evaluator(template, {"OnDemandProcessing": "true"}).resources()
    assert on_demand["ProcessNowRoute"]["Properties"]["RouteKey"] == "POST /process"
    process_now = on_demand["ProcessNowFunction"]["Properties"]
    assert process_now["ImageConfig"]["Command"] == ["handlers.process_now.handler"]
    assert on_demand["ProcessNowIntegration"]["Properties"]["IntegrationUri"] == (
        "<ProcessNowFunction.Arn>"
    )
    assert on_demand["ProcessNowPermission"]["Properties"]["FunctionName"] == "<ProcessNowFunction>"
    # The API function imports no engine: small memory; POST /process runs the engine.
    assert (api["MemorySize"], process_now["MemorySize"]) == ("512", process["MemorySize"])
    assert process_now["Timeout"] < 30  # API Gateway's integration timeout
    table = res["ImagesTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "image_id", "KeyType": "HASH"}]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    dist = res["Distribution"]["Properties"]["DistributionConfig"]
    assert dist["HttpVersion"] == "http2and3"
    behavior = dist["DefaultCacheBehavior"]
    assert behavior["CachePolicyId"] == "658327ea-f89d-4fab-a63d-7e88639e58f6"
    assert behavior["Compress"] is True
    assert set(template["Outputs"]) >= {
        "RawBucketName",
        "ProcessedBucketName",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "ApiUrl",
        "CloudFrontDomain",
        "TableName",
    }


def test_api_role_is_presign_and_read_only_by_default(template: dict[str, Any]) -> None:
    res = Evaluator(template).resources()
    statements = res["ApiFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    grants = {(a, r) for s in statements for a in as_list(s["Action"]) for r in [s["Resource"]]}
    assert grants == {
        ("s3:PutObject", "<RawBucket.Arn>/uploads/*"),
        ("s3:GetObject", "<RawBucket.Arn>/uploads/*"),  # HeadObject: PENDING
        ("s3:ListBucket", "<RawBucket.Arn>"),  # a missing key is 404, not 403
        ("dynamodb:GetItem", "<ImagesTable.Arn>"),
        ("logs:CreateLogStream", "<ApiLogGroup.Arn>"),
        ("logs:PutLogEvents", "<ApiLogGroup.Arn>"),
    }


def test_optional_branches_switch_on(template: dict[str, Any]) -> None:
    params = dict(OPTIONAL_PARAMETER_SAMPLES)
    res = Evaluator(template, params).resources()
    assert "AlarmTopic" in res
    assert res["DlqDepthAlarm"]["Properties"]["AlarmActions"] == ["<AlarmTopic>"]
    raw = res["RawBucket"]["Properties"]
    rule = raw["NotificationConfiguration"]["QueueConfigurations"][0]
    assert rule["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "uploads/"}]
    sse = raw["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert [r["Id"] for r in raw["LifecycleConfiguration"]["Rules"]] == [
        "abort-incomplete-multipart"
    ]
    default = Evaluator(template).resources()
    assert "AlarmTopic" not in default
    assert "AlarmActions" not in default["DlqDepthAlarm"]["Properties"]
    assert (
        "Filter"
        not in default["RawBucket"]["Properties"]["NotificationConfiguration"][
            "QueueConfigurations"
        ][0]
    )


# ------------------------------------------------------- each invariant fails when broken

Mutation = Callable[[dict[str, Any]], None]


def _short_visibility(t: dict[str, Any]) -> None:
    _res(t, "JobsQueue")["VisibilityTimeout"] = 300


def _bad_mapping(t: dict[str, Any]) -> None:
    t["Mappings"]["TimeoutSettings"]["900"]["VisibilityTimeout"] = 900


def _window_not_covered(t: dict[str, Any]) -> None:
    t["Mappings"]["TimeoutSettings"]["30"]["WithWindow"] = 180


def _no_report_batch_item_failures(t: dict[str, Any]) -> None:
    del _res(t, "ProcessFunction")["Events"]["Jobs"]["Properties"]["FunctionResponseTypes"]


def _max_receive_10(t: dict[str, Any]) -> None:
    _res(t, "JobsQueue")["RedrivePolicy"]["maxReceiveCount"] = 10


def _no_redrive(t: dict[str, Any]) -> None:
    del _res(t, "JobsQueue")["RedrivePolicy"]


def _public_access_off(t: dict[str, Any]) -> None:
    _res(t, "ProcessedBucket")["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] = False


def _public_read_policy(t: dict[str, Any]) -> None:
    _res(t, "ProcessedBucketPolicy")["PolicyDocument"]["Statement"].append(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": {"Fn::Sub": "${ProcessedBucket.Arn}/*"},
        }
    )


def _no_tls_only(t: dict[str, Any]) -> None:
    del _res(t, "RawBucketPolicy")["PolicyDocument"]["Statement"][0]


def _no_encryption(t: dict[str, Any]) -> None:
    del _res(t, "RawBucket")["BucketEncryption"]


def _star_action(t: dict[str, Any]) -> None:
    _process_statements(t)[0]["Action"] = "s3:*"


def _star_resource(t: dict[str, Any]) -> None:
    _process_statements(t)[3]["Resource"] = "*"


def _star_in_optional_branch(t: dict[str, Any]) -> None:
    # Only visible when KmsKeyArn is set: the checker must evaluate both branches.
    kms = _process_statements(t)[-1]["Fn::If"][1]
    kms["Resource"] = "*"


def _managed_policy(t: dict[str, Any]) -> None:
    _res(t, "ApiFunctionRole")["ManagedPolicyArns"] = [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    ]


def _api_writes_anywhere_in_raw(t: dict[str, Any]) -> None:
    stmt = _res(t, "ApiFunctionRole")["Policies"][0]["PolicyDocument"]["Statement"][0]
    stmt["Resource"] = {"Fn::Sub": "${RawBucket.Arn}/*"}


def _same_bucket(t: dict[str, Any]) -> None:
    _res(t, "ProcessedBucket")["BucketName"] = copy.deepcopy(_res(t, "RawBucket")["BucketName"])


def _output_is_raw(t: dict[str, Any]) -> None:
    variables = t["Globals"]["Function"]["Environment"]["Variables"]
    variables["IMGPIPE_OUTPUT_BUCKET"] = {"Ref": "RawBucket"}


def _no_oac(t: dict[str, Any]) -> None:
    origin = _res(t, "Distribution")["DistributionConfig"]["Origins"][0]
    del origin["OriginAccessControlId"]


def _legacy_oai(t: dict[str, Any]) -> None:
    origin = _res(t, "Distribution")["DistributionConfig"]["Origins"][0]
    origin["S3OriginConfig"]["OriginAccessIdentity"] = "origin-access-identity/cloudfront/E1"


def _oac_without_source_arn(t: dict[str, Any]) -> None:
    statement = _res(t, "ProcessedBucketPolicy")["PolicyDocument"]["Statement"][1]
    del statement["Condition"]


def _plain_http(t: dict[str, Any]) -> None:
    behavior = _res(t, "Distribution")["DistributionConfig"]["DefaultCacheBehavior"]
    behavior["ViewerProtocolPolicy"] = "allow-all"


def _queue_unencrypted(t: dict[str, Any]) -> None:
    del _res(t, "JobsQueue")["SqsManagedSseEnabled"]


def _queue_policy_any_principal(t: dict[str, Any]) -> None:
    _res(t, "JobsQueuePolicy")["PolicyDocument"]["Statement"][0]["Principal"] = {"AWS": "*"}


def _queue_policy_no_source_account(t: dict[str, Any]) -> None:
    condition = _res(t, "JobsQueuePolicy")["PolicyDocument"]["Statement"][0]["Condition"]
    del condition["StringEquals"]


MUTATIONS: list[tuple[type[CloudFormationLintRule], Mutation]] = [
    (QueueVisibilityTimeout, _short_visibility),
    (QueueVisibilityTimeout, _bad_mapping),
    (QueueVisibilityTimeout, _window_not_covered),
    (ReportBatchItemFailures, _no_report_batch_item_failures),
    (DeadLetterQueue, _max_receive_10),
    (DeadLetterQueue, _no_redrive),
    (BucketsPrivate, _public_access_off),
    (BucketsPrivate, _public_read_policy),
    (BucketsEncryptedTlsOnly, _no_tls_only),
    (BucketsEncryptedTlsOnly, _no_encryption),
    (IamStatementsScoped, _star_action),
    (IamStatementsScoped, _star_resource),
    (IamStatementsScoped, _star_in_optional_branch),
    (IamStatementsScoped, _managed_policy),
    (IamStatementsScoped, _api_writes_anywhere_in_raw),
    (RawAndOutputBucketsDiffer, _same_bucket),
    (RawAndOutputBucketsDiffer, _output_is_raw),
    (CloudFrontOacOnly, _no_oac),
    (CloudFrontOacOnly, _legacy_oai),
    (CloudFrontOacOnly, _oac_without_source_arn),
    (CloudFrontOacOnly, _plain_http),
    (QueuesEncryptedAndScoped, _queue_unencrypted),
    (QueuesEncryptedAndScoped, _queue_policy_any_principal),
    (QueuesEncryptedAndScoped, _queue_policy_no_source_account),
]


def test_every_invariant_has_a_mutation() -> None:
    assert {rule.id for rule, _ in MUTATIONS} == set(PROJECT_RULES.keys())


@pytest.mark.parametrize(
    ("rule", "mutate"), MUTATIONS, ids=[m.__name__.lstrip("_") for _, m in MUTATIONS]
)
def test_broken_invariant_is_reported(
    template: dict[str, Any], rule: type[CloudFormationLintRule], mutate: Mutation
) -> None:
    broken = copy.deepcopy(template)
    mutate(broken)
    findings = _project_findings(broken)
    assert any(finding.rule.id == rule.id for finding in findings), findings
    assert _project_findings(template) == []  # the fixture itself was not touched


def _resolved_statements(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    policy = resources["ProcessFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    return {statement["Sid"]: statement for statement in policy["Statement"]}


def test_backfill_source_buckets_grant_exactly_those_buckets(template: dict[str, Any]) -> None:
    assert not {"ReadBackfillSources", "ListBackfillSourcesSoMissingKeysAre404"} & set(
        _resolved_statements(Evaluator(template).resources())
    )
    params = {"BackfillSourceBuckets": "legacy-photos,archive.example.com"}
    resources = Evaluator(template, params).resources()
    statements = _resolved_statements(resources)
    assert statements["ReadBackfillSources"]["Action"] == "s3:GetObject"
    assert statements["ReadBackfillSources"]["Resource"] == [
        "arn:aws:s3:::legacy-photos/*",
        "arn:aws:s3:::archive.example.com/*",
    ]
    assert statements["ListBackfillSourcesSoMissingKeysAre404"]["Resource"] == [
        "arn:aws:s3:::legacy-photos",
        "arn:aws:s3:::archive.example.com",
    ]
    assert "DecryptBackfillSourcesThroughS3" not in statements
    tags = {t["Key"]: t["Value"] for t in resources["JobsQueue"]["Properties"]["Tags"]}
    assert tags["imgpipe:backfill-source-buckets"] == "legacy-photos archive.example.com"
    assert tags["imgpipe:raw-bucket"] == resources["RawBucket"]["Properties"]["BucketName"]


def test_backfill_sources_with_a_kms_key_decrypt_only_through_s3(template: dict[str, Any]) -> None:
    params = {
        "BackfillSourceBuckets": "legacy-photos",
        "KmsKeyArn": OPTIONAL_PARAMETER_SAMPLES["KmsKeyArn"],
    }
    statement = _resolved_statements(Evaluator(template, params).resources())[
        "DecryptBackfillSourcesThroughS3"
    ]
    assert statement["Action"] == "kms:Decrypt"
    assert statement["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    }
