"""Read ``infra/template.yaml`` and expose what the local stack must agree with.

The SAM template is the source of truth for the queue and event-source numbers (visibility
timeout, ``maxReceiveCount``, batch size, batching window, retention...). The local stack
provisions moto from :func:`stack_settings`, so both sides agree by construction, and
``tests/test_template.py`` checks the template's invariants with :func:`check_invariants`.

Only PyYAML is needed: the CloudFormation short-form tags (``!Ref``, ``!Sub``, ``!GetAtt``,
``!If``...) are turned into their long JSON form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``), and
a small evaluator resolves parameters, mappings and conditions for a given parameter set.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).with_name("template.yaml")

Template = dict[str, Any]

# ----------------------------------------------------------------------------- loading


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that knows CloudFormation's short-form intrinsic tags."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)
# CloudFormation has no YAML timestamps: keep "2010-09-09" a string even when unquoted.
_CfnLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in _CfnLoader.yaml_implicit_resolvers.items()
}


def load_template(path: Path | str | None = None) -> Template:
    """Load the template (default: ``infra/template.yaml``) with the intrinsics in long form."""
    text = Path(path or TEMPLATE_PATH).read_text(encoding="utf-8")
    data = yaml.load(text, Loader=_CfnLoader)
    if not isinstance(data, dict):
        raise TypeError(f"{path or TEMPLATE_PATH}: not a CloudFormation template")
    return data


# -------------------------------------------------------------------------- evaluation

PSEUDO_PARAMETERS: dict[str, str] = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "imgpipe",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/imgpipe/0",
}


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()
_SUB_VAR = re.compile(r"\$\{([^}!]+)\}")


class Evaluator:
    """Resolve intrinsics for one set of parameter values.

    ``Ref`` to a parameter gives its value. ``physical`` gives what CloudFormation would:
    ``{"JobsQueue": url, "JobsQueue.Arn": arn, ...}`` for ``Ref`` and ``GetAtt`` of resources
    that exist (the local stack passes the ones it created). Without an entry, ``Ref`` to a
    bucket gives its (resolved) ``BucketName`` when set, and any other resource reference or
    ``GetAtt`` a placeholder ``"<Logical>"`` / ``"<Logical.Attr>"``, so identity comparisons
    stay meaningful. ``pseudo`` overrides pseudo parameters such as ``AWS::Region``.
    """

    def __init__(
        self,
        template: Template,
        parameters: Mapping[str, Any] | None = None,
        physical: Mapping[str, str] | None = None,
        pseudo: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.physical = dict(physical or {})
        self.pseudo = {**PSEUDO_PARAMETERS, **(pseudo or {})}
        self.params: dict[str, Any] = {}
        for name, spec in (template.get("Parameters") or {}).items():
            value = (parameters or {}).get(name, spec.get("Default"))
            if value is None:
                raise ValueError(f"parameter {name} has no default and no value")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = [v.strip() for v in value.split(",")] if value else []
            self.params[name] = value if isinstance(value, list) else str(value)
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.physical:
            return self.physical[name]
        resource = (self.template.get("Resources") or {}).get(name)
        if resource is None:
            raise KeyError(f"unresolved Ref {name!r}")
        if resource.get("Type") == "AWS::S3::Bucket":
            bucket_name = (resource.get("Properties") or {}).get("BucketName")
            if bucket_name is not None:
                return self.resolve(bucket_name)
        return f"<{name}>"

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            var = match.group(1)
            if var in variables:
                return str(variables[var])
            if "." in var:
                return self.physical.get(var, f"<{var}>")
            return str(self.ref(var))

        return _SUB_VAR.sub(replace, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else arg
                attribute = f"{parts[0]}.{parts[1]}"
                return self.physical.get(attribute, f"<{attribute}>")
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self._sub(arg, {})
                text, variables = arg
                return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if key == "Fn::FindInMap":
                m, k1, k2 = (self.resolve(a) for a in arg)
                return self.template["Mappings"][m][str(k1)][str(k2)]
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if key == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(i) for i in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key.startswith("Fn::"):
                raise NotImplementedError(f"intrinsic {key} is not supported")
        out: dict[str, Any] = {}
        for key, value in node.items():
            resolved = self.resolve(value)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources present under these parameters, resolved, SAM Globals merged."""
        globals_fn = (self.template.get("Globals") or {}).get("Function") or {}
        out: dict[str, dict[str, Any]] = {}
        for name, res in (self.template.get("Resources") or {}).items():
            if "Condition" in res and not self.condition(res["Condition"]):
                continue
            res = copy.deepcopy(res)
            if res.get("Type") == "AWS::Serverless::Function":
                res["Properties"] = _merge_globals(globals_fn, res.get("Properties") or {})
            out[name] = {
                "Type": res.get("Type"),
                "Properties": self.resolve(res.get("Properties") or {}),
            }
        return out


