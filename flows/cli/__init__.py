"""The ``ltrr`` command line (Typer), one module per command group. Every command takes ``--config``.

Heavy modules are imported inside commands, after the offline environment is applied, so
``ltrr --help`` is instant and nothing reaches for the network or $HOME.
"""

from __future__ import annotations

from . import bench, evaluate, learning, operate, platform  # noqa: F401 - each registers its commands
from .app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
