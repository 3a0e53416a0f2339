"""The teams phase: teams, channels and their history carried into the trust tenant (registered on import)."""

from migrations.teams.phase import TeamsPhase

__all__ = ["TeamsPhase"]
