"""Preloaded by the harness's forkserver (``LTRR_RELIABILITY_WARM=1`` in its environment):
compiles bm25s's numba retrieval once (a tiny index, one search), so a child that loads a
runtime (the ranker's evaluation, promotion's smoke gate) does not spend seconds compiling it
again. Leaves no thread running (forking a process with threads is unsafe). Imported anywhere
else, it does nothing."""

from __future__ import annotations

import os

ENV = "LTRR_RELIABILITY_WARM"


def warm() -> None:
    import tqdm

    from ..config import BM25Config
    from ..index.bm25 import BM25Index, BM25Settings

    tqdm.tqdm.monitor_interval = 0  # bm25s's progress bars must not leave a monitor thread to fork
    index = BM25Index.build(
        ["a", "b", "c"],
        ["hello world", "taylor swift love story", "rock music"],
        BM25Settings.from_config(BM25Config()),
    )
    index.search(["taylor swift"], 2)


if os.environ.get(ENV) == "1":
    warm()
