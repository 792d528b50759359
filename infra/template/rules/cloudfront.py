"""CloudFront: the processed bucket is read through Origin Access Control only, over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.template.evaluation import logical_id
from infra.template.rules.policies import as_list, bucket_policies, services
from infra.template.rules.resolved import Finding, ResolvedTemplateRule, Resources, of_type


def _origin_findings(
    res: Resources, name: str, origin: dict[str, Any], policies: dict[str, list[dict[str, Any]]]
) -> Iterator[Finding]:
    where = f"{name}/{origin.get('Id')}"
    if (origin["S3OriginConfig"] or {}).get("OriginAccessIdentity"):
        yield Finding(name, f"{where}: uses a legacy OAI")
    oac_ref = origin.get("OriginAccessControlId")
    oac = res.get(logical_id(oac_ref), {}) if str(oac_ref).startswith("<") else {}
    oac_config = (oac.get("Properties") or {}).get("OriginAccessControlConfig") or {}
    if oac.get("Type") != "AWS::CloudFront::OriginAccessControl":
        yield Finding(name, f"{where}: no OriginAccessControl")
    elif oac_config.get("SigningBehavior") != "always":
        yield Finding(name, f"{where}: OAC does not always sign")
    bucket = logical_id(str(origin.get("DomainName")))
    allowed = [
        s
        for s in policies.get(bucket, [])
        if s.get("Effect") == "Allow"
        and services(s.get("Principal")) == ["cloudfront.amazonaws.com"]
    ]
    if not allowed:
        yield Finding(name, f"{name}: bucket {bucket} does not grant cloudfront.amazonaws.com")
    for s in allowed:
        source = (s.get("Condition") or {}).get("StringEquals", {}).get("AWS:SourceArn")
        if f"distribution/<{name}>" not in str(source):
            message = f"bucket {bucket} grant lacks AWS:SourceArn of this distribution"
            yield Finding(name, f"{name}: {message}")


class CloudFrontOacOnly(ResolvedTemplateRule):
    id = "E9008"
    shortdesc = "CloudFront reads S3 origins through OAC only, over HTTPS"
    description = (
        "There is a distribution; each S3 origin uses an Origin Access Control that always "
        "signs (no legacy OAI), the bucket grants cloudfront.amazonaws.com only with this "
        "distribution's AWS:SourceArn, and viewers are redirected to HTTPS."
    )

    def findings(self, resources: Resources) -> Iterator[Finding]:
        dists = dict(of_type(resources, "AWS::CloudFront::Distribution"))
        if not dists:
            yield Finding(None, "no CloudFront distribution")
        policies = bucket_policies(resources)
        for name, props in dists.items():
            config = props.get("DistributionConfig") or {}
            for origin in as_list(config.get("Origins")):
                if "S3OriginConfig" in origin:
                    yield from _origin_findings(resources, name, origin, policies)
            behaviors = [config.get("DefaultCacheBehavior") or {}]
            behaviors += as_list(config.get("CacheBehaviors"))
            for behavior in behaviors:
                if behavior.get("ViewerProtocolPolicy") not in ("redirect-to-https", "https-only"):
                    yield Finding(name, f"{name}: viewer protocol policy allows plain HTTP")
