"""The permissions phase: item sharing carried into the trust tenant after files (registered on import)."""

from migrations.permissions.phase import PermissionsPhase

__all__ = ["PermissionsPhase"]
