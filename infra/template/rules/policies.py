"""Reading policy documents and bucket policies out of resolved resources."""

from __future__ import annotations

from typing import Any

from infra.template.rules.resolved import Resources


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def statements(document: Any) -> list[dict[str, Any]]:
    return [s for s in as_list((document or {}).get("Statement")) if isinstance(s, dict)]


def is_wildcard_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any("*" in as_list(v) for v in principal.values())
    return False


def services(principal: Any) -> list[Any]:
    return as_list(principal.get("Service")) if isinstance(principal, dict) else []


def bucket_policies(res: Resources) -> dict[str, list[dict[str, Any]]]:
    """Bucket logical id -> statements of its bucket policies."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in res.values():
        if r["Type"] == "AWS::S3::BucketPolicy":
            bucket = _bucket_logical_id(res, r["Properties"].get("Bucket"))
            out.setdefault(bucket, []).extend(statements(r["Properties"].get("PolicyDocument")))
    return out


def _bucket_logical_id(res: Resources, ref: Any) -> str:
    for name, r in res.items():
        if r["Type"] == "AWS::S3::Bucket" and r["Properties"].get("BucketName", f"<{name}>") == ref:
            return name
    return str(ref)
