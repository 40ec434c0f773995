"""Atomic writes: a temporary file renamed into place, with the permissions a plain write gets."""

from __future__ import annotations

import os

import pyarrow as pa

from ltrr_core.durable import write_bytes_atomic, write_parquet


def test_atomically_written_files_get_the_mode_of_the_umask_not_mkstemps_0600(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    write_bytes_atomic(tmp_path / "report.md", b"# results\n")
    write_parquet(pa.table({"a": [1]}), tmp_path / "rows.parquet")
    assert (tmp_path / "report.md").read_bytes() == b"# results\n"
    for name in ("report.md", "rows.parquet"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would, not 0600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
