"""The buckets: private, encrypted, TLS-only, and raw != processed (the recursion guard)."""

from __future__ import annotations

from collections.abc import Iterator

from infra.template.rules.policies import bucket_policies, is_wildcard_principal, services
from infra.template.rules.resolved import Finding, ResolvedTemplateRule, Resources, of_type

_PUBLIC_ACCESS_BLOCKS = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls")


class BucketsPrivate(ResolvedTemplateRule):
    id = "E9004"
    shortdesc = "Buckets are private"
    description = (
        "Every bucket blocks public access (all four flags), has no public canned ACL and no "
        "website hosting, and its policy allows neither Principal '*' nor a service principal "
        "without a source condition."
    )

    def findings(self, resources: Resources) -> Iterator[Finding]:
        policies = bucket_policies(resources)
        for name, props in of_type(resources, "AWS::S3::Bucket"):
            pab = props.get("PublicAccessBlockConfiguration") or {}
            for flag in (*_PUBLIC_ACCESS_BLOCKS, "RestrictPublicBuckets"):
                if pab.get(flag) is not True:
                    message = f"PublicAccessBlockConfiguration.{flag} is not true"
                    yield Finding(name, f"{name}: {message}")
            if props.get("AccessControl") not in (None, "Private", "BucketOwnerFullControl"):
                yield Finding(name, f"{name}: canned ACL {props['AccessControl']}")
            if "WebsiteConfiguration" in props:
                yield Finding(name, f"{name}: website hosting is enabled")
            for stmt in policies.get(name, []):
                allow = stmt.get("Effect") == "Allow"
                if allow and is_wildcard_principal(stmt.get("Principal")):
                    yield Finding(name, f"{name}: bucket policy allows Principal '*'")
                if allow and services(stmt.get("Principal")) and not stmt.get("Condition"):
                    message = "service principal allowed without a source condition"
                    yield Finding(name, f"{name}: {message}")


class BucketsEncryptedTlsOnly(ResolvedTemplateRule):
    id = "E9005"
    shortdesc = "Buckets are encrypted and TLS-only"
    description = (
        "Every bucket has default encryption and a bucket policy statement that denies "
        "requests without aws:SecureTransport."
    )

    def findings(self, resources: Resources) -> Iterator[Finding]:
        policies = bucket_policies(resources)
        for name, props in of_type(resources, "AWS::S3::Bucket"):
            sse = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration")
            if not sse:
                yield Finding(name, f"{name}: no default encryption")
            tls_only = any(
                s.get("Effect") == "Deny"
                and (s.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport")
                in ("false", False)
                for s in policies.get(name, [])
            )
            if not tls_only:
                message = "no TLS-only (aws:SecureTransport) deny statement"
                yield Finding(name, f"{name}: {message}")


class RawAndOutputBucketsDiffer(ResolvedTemplateRule):
    id = "E9007"
    shortdesc = "Functions write renditions to another bucket than the one they read"
    description = (
        "Every function has IMGPIPE_RAW_BUCKET and IMGPIPE_OUTPUT_BUCKET set, to different "
        "buckets: writing renditions into the notifying bucket would recurse."
    )

    def findings(self, resources: Resources) -> Iterator[Finding]:
        for name, props in of_type(resources, "AWS::Serverless::Function", "AWS::Lambda::Function"):
            env = (props.get("Environment") or {}).get("Variables") or {}
            raw, out = env.get("IMGPIPE_RAW_BUCKET"), env.get("IMGPIPE_OUTPUT_BUCKET")
            if raw is None or out is None:
                message = "IMGPIPE_RAW_BUCKET / IMGPIPE_OUTPUT_BUCKET not both set"
                yield Finding(name, f"{name}: {message}")
            elif raw == out:
                yield Finding(name, f"{name}: raw and output bucket are the same ({raw})")
