"""What every part of the documentation generator shares: the repository root, the schema
and metric namespace, the error its author fixes, and TOML."""
from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMA = "paper_engine"
METRIC_NAMESPACE = "paper_engine_loader"


class DocsError(Exception):
    """A problem the documentation's author has to fix."""
