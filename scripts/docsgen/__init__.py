"""The documentation generator's parts (scripts/docs.py runs them)."""
