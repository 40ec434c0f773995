"""Process environment that keeps every library offline, quiet and out of $HOME.

Applied once, before heavy imports, by every entry point (CLI, tests). Values already set by
the caller win, so an operator can still point PREFECT_HOME or MLflow elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_QUIET = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "LANCEDB_LOG": "error",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TQDM_DISABLE": "1",
    # ltrr_core logs (e.g. encoding progress) show up in Prefect run logs; outside a flow run they
    # go to the console only, without a warning per line that there is no run to send them to.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "ltrr",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}


def apply_offline_env(data_dir: Path | str) -> None:
    """Set the offline/quiet variables and point every library's state under ``data_dir``."""
    data_dir = Path(data_dir).resolve()
    for key, value in OFFLINE_QUIET.items():
        os.environ.setdefault(key, value)
    state_dirs = {
        "PREFECT_HOME": data_dir / "prefect",
        "HF_HOME": data_dir / "hf",
        "MPLCONFIGDIR": data_dir / "matplotlib",
        "NUMBA_CACHE_DIR": data_dir / "numba",
        "IR_DATASETS_HOME": data_dir / "ir_datasets",  # ranx imports ir_datasets, which writes ~/.ir_datasets
        # onnxruntime writes a device id under $XDG_CACHE_HOME (default ~/.cache) when imported
        "XDG_CACHE_HOME": data_dir / "cache-home",
    }
    for key, path in state_dirs.items():
        os.environ.setdefault(key, str(path))
        Path(os.environ[key]).mkdir(parents=True, exist_ok=True)
