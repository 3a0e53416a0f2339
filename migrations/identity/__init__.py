"""The identity phases: users (with licences), groups (with owners) and memberships (registered on import,
with their operations: the runner and rollback find an operation by name)."""

from migrations.identity import licence_groups, steps
from migrations.identity.phase import IdentityPhase

__all__ = ["IdentityPhase", "licence_groups", "steps"]
