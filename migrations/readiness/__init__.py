"""Readiness: preflight checks, the one-off bootstrap, OneDrive provisioning and the run gate."""