def _merge_globals(globals_fn: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = copy.deepcopy(dict(globals_fn))
    for key, value in props.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_globals(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# ------------------------------------------------------------------ what the stack uses


@dataclass(frozen=True)
class StackSettings:
    """The numbers the local stack must share with the deployed one."""

    function_timeout: int
    memory_size: int
    visibility_timeout: int
    queue_retention: int
    max_message_size: int
    receive_wait_time: int
    max_receive_count: int
    dlq_retention: int
    batch_size: int
    batching_window: int
    max_concurrency: int
    report_batch_item_failures: bool
    environment: dict[str, str]

    @property
    def queue_attributes(self) -> dict[str, str]:
        """``CreateQueue`` attributes of the jobs queue, minus the DLQ ARN (``RedrivePolicy``)."""
        return {
            "VisibilityTimeout": str(self.visibility_timeout),
            "MessageRetentionPeriod": str(self.queue_retention),
            "MaximumMessageSize": str(self.max_message_size),
            "ReceiveMessageWaitTimeSeconds": str(self.receive_wait_time),
        }

    @property
    def dlq_attributes(self) -> dict[str, str]:
        return {"MessageRetentionPeriod": str(self.dlq_retention)}

    def redrive_policy(self, dlq_arn: str) -> str:
        """The jobs queue's ``RedrivePolicy`` attribute for a given DLQ ARN."""
        return json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(self.max_receive_count)}
        )


PROCESS_FUNCTION = "ProcessFunction"
JOBS_QUEUE = "JobsQueue"


def stack_settings(
    template: Template | None = None, parameters: Mapping[str, Any] | None = None
) -> StackSettings:
    """Resolve the process function, its SQS event and the queues for ``parameters``
    (template defaults when omitted)."""
    tpl = template if template is not None else load_template()
    ev = Evaluator(tpl, parameters)
    res = ev.resources()
    fn = res[PROCESS_FUNCTION]["Properties"]
    (event,) = [e["Properties"] for e in fn["Events"].values() if e["Type"] == "SQS"]
    queue_name = _logical_id(event["Queue"])
    queue = res[queue_name]["Properties"]
    redrive = queue["RedrivePolicy"]
    dlq = res[_logical_id(redrive["deadLetterTargetArn"])]["Properties"]
    env = {k: str(v) for k, v in (fn.get("Environment") or {}).get("Variables", {}).items()}
    return StackSettings(
        function_timeout=int(fn.get("Timeout", 3)),
        memory_size=int(fn.get("MemorySize", 128)),
        visibility_timeout=int(queue.get("VisibilityTimeout", 30)),
        queue_retention=int(queue.get("MessageRetentionPeriod", 345600)),
        max_message_size=int(queue.get("MaximumMessageSize", 262144)),
        receive_wait_time=int(queue.get("ReceiveMessageWaitTimeSeconds", 0)),
        max_receive_count=int(redrive["maxReceiveCount"]),
        dlq_retention=int(dlq.get("MessageRetentionPeriod", 345600)),
        batch_size=int(event.get("BatchSize", 10)),
        batching_window=int(event.get("MaximumBatchingWindowInSeconds", 0)),
        max_concurrency=int((event.get("ScalingConfig") or {}).get("MaximumConcurrency", 1000)),
        report_batch_item_failures="ReportBatchItemFailures"
        in (event.get("FunctionResponseTypes") or []),
        environment=env,
    )


