"""The offline environment keeps every library's state out of $HOME."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_importing_and_loading_the_stack_writes_nothing_to_home(tmp_path):
    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    code = (
        "from ltrr_core.env import apply_offline_env\n"
        f"apply_offline_env({str(state)!r})\n"
        "import ranx, lancedb, bm25s, great_expectations, prefect, matplotlib.pyplot\n"
        "from ltrr_core.config import load_settings\n"
        "from ltrr_core.index.encoder import Encoder\n"
        "import onnxruntime\n"
        "print(Encoder(load_settings().embedding).encode(['ghosts deadmau5']).shape)\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "HF_", "MPLCONFIGDIR", "NUMBA_", "IR_DATASETS", "XDG_"))
    }
    env["HOME"] = str(home)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("(1, 384)")
    assert sorted(p.name for p in home.iterdir()) == []
    assert (state / "prefect").is_dir()
