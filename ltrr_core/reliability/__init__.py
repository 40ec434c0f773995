"""Fault injection at every write (``ltrr reliability``): each writer of the platform, killed
(SIGKILL) or failed (ENOSPC, EIO) at its writes in a child process, then checked as a reader
sees it -- nothing lost, nothing half-visible, the next run completes, the champion serves."""

from .harness import Outcome, harness_settings, prepare, run_all, run_cell
from .inject import EIO, ENOSPC, FAULTS, KILL, Fault
from .writers import WRITERS

__all__ = [
    "EIO",
    "ENOSPC",
    "FAULTS",
    "KILL",
    "WRITERS",
    "Fault",
    "Outcome",
    "harness_settings",
    "prepare",
    "run_all",
    "run_cell",
]
