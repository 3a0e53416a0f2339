"""The mail phase: mailboxes, their folders and items carried into the trust tenant after users (registered on
import)."""

from migrations.mail.phase import MailPhase

__all__ = ["MailPhase"]
