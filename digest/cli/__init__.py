"""Command-line interface: the only place that reads the clock and maps errors to exit codes.

Commands live in submodules, one per area, and register themselves on ``main``.
"""

from __future__ import annotations

from digest.cli import core as _core  # noqa: F401  (registers commands)
from digest.cli import deliveries as _deliveries  # noqa: F401  (registers commands)
from digest.cli import ranking as _ranking  # noqa: F401  (registers commands)
from digest.cli import sources as _sources  # noqa: F401  (registers commands)
from digest.cli import subscribers as _subscribers  # noqa: F401  (registers commands)
from digest.cli import web as _web  # noqa: F401  (registers commands)
from digest.cli.base import main

__all__ = ["main"]
