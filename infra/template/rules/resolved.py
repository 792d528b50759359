"""The base of the project's cfn-lint rules: invariants of the stack as it would be deployed.

cfn-lint checks values as written. These invariants are about what a stack gets: a ``*``
resource may appear only when ``KmsKeyArn`` is set, a too-short visibility timeout only under
one ``Timeout``. So each rule looks at the resources :class:`Evaluator` resolves under every
:func:`parameter_variants` set, and reports each finding once, naming the first set that
shows it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any, ClassVar, NamedTuple

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template as LintedTemplate

from infra.template.evaluation import Evaluator, parameter_variants
from infra.template.loading import builtin_data

Resources = dict[str, dict[str, Any]]
Variant = tuple[dict[str, str], Resources]


class Finding(NamedTuple):
    resource: str | None  # logical id; None for the template as a whole
    message: str


# One lint run gives every rule the same template: resolve its ~40 variants once, not per rule.
_VARIANTS: weakref.WeakKeyDictionary[LintedTemplate, list[Variant]] = weakref.WeakKeyDictionary()


def resolved_variants(cfn: LintedTemplate) -> list[Variant]:
    """(parameters, resolved resources) for every parameter variant of ``cfn``."""
    if cfn not in _VARIANTS:
        template = builtin_data(cfn.template)  # resolving cfn-lint's own nodes is ~4x slower
        evaluators = [
            (params, Evaluator(template, params)) for params in parameter_variants(template)
        ]
        # A set that the Rules refuse never becomes a stack, so its resources are not checked.
        _VARIANTS[cfn] = [(p, ev.resources()) for p, ev in evaluators if not ev.refusals()]
    return _VARIANTS[cfn]


def of_type(resources: Resources, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(logical id, properties) of the resources of one of ``types``."""
    for name, r in resources.items():
        if r["Type"] in types:
            yield name, r["Properties"]


class ResolvedTemplateRule(CloudFormationLintRule):  # type: ignore[misc]  # cfn-lint is untyped
    """A rule over resolved resources: subclasses implement :meth:`findings`."""

    tags: ClassVar[list[str]] = ["imgpipe"]

    def findings(self, resources: Resources) -> Iterator[Finding]:
        raise NotImplementedError

    def match(self, cfn: LintedTemplate) -> list[RuleMatch]:
        matches: dict[Finding, RuleMatch] = {}
        for params, resources in resolved_variants(cfn):
            for finding in self.findings(resources):
                if finding not in matches:
                    path = ["Resources", finding.resource] if finding.resource else []
                    message = f"{finding.message} (parameters: {params or 'defaults'})"
                    matches[finding] = RuleMatch(path, message)
        return list(matches.values())
