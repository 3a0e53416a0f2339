"""The identity phases: users (with licences), groups (with owners) and memberships (registered on import)."""

from migrations.identity.phase import IdentityPhase

__all__ = ["IdentityPhase"]
