"""GX Data Docs for contract validations: a GX project under the data directory
(``<data_dir>/data_docs/gx``) whose local site keeps the suites and every validation as static
pages (``.../uncommitted/data_docs/local_site/index.html`` lists them all, night after night), each
validation's page linked from the nightly's report. Built beside the validation that decides
(``validate_frame``), never instead of it: a page that cannot be written fails nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

_log = logging.getLogger("ltrr.contracts")


def build_data_docs(frame: pd.DataFrame, suite, run_name: str, project_root: Path) -> str | None:
    """Validate ``frame`` against ``suite`` through a checkpoint of the GX project in
    ``project_root`` whose action updates its Data Docs; returns the URL of this validation's page
    (None when it could not be built)."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    try:
        context = gx.get_context(mode="file", project_root_dir=str(project_root))
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        suite = context.suites.add_or_update(suite)
        definition = _whole_frame(context, suite.name)
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(data=definition, suite=suite, name=run_name)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=run_name,
                validation_definitions=[validation],
                actions=[UpdateDataDocsAction(name="data_docs")],
                result_format={"result_format": "SUMMARY"},
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        pages = context.get_docs_sites_urls(resource_identifier=next(iter(result.run_results)))
    except Exception as error:  # noqa: BLE001 - documentation only: the contract's verdict stands without it
        _log.warning("data docs for %s not built: %s", run_name, error)
        return None
    url = pages[0].get("site_url") if pages else None
    return str(url) if url else None


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
