"""Long loops show progress: a bar on a terminal, plain lines with rate and ETA elsewhere (CI)."""

from __future__ import annotations

import io
import logging

from rich.console import Console

from ltrr_core.progress import progress, track


def _plain(n: int) -> None:
    with progress(f"encoding {n} texts", n, Console(file=io.StringIO(), force_terminal=False)) as advance:
        for _ in range(n):
            advance(1)


def test_off_a_terminal_progress_prints_a_line_per_tenth_with_the_eta(capsys):
    ltrr = logging.getLogger("ltrr")
    level = ltrr.level
    ltrr.setLevel(logging.WARNING)  # a command outside a flow: nobody forwards the ltrr loggers
    try:
        _plain(50)
    finally:
        ltrr.setLevel(level)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 10 and lines[0].startswith("encoding 50 texts: 5/50 (10%)")
    assert lines[-1].startswith("encoding 50 texts: 50/50 (100%)") and "eta 0 s" in lines[-1]


def test_on_a_terminal_progress_draws_a_bar_and_prints_no_lines(capsys):
    screen = io.StringIO()
    items = list(range(30))
    with progress("simulating", len(items), Console(file=screen, force_terminal=True, width=100)) as advance:
        for _ in items:
            advance(1)
    assert capsys.readouterr().err == "" and "simulating" in screen.getvalue()
    assert list(track(items, "again")) == items  # track yields every item, in order


def test_inside_a_flow_the_lines_go_to_the_ltrr_logger_prefect_forwards(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="ltrr"):
        _plain(20)
    assert [r.name for r in caplog.records] == ["ltrr.progress"] * 10 and capsys.readouterr().err == ""
