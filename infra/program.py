"""The whole trust cloud from one Trust: used by `pulumi up` (__main__) and by `trustfold infra check`."""

from __future__ import annotations

import os
from pathlib import Path

import pulumi

from trust import Trust, load_trust

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config"


def config_dir() -> Path:
    """Pulumi config trustfold:configDir, else TRUSTFOLD_CONFIG_DIR, else the repository's config/."""
    try:
        configured = pulumi.Config("trustfold").get("configDir")
    except Exception:
        configured = None
    return Path(configured or os.environ.get("TRUSTFOLD_CONFIG_DIR") or REPO_CONFIG)


def declare(trust: Trust) -> dict[str, object]:
    from infra.entra import EntraStructure
    from infra.landing_zone import AcademyLandingZone
    from infra.platform import TrustPlatform

    platform = TrustPlatform("platform", trust)
    entra = EntraStructure("entra", trust)
    zones = {
        a.code: AcademyLandingZone(
            trust,
            a,
            workspace_id=platform.workspace_id,
            hub_network_id=platform.hub_network_id,
            hub_network_name=platform.hub_network_name,
            hub_resource_group=platform.resource_group_name,
            it_admin_group_id=entra.it_admin_group_ids[a.code],
            action_group_id=platform.action_group_id,
        )
        for a in trust.academies
    }
    return {"platform": platform, "entra": entra, "zones": zones}


def main() -> None:
    trust = load_trust(config_dir())
    declared = declare(trust)
    pulumi.export("workspace_id", declared["platform"].workspace_id)  # type: ignore[attr-defined]
    pulumi.export(
        "academies",
        {
            code: {"resource_group": z.resource_group_name, "storage_account": z.storage_account_name}
            for code, z in declared["zones"].items()
        },
    )  # type: ignore[attr-defined]
