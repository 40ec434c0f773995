"""Task runners from configuration: the same flows on one machine's threads or on Dask workers."""

from __future__ import annotations

from typing import Any

from ltrr_core.config import Settings, TaskRunnerConfig


def task_runner(config: TaskRunnerConfig) -> Any:
    """``thread``: Prefect's thread pool. ``dask``: prefect-dask -- a LocalCluster started for the
    flow run (worker processes on this machine) or, with ``dask_address``, an existing scheduler
    whose workers may sit on other machines (they need the same code, config and storage)."""
    if config.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if config.dask_address:
            return DaskTaskRunner(address=config.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": config.dask_workers,
                "threads_per_worker": config.dask_threads_per_worker,
                "processes": config.dask_processes,
                "dashboard_address": None,
            }
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner()


def with_task_runner(flow: Any, settings: Settings) -> Any:
    return flow.with_options(task_runner=task_runner(settings.orchestration.task_runner))
