"""Pulumi entry point (Pulumi.yaml: main infra/)."""

import os
import sys

# `pulumi up` runs this file as a script from infra/; make the repository importable either way.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from infra.program import main

main()