def _logical_id(placeholder: Any) -> str:
    """``"<JobsQueue.Arn>"`` or ``"<JobsQueue>"`` -> ``"JobsQueue"``."""
    text = str(placeholder)
    if not (text.startswith("<") and text.endswith(">")):
        raise ValueError(f"{text!r} does not reference a resource of this template")
    return text[1:-1].split(".", 1)[0]


# --------------------------------------------------------------------------- invariants

# Sample values that switch every optional branch of the template on.
OPTIONAL_PARAMETER_SAMPLES: dict[str, str] = {
    "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
    "AlarmEmail": "ops@example.com",
    "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:imgpipe-alarms",
    "NotificationPrefix": "uploads/",
    "Workers": "2",
    "ProcessedExpireDays": "365",
    "RawExpireDays": "0",
    "BackfillSourceBuckets": "legacy-photos,archive.example.com",
}


def parameter_variants(template: Template) -> Iterator[dict[str, str]]:
    """The defaults, then one variant per allowed value and per optional sample."""
    yield {}
    for name, spec in (template.get("Parameters") or {}).items():
        for value in spec.get("AllowedValues") or []:
            if str(value) != str(spec.get("Default")):
                yield {name: str(value)}
        if name in OPTIONAL_PARAMETER_SAMPLES:
            yield {name: OPTIONAL_PARAMETER_SAMPLES[name]}
    yield {k: v for k, v in OPTIONAL_PARAMETER_SAMPLES.items() if k != "AlarmEmail"}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _statements(document: Any) -> list[dict[str, Any]]:
    return [s for s in _as_list((document or {}).get("Statement")) if isinstance(s, dict)]


def _is_wildcard_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any("*" in _as_list(v) for v in principal.values())
    return False


def _services(principal: Any) -> list[Any]:
    return _as_list(principal.get("Service")) if isinstance(principal, dict) else []


Resources = dict[str, dict[str, Any]]


def _sqs_event_sources(res: Resources) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(function logical id, function properties, SQS event properties)."""
    for name, r in res.items():
        if r["Type"] == "AWS::Serverless::Function":
            for event in (r["Properties"].get("Events") or {}).values():
                if event.get("Type") == "SQS":
                    yield name, r["Properties"], event.get("Properties") or {}
        elif r["Type"] == "AWS::Lambda::EventSourceMapping":
            fn = res.get(_logical_id(r["Properties"]["FunctionName"]), {})
            props = dict(r["Properties"], Queue=r["Properties"].get("EventSourceArn"))
            yield _logical_id(r["Properties"]["FunctionName"]), fn.get("Properties", {}), props


def _check_visibility(res: Resources) -> Iterator[str]:
    found = False
    for fn_name, fn, event in _sqs_event_sources(res):
        found = True
        queue = res.get(_logical_id(event.get("Queue")), {}).get("Properties", {})
        timeout = int(fn.get("Timeout", 3))
        visibility = int(queue.get("VisibilityTimeout", 30))
        if visibility < 6 * timeout:
            yield f"{fn_name}: visibility timeout {visibility} < 6 x function timeout {timeout}"
    if not found:
        yield "no SQS event source found"


def _check_report_batch_item_failures(res: Resources) -> Iterator[str]:
    for fn_name, _, event in _sqs_event_sources(res):
        if "ReportBatchItemFailures" not in _as_list(event.get("FunctionResponseTypes")):
            yield f"{fn_name}: SQS event lacks FunctionResponseTypes [ReportBatchItemFailures]"


def _check_dlq(res: Resources) -> Iterator[str]:
    for fn_name, _, event in _sqs_event_sources(res):
        queue_id = _logical_id(event.get("Queue"))
        queue = res.get(queue_id, {}).get("Properties", {})
        redrive = queue.get("RedrivePolicy")
        if not isinstance(redrive, dict):
            yield f"{queue_id} (source of {fn_name}) has no RedrivePolicy"
            continue
        if str(redrive.get("maxReceiveCount")) != "5":
            yield f"{queue_id}: maxReceiveCount is {redrive.get('maxReceiveCount')}, not 5"
        target = str(redrive.get("deadLetterTargetArn"))
        if not target.startswith("<"):
            yield f"{queue_id}: DLQ {target} is not a queue of this stack"
            continue
        dlq = res.get(_logical_id(target), {})
        if dlq.get("Type") != "AWS::SQS::Queue":
            yield f"{queue_id}: DLQ {target} is not an SQS queue"
        elif int(dlq["Properties"].get("MessageRetentionPeriod", 345600)) < 1209600:
            yield f"{queue_id}: DLQ retention is below 14 days"


def _bucket_policies(res: Resources) -> dict[str, list[dict[str, Any]]]:
    """Bucket logical id -> statements of its bucket policies."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in res.values():
        if r["Type"] == "AWS::S3::BucketPolicy":
            bucket = _logical_id_of_bucket(res, r["Properties"].get("Bucket"))
            out.setdefault(bucket, []).extend(_statements(r["Properties"].get("PolicyDocument")))
    return out


