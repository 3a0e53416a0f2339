"""The baseline as CrossGuard rules. `rules` is plain Python tests import; `__main__` serves the pack."""
