"""IAM: every permission is an inline, reviewable Allow on named actions and resources."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.template.rules.policies import as_list, is_wildcard_principal, statements
from infra.template.rules.resolved import Finding, ResolvedTemplateRule, Resources, of_type

_POLICY_DOCUMENT_TYPES = (
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
)


def _permission_statements(res: Resources) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(resource, where, statement) for every permission statement: roles, policies, function
    inline policies, bucket and queue policies. Trust policies are not permissions: skipped."""
    for name, r in res.items():
        props, kind = r["Properties"], r["Type"]
        if kind == "AWS::IAM::Role":
            for policy in as_list(props.get("Policies")):
                for s in statements(policy.get("PolicyDocument")):
                    yield name, f"{name}/{policy.get('PolicyName')}", s
        elif kind in _POLICY_DOCUMENT_TYPES:
            for s in statements(props.get("PolicyDocument")):
                yield name, name, s
        elif kind == "AWS::Serverless::Function":
            for policy in as_list(props.get("Policies")):
                if isinstance(policy, dict) and "Statement" in policy:
                    for s in statements(policy):
                        yield name, name, s


def _unreviewable_policies(res: Resources) -> Iterator[Finding]:
    """Managed policies and SAM policy templates: their permissions are not in this template."""
    for name, r in res.items():
        props = r["Properties"]
        if r["Type"] == "AWS::IAM::Role" and props.get("ManagedPolicyArns"):
            arns = props["ManagedPolicyArns"]
            yield Finding(name, f"{name}: managed policies are not reviewable here ({arns})")
        if r["Type"] == "AWS::Serverless::Function":
            if "Role" not in props:
                message = "no explicit Role (SAM would attach a managed policy)"
                yield Finding(name, f"{name}: {message}")
            for policy in as_list(props.get("Policies")):
                if not (isinstance(policy, dict) and "Statement" in policy):
                    message = f"managed policy or SAM policy template {policy!r}"
                    yield Finding(name, f"{name}: {message}")


def _unscoped_grants(
    resource: str, where: str, stmt: dict[str, Any], raw_buckets: list[str]
) -> Iterator[Finding]:
    sid = stmt.get("Sid", "?")
    if "NotAction" in stmt or "NotResource" in stmt:
        yield Finding(resource, f"{where}/{sid}: NotAction/NotResource in an Allow")
    for action in as_list(stmt.get("Action")):
        if "*" in str(action):
            yield Finding(resource, f"{where}/{sid}: wildcard action {action!r}")
    resources = as_list(stmt.get("Resource"))
    if not resources:
        yield Finding(resource, f"{where}/{sid}: no Resource")
    for arn in resources:
        if str(arn) == "*" or str(arn).endswith(":::*"):
            yield Finding(resource, f"{where}/{sid}: wildcard resource {arn!r}")
    if is_wildcard_principal(stmt.get("Principal")):
        yield Finding(resource, f"{where}/{sid}: wildcard principal")
    writes = [a for a in as_list(stmt.get("Action")) if str(a).startswith("s3:Put")]
    for arn in resources if writes else []:
        for bucket in raw_buckets:
            if str(arn).startswith(f"<{bucket}.Arn>") and not str(arn).startswith(
                f"<{bucket}.Arn>/uploads/"
            ):
                message = "writes to the raw bucket outside uploads/"
                yield Finding(resource, f"{where}/{sid}: {message}")


class IamStatementsScoped(ResolvedTemplateRule):
    id = "E9006"
    shortdesc = "IAM permissions are inline and scoped"
    description = (
        "No managed policies or SAM policy templates; every Allow names its actions and "
        "resources (no '*', no NotAction/NotResource, no wildcard principal); nothing may put "
        "objects into the raw bucket outside uploads/."
    )

    def findings(self, resources: Resources) -> Iterator[Finding]:
        yield from _unreviewable_policies(resources)
        # The raw bucket is the one that notifies: nothing may write to it but presigned uploads.
        raw_buckets = [
            name
            for name, props in of_type(resources, "AWS::S3::Bucket")
            if "NotificationConfiguration" in props
        ]
        for resource, where, stmt in _permission_statements(resources):
            if stmt.get("Effect") == "Allow":  # a Deny may be broad: it only narrows
                yield from _unscoped_grants(resource, where, stmt, raw_buckets)
