"""`trustfold infra check`: declare the program under mocks and judge every resource by the baseline rules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from infra.policy.rules import StackResource, check_resource, check_stack
from trust import Trust

COMPONENT_OF = {"azuread": "trustfold:entra:EntraStructure"}


@dataclass
class CheckedResource:
    urn: str
    type: str
    name: str
    academy: str | None
    properties: dict[str, Any]
    id: str
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Violation:
    urn: str
    policy: str
    message: str
    mandatory: bool


@dataclass
class CheckResult:
    resources: list[CheckedResource] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def mandatory_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.mandatory]

    def to_json(self) -> dict[str, Any]:
        return {
            "resources": [
                {
                    "urn": r.urn,
                    "type": r.type,
                    "name": r.name,
                    "academy": r.academy,
                    "properties": r.properties,
                }
                for r in self.resources
            ],
            "violations": [
                {
                    "urn": v.urn,
                    "policy": v.policy,
                    "message": v.message,
                    "enforcement": "mandatory" if v.mandatory else "advisory",
                }
                for v in self.violations
            ],
        }


def _urn(stack: str, typ: str, name: str, academy: str | None) -> str:
    if typ.startswith("azuread:"):
        parent = COMPONENT_OF["azuread"]
    elif academy:
        parent = "trustfold:landingzone:AcademyLandingZone"
    else:
        parent = "trustfold:platform:TrustPlatform"
    return f"urn:pulumi:{stack}::trustfold::{parent}${typ}::{name}"


@contextmanager
def _without_version_aliases() -> Iterator[None]:
    """azure-native gives every resource ~17 aliases (one per past API version) and the SDK resolves each
    one's URN eagerly: 85% of the check's time. Aliases only steer renames during a real deployment, never
    what is declared, so the mock-only check drops them (measured: identical resources and properties)."""
    import pulumi

    original = pulumi.ResourceOptions.merge

    def merge(opts1: Any, opts2: Any) -> Any:
        if opts2 is not None and opts2.aliases and all(isinstance(a, pulumi.Alias) for a in opts2.aliases):
            opts2.aliases = None
        return original(opts1, opts2)

    pulumi.ResourceOptions.merge = staticmethod(merge)  # type: ignore[method-assign]
    try:
        yield
    finally:
        pulumi.ResourceOptions.merge = staticmethod(original)  # type: ignore[method-assign]


def declared_resources(trust: Trust, stack: str = "check", mutate: Any = None) -> list[CheckedResource]:
    """Every custom resource the program declares for this trust, with its inputs as Pulumi names them.

    `mutate(type, name, inputs)` lets tests break a resource on purpose before it is judged.
    """
    import pulumi

    from infra.mocks import install
    from infra.program import declare

    mocks = install(trust.settings.azure.subscription_id, stack=stack)

    @pulumi.runtime.test
    def run() -> None:
        declare(trust)

    with _without_version_aliases():
        run()
    codes = {a.code for a in trust.academies}
    out = []
    for d in sorted(mocks.resources, key=lambda d: (d.type, d.name)):
        if not d.custom:
            continue
        academy = d.name.split("-", 1)[0]
        academy = academy if academy in codes else None
        props = d.inputs
        if mutate is not None:
            props = mutate(d.type, d.name, props) or props
        out.append(
            CheckedResource(
                _urn(stack, d.type, d.name, academy),
                d.type,
                d.name,
                academy,
                props,
                d.id,
                {**d.outputs, **props},
            )
        )
    return out


def run_check(trust: Trust, mutate: Any = None) -> CheckResult:
    result = CheckResult(resources=declared_resources(trust, mutate=mutate))
    for r in result.resources:
        for rule, message in check_resource(r.type, r.properties):
            result.violations.append(Violation(r.urn, rule.name, message, rule.mandatory))
    # Stack rules see outputs (objectId, ids), as CrossGuard's stack validation does.
    stack = [StackResource(r.urn, r.type, r.outputs, r.id) for r in result.resources]
    for rule, urn, message in check_stack(stack):
        result.violations.append(Violation(urn, rule.name, message, rule.mandatory))
    return result