def _logical_id_of_bucket(res: Resources, ref: Any) -> str:
    for name, r in res.items():
        if r["Type"] == "AWS::S3::Bucket" and r["Properties"].get("BucketName", f"<{name}>") == ref:
            return name
    return str(ref)


def _check_buckets_private(res: Resources) -> Iterator[str]:
    policies = _bucket_policies(res)
    for name, r in res.items():
        if r["Type"] != "AWS::S3::Bucket":
            continue
        props = r["Properties"]
        pab = props.get("PublicAccessBlockConfiguration") or {}
        for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls"):
            if pab.get(flag) is not True:
                yield f"{name}: PublicAccessBlockConfiguration.{flag} is not true"
        if pab.get("RestrictPublicBuckets") is not True:
            yield f"{name}: PublicAccessBlockConfiguration.RestrictPublicBuckets is not true"
        if props.get("AccessControl") not in (None, "Private", "BucketOwnerFullControl"):
            yield f"{name}: canned ACL {props['AccessControl']}"
        if "WebsiteConfiguration" in props:
            yield f"{name}: website hosting is enabled"
        for stmt in policies.get(name, []):
            if stmt.get("Effect") == "Allow" and _is_wildcard_principal(stmt.get("Principal")):
                yield f"{name}: bucket policy allows Principal '*'"
            allow = stmt.get("Effect") == "Allow"
            if allow and _services(stmt.get("Principal")) and not stmt.get("Condition"):
                yield f"{name}: service principal allowed without a source condition"


