"""Build a World from config (and an optional state file), and regenerate it on reset."""

from __future__ import annotations

from pathlib import Path

from sandbox.generator import generate_world_tenants
from sandbox.settings import Settings
from sandbox.world import StateFileError, TenantState, World, load_state


def generate(config_dir: Path, settings: Settings) -> dict[str, TenantState]:
    from sandbox.tenancy import mark_existing_onedrives
    from trust import load_trust

    tenants = generate_world_tenants(load_trust(config_dir), settings.size, settings.seed)
    for tenant in tenants.values():
        mark_existing_onedrives(tenant)
    withhold(tenants, settings)
    return tenants


def withhold(tenants: dict[str, TenantState], settings: Settings) -> None:
    """--withhold-roles: admin consent not given for these roles in any tenant."""
    from sandbox.tenancy import granted

    if not settings.withhold_roles:
        return
    for tenant in tenants.values():
        tenant.granted_roles = sorted(set(granted(tenant)) - set(settings.withhold_roles))


def make_world(config_dir: Path, settings: Settings | None = None, state_path: Path | None = None) -> World:
    """Load the state file if it exists (its seed and size win), else generate and, with a path, save."""
    settings = settings or Settings()
    if state_path is not None and state_path.exists():
        tenants, seed, size = load_state(state_path)
        from trust import load_trust

        declared = {ref.id for ref in load_trust(config_dir).tenants()}
        if declared != set(tenants):
            raise StateFileError(
                f"{state_path}: holds tenants that differ from {config_dir} "
                f"({len(set(tenants) - declared)} unknown, {len(declared - set(tenants))} missing); "
                "delete the file or use another --state to start afresh"
            )
        settings = settings.replace(seed=seed, size=size or settings.size)
        withhold(tenants, settings)
        return World(tenants, settings, config_dir, state_path)
    world = World(generate(config_dir, settings), settings, config_dir, state_path)
    world.save()
    return world


def reset_world(world: World, seed: int | None = None, size: int | None = None) -> None:
    """Regenerate every tenant from config with the world's (or the given) seed and size."""
    if world.config_dir is None:
        raise ValueError("this sandbox was built without a config folder and cannot regenerate")
    changes: dict[str, object] = {}
    if seed is not None:
        changes["seed"] = seed
    if size is not None:
        changes["size"] = size
    if changes:
        world.settings = world.settings.replace(**changes)
    world.replace_tenants(generate(world.config_dir, world.settings))
    world.save()
