"""The `mdq` command line: `main` (the group), and `registry` (the process's plugin registry)."""

from .console import registry
from .main import main

__all__ = ["main", "registry"]
