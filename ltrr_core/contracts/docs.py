"""GX Data Docs for contract validations: a GX project under the data directory
(``<data_dir>/data_docs/gx``) whose local site keeps the suites and every validation as static
pages (``.../uncommitted/data_docs/local_site/index.html`` lists them all, night after night), each
validation's page linked from the nightly's report.

``DataDocsRun`` is the suite runner of ``validate_frame`` for a validation that should leave a
page: the one run through the project's checkpoint both decides and is documented, so the rows a
page shows are the rows the contract judged. A project that cannot be written fails nothing: the
suite then runs in a throw-away context and the page is reported as not built."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Settings
from .validate import SuiteRunner, quiet_gx, run_ephemeral

_log = logging.getLogger("ltrr.contracts")


class DataDocsRun:
    """Runs a suite through a checkpoint of the GX project in ``project_root`` whose action
    updates its Data Docs; ``url`` is then the validation's page (None when not built)."""

    def __init__(self, run_name: str, project_root: Path):
        self.run_name = run_name
        self.project_root = Path(project_root)
        self.url: str | None = None

    def __call__(self, frame: pd.DataFrame, suite, result_format: dict[str, Any]):
        try:
            result, self.url = self._checkpoint(frame, suite, result_format)
            return result
        except Exception as error:  # noqa: BLE001 - documentation only: the contract's verdict stands without it
            _log.warning("data docs for %s not built: %s", self.run_name, error)
            return run_ephemeral(frame, suite, result_format)

    def _checkpoint(self, frame: pd.DataFrame, suite, result_format: dict[str, Any]):
        import great_expectations as gx
        from great_expectations.checkpoint import UpdateDataDocsAction
        from great_expectations.data_context.types.base import ProgressBarsConfig

        quiet_gx()
        context = gx.get_context(mode="file", project_root_dir=str(self.project_root))
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        suite = context.suites.add_or_update(suite)
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(data=_whole_frame(context, suite.name), suite=suite, name=self.run_name)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=self.run_name,
                validation_definitions=[validation],
                actions=[UpdateDataDocsAction(name="data_docs")],
                result_format=result_format,
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        identifier, validated = next(iter(result.run_results.items()))
        pages = context.get_docs_sites_urls(resource_identifier=identifier)
        url = pages[0].get("site_url") if pages else None
        return validated, str(url) if url else None


def documented(settings: Settings, what: str) -> tuple[SuiteRunner, DataDocsRun | None]:
    """The suite runner for a validation of ``what`` (``contracts.data_docs``: through the Data Docs
    project under ``<data_dir>/data_docs``, one page per run, named by the time it ran)."""
    if not settings.contracts.data_docs:
        return run_ephemeral, None
    run = DataDocsRun(f"{what} {datetime.now(UTC):%Y-%m-%dT%H%M%SZ}", settings.data_dir / "data_docs")
    return run, run


def page_of(run: DataDocsRun | None) -> dict[str, str]:
    """What a contract summary says of its page: ``{"data_docs": url}`` when one was asked for."""
    if run is None:
        return {}
    return {"data_docs": run.url or "not built (see the log)"}


def _whole_frame(context, name: str):
    """The project's batch definition of a whole dataframe named ``name``, made on first use."""
    try:
        source = context.data_sources.get("frames")
    except KeyError:
        source = context.data_sources.add_pandas("frames")
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    try:
        return asset.get_batch_definition("whole")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole")
