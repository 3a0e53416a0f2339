"""The files phase: OneDrives and shared libraries copied into the trust tenant (registered on import)."""

from migrations.files.phase import FilesPhase

__all__ = ["FilesPhase"]
