"""The one sanitising layer for hostile legacy-tenant text, secret redaction, owner-only files."""
