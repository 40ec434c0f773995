"""Progress of long loops (encoding, simulation, evaluation): a rich bar with its ETA on a
terminal, a plain line every ``PLAIN_EVERY`` of the way (with the rate and the ETA) when the output
is a file or a CI log, where a live bar would print nothing: to the run's logs inside a Prefect flow,
else to stderr."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

PLAIN_EVERY = 0.1  # share of the total between two plain lines
T = TypeVar("T")
_log = logging.getLogger("ltrr.progress")


@contextmanager
def progress(description: str, total: int, console: Console | None = None) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n=1)``. A bar (count, elapsed, ETA) when ``console`` (default: stderr) is a
    terminal, else a log line at each tenth of ``total`` and at the end."""
    console = console or Console(stderr=True)
    if console.is_terminal and not console.is_dumb_terminal:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, TextColumn("eta"), TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task(description, total=total)

            def advance(n: int = 1) -> None:
                bar.advance(task, n)

            yield advance
        return
    yield _PlainLines(description, total)


class _PlainLines:
    def __init__(self, description: str, total: int) -> None:
        self.description, self.total, self.done = description, max(total, 1), 0
        self.started = time.monotonic()
        self.next_line = PLAIN_EVERY * self.total

    def __call__(self, n: int = 1) -> None:
        self.done += n
        if self.done < self.next_line and self.done < self.total:
            return
        while self.next_line <= self.done:
            self.next_line += PLAIN_EVERY * self.total
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        line = f"{self.description}: {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), {rate:.1f}/s, eta {eta:.0f} s"
        if _log.isEnabledFor(logging.INFO) and _log.hasHandlers():
            _log.info(line)  # inside a flow: Prefect forwards the `ltrr` loggers to the run's logs
        else:
            print(line, file=sys.stderr, flush=True)


def track(items: Collection[T], description: str) -> Iterator[T]:
    """``items`` with ``progress`` around them."""
    with progress(description, len(items)) as advance:
        for item in items:
            yield item
            advance(1)
