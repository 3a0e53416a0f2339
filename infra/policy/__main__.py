"""The CrossGuard pack: `pulumi preview --policy-pack infra/policy`. Constructing PolicyPack serves forever,
so tests import infra.policy.rules instead of this file."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from infra.policy.rules import RULES, STACK_RULES, StackResource


def _resource_policy(rule):  # type: ignore[no-untyped-def]
    def validate(args, report_violation):  # type: ignore[no-untyped-def]
        if rule.types is None or args.resource_type in rule.types:
            for message in rule.check(args.resource_type, dict(args.props)):
                report_violation(message)

    return ResourceValidationPolicy(
        name=rule.name,
        description=f"{rule.description} (baseline row {rule.baseline_row})",
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY,
    )


def _stack_policy(rule):  # type: ignore[no-untyped-def]
    def validate(args, report_violation):  # type: ignore[no-untyped-def]
        resources = [
            StackResource(r.urn, r.resource_type, dict(r.props), r.props.get("id")) for r in args.resources
        ]
        for urn, message in rule.check(resources):
            report_violation(message, None if urn == "stack" else urn)

    return StackValidationPolicy(
        name=rule.name,
        description=f"{rule.description} (baseline row {rule.baseline_row})",
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY,
    )


PolicyPack(
    name="trustfold-baseline",
    policies=[*(_resource_policy(r) for r in RULES), *(_stack_policy(r) for r in STACK_RULES)],
)
