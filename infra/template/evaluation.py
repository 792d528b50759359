"""Resolve the template for one parameter set, and the settings the local stack shares with it.

The SAM template is the source of truth for the queue and event-source numbers (visibility
timeout, ``maxReceiveCount``, batch size, batching window, retention...). The local stack
provisions moto from :func:`stack_settings` and :class:`Evaluator`, so both sides agree by
construction; the project's cfn-lint rules check the template under :func:`parameter_variants`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from infra.template.loading import Template, load_template

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
            if key == "Fn::Contains":  # a rule function: [list of strings, string]
                items, value = (self.resolve(x) for x in arg)
                return str(value) in {str(item) for item in items}
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

    def refusals(self) -> list[str]:
        """What the template's ``Rules`` say about these parameters: the description of every
        assertion that fails where its rule applies. CloudFormation refuses such a stack."""
        refused = []
        for name, rule in (self.template.get("Rules") or {}).items():
            if "RuleCondition" in rule and not self.resolve(rule["RuleCondition"]):
                continue
            for assertion in rule.get("Assertions") or []:
                if not self.resolve(assertion["Assert"]):
                    description = assertion.get("AssertDescription", "assertion failed")
                    refused.append(f"{name}: {' '.join(str(description).split())}")
        return refused

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


def stack_settings(
    template: Template | None = None, parameters: Mapping[str, Any] | None = None
) -> StackSettings:
    """Resolve the process function, its SQS event and the queues for ``parameters``
    (template defaults when omitted)."""
    tpl = template if template is not None else load_template()
    ev = Evaluator(tpl, parameters)
    refused = ev.refusals()
    if refused:
        raise ValueError(f"the template's Rules refuse these parameters: {'; '.join(refused)}")
    res = ev.resources()
    fn = res[PROCESS_FUNCTION]["Properties"]
    (event,) = [e["Properties"] for e in fn["Events"].values() if e["Type"] == "SQS"]
    queue_name = logical_id(event["Queue"])
    queue = res[queue_name]["Properties"]
    redrive = queue["RedrivePolicy"]
    dlq = res[logical_id(redrive["deadLetterTargetArn"])]["Properties"]
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


def logical_id(placeholder: Any) -> str:
    """``"<JobsQueue.Arn>"`` or ``"<JobsQueue>"`` -> ``"JobsQueue"``."""
    text = str(placeholder)
    if not (text.startswith("<") and text.endswith(">")):
        raise ValueError(f"{text!r} does not reference a resource of this template")
    return text[1:-1].split(".", 1)[0]


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
    "MaximumBatchingWindowInSeconds": "300",
}
# Sets that must be checked together (one alone would be refused, or would not show the case).
PARAMETER_COMBINATIONS: tuple[dict[str, str], ...] = (
    {"BatchSize": "10000", "MaximumBatchingWindowInSeconds": "1", "Timeout": "30"},
)


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
    yield from PARAMETER_COMBINATIONS
