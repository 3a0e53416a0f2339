"""Drive, site and file-content routes of the sandbox (owned by the drives work)."""

from __future__ import annotations

from typing import Any


def drive_routes(world: Any) -> list[Any]:
    """Starlette routes mounted under /v1.0 and for download/upload URLs."""
    return []
