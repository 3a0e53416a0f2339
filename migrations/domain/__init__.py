"""The domain phase: an academy's email domain leaves its legacy tenant and is verified in the trust tenant
(registered on import)."""

from migrations.domain.phase import DomainPhase

__all__ = ["DomainPhase"]
