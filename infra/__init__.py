"""The trust cloud as code: Pulumi components declared from the same trust/ model the migrations read.

Importing this package imports no Pulumi provider; `infra.program.declare` does, one submodule at a time.
"""
