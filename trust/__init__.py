"""The trust, declared: reads config/ into one validated, immutable model and owns every naming rule."""

from trust.errors import ConfigError
from trust.load import TenantRef, Trust, load_trust
from trust.model import AcademyFile as Academy
from trust.model import LibraryMap
from trust.naming import Names

__all__ = ["Academy", "ConfigError", "LibraryMap", "Names", "TenantRef", "Trust", "load_trust"]