def _check_buckets_encrypted_tls(res: Resources) -> Iterator[str]:
    policies = _bucket_policies(res)
    for name, r in res.items():
        if r["Type"] != "AWS::S3::Bucket":
            continue
        sse = (r["Properties"].get("BucketEncryption") or {}).get(
            "ServerSideEncryptionConfiguration"
        )
        if not sse:
            yield f"{name}: no default encryption"
        tls_only = any(
            s.get("Effect") == "Deny"
            and (s.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport")
            in ("false", False)
            for s in policies.get(name, [])
        )
        if not tls_only:
            yield f"{name}: no TLS-only (aws:SecureTransport) deny statement"


_POLICY_DOCUMENT_TYPES = (
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
)


def _iam_statements(res: Resources) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every permission statement: roles, policies, function inline policies,
    bucket and queue policies. Trust policies are not permissions and are skipped."""
    for name, r in res.items():
        props, kind = r["Properties"], r["Type"]
        if kind == "AWS::IAM::Role":
            for policy in _as_list(props.get("Policies")):
                for s in _statements(policy.get("PolicyDocument")):
                    yield f"{name}/{policy.get('PolicyName')}", s
        elif kind in _POLICY_DOCUMENT_TYPES:
            for s in _statements(props.get("PolicyDocument")):
                yield name, s
        elif kind == "AWS::Serverless::Function":
            for policy in _as_list(props.get("Policies")):
                if isinstance(policy, dict) and "Statement" in policy:
                    for s in _statements(policy):
                        yield name, s


def _check_iam_scoped(res: Resources) -> Iterator[str]:
    # The raw bucket is the one that notifies: nothing may write to it but presigned uploads.
    raw_buckets = [
        n
        for n, r in res.items()
        if r["Type"] == "AWS::S3::Bucket" and "NotificationConfiguration" in r["Properties"]
    ]
    for name, r in res.items():
        props = r["Properties"]
        if r["Type"] == "AWS::IAM::Role" and props.get("ManagedPolicyArns"):
            yield f"{name}: managed policies are not reviewable here ({props['ManagedPolicyArns']})"
        if r["Type"] == "AWS::Serverless::Function":
            if "Role" not in props:
                yield f"{name}: no explicit Role (SAM would attach a managed policy)"
            for policy in _as_list(props.get("Policies")):
                if not (isinstance(policy, dict) and "Statement" in policy):
                    yield f"{name}: managed policy or SAM policy template {policy!r}"
    for where, stmt in _iam_statements(res):
        if stmt.get("Effect") != "Allow":
            continue  # a Deny may be broad: it only narrows
        sid = stmt.get("Sid", "?")
        if "NotAction" in stmt or "NotResource" in stmt:
            yield f"{where}/{sid}: NotAction/NotResource in an Allow"
        for action in _as_list(stmt.get("Action")):
            if "*" in str(action):
                yield f"{where}/{sid}: wildcard action {action!r}"
        resources = _as_list(stmt.get("Resource"))
        if not resources:
            yield f"{where}/{sid}: no Resource"
        for resource in resources:
            if str(resource) == "*" or str(resource).endswith(":::*"):
                yield f"{where}/{sid}: wildcard resource {resource!r}"
        if _is_wildcard_principal(stmt.get("Principal")):
            yield f"{where}/{sid}: wildcard principal"
        writes = [a for a in _as_list(stmt.get("Action")) if str(a).startswith("s3:Put")]
        for resource in resources if writes else []:
            for bucket in raw_buckets:
                if str(resource).startswith(f"<{bucket}.Arn>") and not str(resource).startswith(
                    f"<{bucket}.Arn>/uploads/"
                ):
                    yield f"{where}/{sid}: writes to the raw bucket outside uploads/"


def _functions_env(res: Resources) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, r in res.items():
        if r["Type"] in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            env = (r["Properties"].get("Environment") or {}).get("Variables") or {}
            yield name, env


def _check_buckets_differ(res: Resources) -> Iterator[str]:
    for name, env in _functions_env(res):
        raw, out = env.get("IMGPIPE_RAW_BUCKET"), env.get("IMGPIPE_OUTPUT_BUCKET")
        if raw is None or out is None:
            yield f"{name}: IMGPIPE_RAW_BUCKET / IMGPIPE_OUTPUT_BUCKET not both set"
        elif raw == out:
            yield f"{name}: raw and output bucket are the same ({raw})"


def _check_cloudfront_oac(res: Resources) -> Iterator[str]:
    dists = {n: r for n, r in res.items() if r["Type"] == "AWS::CloudFront::Distribution"}
    if not dists:
        yield "no CloudFront distribution"
    policies = _bucket_policies(res)
    for name, r in dists.items():
        config = r["Properties"].get("DistributionConfig") or {}
        for origin in _as_list(config.get("Origins")):
            if "S3OriginConfig" not in origin:
                continue
            if (origin["S3OriginConfig"] or {}).get("OriginAccessIdentity"):
                yield f"{name}/{origin.get('Id')}: uses a legacy OAI"
            oac_ref = origin.get("OriginAccessControlId")
            oac = res.get(_logical_id(oac_ref), {}) if str(oac_ref).startswith("<") else {}
            oac_config = (oac.get("Properties") or {}).get("OriginAccessControlConfig") or {}
            if oac.get("Type") != "AWS::CloudFront::OriginAccessControl":
                yield f"{name}/{origin.get('Id')}: no OriginAccessControl"
            elif oac_config.get("SigningBehavior") != "always":
                yield f"{name}/{origin.get('Id')}: OAC does not always sign"
            bucket = _logical_id(str(origin.get("DomainName")))
            allowed = [
                s
                for s in policies.get(bucket, [])
                if s.get("Effect") == "Allow"
                and _services(s.get("Principal")) == ["cloudfront.amazonaws.com"]
            ]
            if not allowed:
                yield f"{name}: bucket {bucket} does not grant cloudfront.amazonaws.com"
            for s in allowed:
                source = (s.get("Condition") or {}).get("StringEquals", {}).get("AWS:SourceArn")
                if f"distribution/<{name}>" not in str(source):
                    yield f"{name}: bucket {bucket} grant lacks AWS:SourceArn of this distribution"
        behaviors = [config.get("DefaultCacheBehavior") or {}]
        behaviors += _as_list(config.get("CacheBehaviors"))
        for behavior in behaviors:
            if behavior.get("ViewerProtocolPolicy") not in ("redirect-to-https", "https-only"):
                yield f"{name}: viewer protocol policy allows plain HTTP"


def _check_queues(res: Resources) -> Iterator[str]:
    for name, r in res.items():
        if r["Type"] == "AWS::SQS::Queue":
            props = r["Properties"]
            if not (props.get("SqsManagedSseEnabled") or props.get("KmsMasterKeyId")):
                yield f"{name}: no server-side encryption"
        if r["Type"] == "AWS::SQS::QueuePolicy":
            for s in _statements(r["Properties"].get("PolicyDocument")):
                if s.get("Effect") != "Allow":
                    continue
                if s.get("Principal") != {"Service": "s3.amazonaws.com"} and s.get("Principal") != {
                    "Service": ["s3.amazonaws.com"]
                }:
                    yield f"{name}: queue policy allows {s.get('Principal')!r}"
                cond = s.get("Condition") or {}
                source_arn = (cond.get("ArnEquals") or cond.get("ArnLike") or {}).get(
                    "aws:SourceArn"
                )
                if (
                    not source_arn
                    or (cond.get("StringEquals") or {}).get("aws:SourceAccount")
                    != PSEUDO_PARAMETERS["AWS::AccountId"]
                ):
                    yield f"{name}: queue policy lacks aws:SourceArn / aws:SourceAccount"
                raw = [
                    b
                    for b in res.values()
                    if b["Type"] == "AWS::S3::Bucket"
                    and f"arn:aws:s3:::{b['Properties'].get('BucketName')}" == source_arn
                ]
                if not raw:
                    yield f"{name}: aws:SourceArn {source_arn} is not a bucket of this stack"


INVARIANTS: dict[str, Callable[[Resources], Iterator[str]]] = {
    "visibility": _check_visibility,
    "report_batch_item_failures": _check_report_batch_item_failures,
    "dlq": _check_dlq,
    "buckets_private": _check_buckets_private,
    "buckets_encrypted_tls": _check_buckets_encrypted_tls,
    "iam_scoped": _check_iam_scoped,
    "buckets_differ": _check_buckets_differ,
    "cloudfront_oac": _check_cloudfront_oac,
    "queues": _check_queues,
}


def check_invariants(template: Template | None = None) -> list[str]:
    """All violations, as ``"invariant: detail [parameters]"``, over every parameter variant."""
    tpl = template if template is not None else load_template()
    violations: list[str] = []
    for params in parameter_variants(tpl):
        res = Evaluator(tpl, params).resources()
        for invariant, check in INVARIANTS.items():
            for detail in check(res):
                line = f"{invariant}: {detail} {params or '[defaults]'}"
                if line not in violations:
                    violations.append(line)
    return violations
