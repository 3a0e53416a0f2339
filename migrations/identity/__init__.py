"""The identity phases: users (with licences), groups (with owners) and memberships (registered on import)."""

from migrations.identity import steps as _steps  # noqa: F401 - registers the operations the plans name
from migrations.identity.phase import IdentityPhase

__all__ = ["IdentityPhase"]
