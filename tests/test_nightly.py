"""The nightly DAG, its idempotent re-runs, backfills through a real Prefect server, and the
demo loop -- on a copy of the test platform (real catalog slice, GENERATED traffic)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import ROOT

NIGHTS, QUERIES = 3, 70


@pytest.fixture(scope="module")
def demo_run(q2e_platform, tmp_path_factory):
    """The demo flow on a copy of the built platform: cold start (nothing to rebuild), a first
    champion, three nights of simulate -> nightly -> promote, and a last served day."""
    import yaml

    from flows.demo import demo_loop
    from ltrr_core.config import load_settings

    settings = q2e_platform[0]
    out = tmp_path_factory.mktemp("nightly")
    data = out / "data"
    shutil.copytree(
        settings.data_dir,
        data,
        ignore=shutil.ignore_patterns("logs", "simulation", "bundles", "policies", "rankers", "nightly", "mlflow"),
    )
    config = out / "nightly.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "extends": str(q2e_platform[2]),
                "data_dir": str(data),
                "bandit": {"learner": {"min_engaged_requests": 20, "iterations": 60}, "ope": {"n_bootstrap": 200}},
                "ranker": {"min_requests": 10, "iterations": 60},
                # Latency is gated in production; here the suite may share 2 cores with other work.
                "promotion": {"latency_budget_ms": 20000.0, "first_champion_latency_budget_ms": 20000.0, "min_ess": 5},
            }
        )
    )
    rows = demo_loop(NIGHTS, QUERIES, str(config))
    return load_settings(config), config, rows


@pytest.mark.slow
def test_the_demo_loop_reports_every_night_and_the_nightly_skips_what_did_not_change(demo_run):
    from ltrr_core import nightly
    from ltrr_core.artifacts.champion import history

    settings, _, rows = demo_run
    assert [r["night"] for r in rows] == [1, 2, 3]
    records = nightly.records(settings)
    assert [r["date"] for r in records] == [r["date"] for r in rows]
    first = records[0]
    # The copied platform is current: content understanding and index builds are skipped; the Q2E
    # table is rebuilt each night because each night brings new engagement.
    assert first["steps"]["catalog"]["status"] == "skipped" and first["steps"]["indexes"]["status"] == "skipped"
    assert all(r["steps"]["q2e"]["status"] == "ran" for r in records)
    for row, record in zip(rows, records):
        assert row["candidate_recall"] > 0 and row["ndcg@10"] > 0
        assert row["next_day"]["reward"] is not None  # every night is followed by a served day
        assert (row["policy"]["measured_next_day"] is not None) == row["policy"]["served_next_day"]
        assert record["promotion"]["gates"] and record["steps"]["promote"]["status"] in ("promoted", "refused")
        assert set(record["outputs"]) >= {"q2e_version", "bundle_id"}
    # Night 1 was served by the apprentice (first champion: no learned models); a learned policy
    # trained every night, and so did the ranker: it learns from real engagement (CPCD train
    # searches), which needs no logged day, and is gated on the real validation queries.
    assert all(p.startswith("epsilon") for p in rows[0]["served_by"]["policy"])
    assert all(r["steps"]["bandit"]["status"] == "trained" for r in records)
    assert all(r["steps"]["retention"]["status"] == "ran" for r in records)  # the last step of every night
    assert all(r["steps"]["ranker"]["status"] == "trained" for r in records)
    decisions = [e for e in history(settings) if e["action"] == "promote"]
    # the first champion + each night's candidates: tonight's models together, and a model that
    # passed its own gate alone when the other one failed (``nightly.fallback_models``)
    assert len(decisions) == 1 + sum(len(r["promotion_attempts"]) for r in records)
    for record in records:
        first, *second = record["promotion_attempts"]
        assert len(second) <= 1 and (not second or not first["promoted"])
    for row in rows:  # a promoted night's policy serves the next day and is measured there
        if row["promotion"]["promoted"] and "policy" in row["promotion"]["models"]:
            assert row["policy"]["served_next_day"] and row["policy"]["measured_next_day"] == row["next_day"]["reward"]


@pytest.mark.slow
def test_each_night_publishes_a_markdown_artifact_with_gates_and_mlflow_runs(demo_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    settings, _, rows = demo_run
    key = f"nightly-{rows[-1]['date']}"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert artifacts
    text = artifacts[0].data
    assert "| gate | passed | reason |" in text and "| smoke |" in text and "MLflow runs" in text
    assert rows[-1]["promotion"]["bundle_id"] in text
    # the log contracts with their rules and a link to each validation's page in the GX Data Docs
    assert "## Log contracts (GX Data Docs)" in text
    pages = re.findall(r"\[(impressions|feedback) " + rows[-1]["date"] + r"\]\((file://[^)]+)\)", text)
    assert [kind for kind, _ in pages] == ["impressions", "feedback"]
    assert all(Path(url.removeprefix("file://")).is_file() for _, url in pages)
    assert all(Path(url.removeprefix("file://")).is_relative_to(settings.data_dir / "data_docs") for _, url in pages)


@pytest.mark.slow
def test_rerunning_a_date_replaces_its_outputs_and_duplicates_nothing(demo_run):
    from flows.nightly import nightly as nightly_flow
    from ltrr_core import nightly
    from ltrr_core.artifacts import bundles_root
    from ltrr_core.logs import read_logs
    from ltrr_core.memory.build import q2e_store

    settings, config, rows = demo_run
    day = date.fromisoformat(rows[-1]["date"])
    before = nightly.read_record(settings, day)
    policies = sorted(p.name for p in (settings.data_dir / settings.bandit.out_dir).glob("P*"))
    rankers = sorted(p.name for p in (settings.data_dir / settings.ranker.out_dir).glob("R*"))
    q2e_versions = sorted(p.name for p in (q2e_store(settings).root / "versions").iterdir())
    impressions = len(read_logs(settings.data_dir / settings.runtime.log_dir, "impressions", day.isoformat()))

    after = nightly_flow(day.isoformat(), None, str(config))

    assert after["attempt"] == before["attempt"] + 1 == nightly.read_record(settings, day)["attempt"]
    assert len(list(nightly.nightly_root(settings).glob("*.json"))) == NIGHTS  # one record per date
    # Exactly one set of outputs for the date: the previous run's policy, ranker and Q2E version are gone.
    now_policies = sorted(p.name for p in (settings.data_dir / settings.bandit.out_dir).glob("P*"))
    now_rankers = sorted(p.name for p in (settings.data_dir / settings.ranker.out_dir).glob("R*"))
    assert len(now_policies) == len(policies) and len(now_rankers) == len(rankers)
    assert Path(before["outputs"]["policy_dir"]).name not in now_policies
    assert Path(after["outputs"]["policy_dir"]).name in now_policies
    # Same logs in, nothing to rebuild: the Q2E step is skipped and the date keeps its one version.
    assert after["steps"]["q2e"]["status"] == "skipped"
    assert after["outputs"]["q2e_version"] == before["outputs"]["q2e_version"] == q2e_store(settings).current_version()
    assert sorted(p.name for p in (q2e_store(settings).root / "versions").iterdir()) == q2e_versions
    assert len(read_logs(settings.data_dir / settings.runtime.log_dir, "impressions", day.isoformat())) == impressions
    # The previous candidate bundle is removed unless something needs it (promoted, or it served).
    old_bundle = before["outputs"]["bundle_id"]
    assert (bundles_root(settings) / old_bundle).exists() == bool(before["promotion"]["promoted"])
    assert after["served_day"]["requests"] == before["served_day"]["requests"]


@pytest.mark.slow
def test_a_partial_run_keeps_the_other_steps_outputs(demo_run):
    from flows.nightly import nightly as nightly_flow
    from ltrr_core import nightly

    settings, config, rows = demo_run
    day = rows[0]["date"]
    before = nightly.read_record(settings, date.fromisoformat(day))
    after = nightly_flow(day, ["validate_logs"], str(config))
    assert after["steps"]["validate_logs"].get("from_run") is None
    assert after["steps"]["bandit"]["from_run"] == before["attempt"]
    assert after["outputs"]["policy_dir"] == before["outputs"]["policy_dir"]
    assert Path(after["outputs"]["policy_dir"]).is_dir()


def test_unknown_steps_and_bad_dates_are_refused_with_the_rule(test_settings):
    from ltrr_core.nightly import NightlyError, backfill_days, resolve_day, select_steps

    with pytest.raises(NightlyError, match="unknown nightly step.*'trian'"):
        select_steps(["trian"])
    with pytest.raises(NightlyError, match="'promote' gates the bundle"):
        select_steps(["promote"])
    with pytest.raises(NightlyError, match="before start_date"):
        backfill_days("2026-01-05", "2026-01-01")
    with pytest.raises(NightlyError, match="not a date"):
        resolve_day(test_settings, "2026-13-01")
    assert resolve_day(test_settings, None, date(2026, 3, 1)) == date(2026, 2, 28)  # scheduled: yesterday
    assert select_steps(["bundle", "bandit", "promote"]) == ["bandit", "bundle", "promote"]


def test_a_day_without_logs_stops_the_night_with_a_clear_error(test_settings):
    from ltrr_core.nightly import NightlyError, validate_logs

    with pytest.raises(NightlyError, match="no impressions logged for 1999-01-01"):
        validate_logs(test_settings, date(1999, 1, 1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, seconds: float, process: subprocess.Popen) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(url)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # two nights of training behind a browser, on a shared 2-core machine
def test_a_backfill_started_like_the_ui_custom_run_completes_on_prefect_and_mlflow_backed_by_postgresql(
    demo_run, tmp_path
):
    """The production profile: PostgreSQL on 127.0.0.1 (`.ci/postgres`) behind a real Prefect
    server and MLflow's backend store; `ltrr deploy` registers and serves the deployments; in
    Chromium, the backfill deployment's Custom run form starts a run of two dates, whose page is
    followed until it completes and whose artifact links each night by date; the nights and their
    MLflow runs are read back from PostgreSQL."""
    import yaml
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.browser import ARTIFACTS, chromium
    from tests.prefect_ui import start_custom_run, wait_completed_and_read_artifact

    settings, demo_config, rows = demo_run
    postgres_dir = Path(
        tempfile.mkdtemp(prefix="ltrr-pg-")
    )  # outside pytest's root-only tree: the server's user reads it
    postgres_port = _free_port()
    subprocess.run([str(ROOT / ".ci" / "postgres"), "start", str(postgres_dir), str(postgres_port)], check=True)
    postgres = f"ltrr@127.0.0.1:{postgres_port}"
    config = tmp_path / "prod.yaml"  # what configs/prod.yaml does, on this platform and port
    config.write_text(
        yaml.safe_dump(
            {"extends": str(demo_config), "mlflow": {"tracking_uri": f"postgresql+psycopg://{postgres}/mlflow"}}
        )
    )
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": api,  # the UI's own calls go to this server, not the default port
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{postgres}/prefect",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PYTHONPATH": str(ROOT),
    }
    logs = tmp_path / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=logs.open("w"),
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    runner = None
    try:
        _wait_http(f"{api}/health", 120, server)
        runner = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "--config", str(config), "deploy"],
            env=env,
            stdout=(tmp_path / "deploy.log").open("w"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        name = f"backfill/{settings.orchestration.backfill_deployment}"
        first, last = rows[0]["date"], rows[1]["date"]
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    deployment = client.read_deployment_by_name(name)
                    break
                except Exception:  # noqa: BLE001 - not registered yet
                    if time.monotonic() > deadline or runner.poll() is not None:
                        raise AssertionError((tmp_path / "deploy.log").read_text()[-3000:]) from None
                    time.sleep(1)
            nightly_deployment = client.read_deployment_by_name(f"nightly/{settings.orchestration.nightly_deployment}")
            assert nightly_deployment.schedules[0].schedule.cron == settings.orchestration.nightly_cron
        # The operator's path in Chromium: the deployment's Custom run form, then the run's page
        # until it completes, then its artifact, where each night's report is a link named by date.
        ui = f"http://127.0.0.1:{port}"
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                run_id = start_custom_run(page, ui, name, first, last, ["validate_logs", "bandit"])
                report = wait_completed_and_read_artifact(page, ui, run_id, 600, f"backfill-{first}-{last}")
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "prefect-failed.png"), full_page=True)
                raise AssertionError((tmp_path / "deploy.log").read_text()[-3000:]) from None
            page.close()
        nights = dict(re.findall(r"\[nightly (\d{4}-\d{2}-\d{2})\]\(/runs/flow-run/([0-9a-f-]{36})\)", report))
        assert set(nights) == {first, last}
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            assert client.read_flow_run(run_id).parameters["steps"] == ["validate_logs", "bandit"]
            _assert_the_operator_finds_each_night_by_date(client, deployment, run_id, first, last)
            assert {str(client.read_flow_run(night).id) for night in nights.values()} == set(nights.values())
        # Each night's policy training run is in MLflow's PostgreSQL store, named by its date.
        tracking = MlflowClient(f"postgresql+psycopg://{postgres}/mlflow")
        experiment = tracking.get_experiment_by_name(settings.mlflow.bandit_experiment)
        runs = tracking.search_runs([experiment.experiment_id])
        assert {f"nightly {first}", f"nightly {last}"} <= {r.info.run_name for r in runs}
        assert all(r.info.artifact_uri.startswith((settings.data_dir / "mlflow").resolve().as_uri()) for r in runs)
    finally:
        for process in (runner, server):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
        subprocess.run([str(ROOT / ".ci" / "postgres"), "stop", str(postgres_dir)], check=True)
        shutil.rmtree(postgres_dir, ignore_errors=True)
    from ltrr_core import nightly

    for day in (rows[0]["date"], rows[1]["date"]):
        record = nightly.read_record(settings, date.fromisoformat(day))
        assert record["selected"] == ["validate_logs", "bandit"] and "policy_dir" in record["outputs"]


def _assert_the_operator_finds_each_night_by_date(client, deployment, run_id, first: str, last: str) -> None:
    """The run form offers dates as dates and the steps as choices, with descriptions; the backfill
    and its nights are named by date; the backfill's artifact links each night's run."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterName

    schema = deployment.parameter_openapi_schema
    properties = schema["properties"]
    assert properties["start_date"]["format"] == "date" and properties["start_date"]["description"]
    steps = properties["steps"]["anyOf"][0]["items"]
    choices = steps.get("enum") or schema["definitions"][steps["$ref"].rsplit("/", 1)[-1]]["enum"]
    assert choices[0] == "validate_logs" and "promote" in choices and properties["steps"]["description"]
    assert client.read_flow_run(run_id).name == f"backfill {first}..{last}"
    names = [f"nightly {first}", f"nightly {last}"]
    nights = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=names)))
    assert sorted(n.name for n in nights) == names and all(n.parent_task_run_id for n in nights)
    key = f"backfill-{first}-{last}"
    artifact = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))[0]
    for night in nights:
        assert f"[{night.name}](/runs/flow-run/{night.id})" in artifact.data


def _decision(failed: dict[str, str]) -> dict:
    names = ("contracts", "ranker", "policy", "integrity", "smoke")
    return {"gates": [{"name": n, "passed": n not in failed, "reason": failed.get(n, "ok")} for n in names]}


@pytest.mark.parametrize(
    "failed, policy, ranker, expected",
    [
        (
            {"policy": "lower bound below", "smoke": "not run: policy failed"},
            "P1",
            "R1",
            {"policy_dir": None, "ranker_dir": "R1"},
        ),
        (
            {"ranker": "nDCG below", "smoke": "not run: ranker failed"},
            "P1",
            "R1",
            {"policy_dir": "P1", "ranker_dir": None},
        ),
        ({"policy": "x", "ranker": "y", "smoke": "not run: ranker, policy failed"}, "P1", "R1", None),
        ({"policy": "x", "smoke": "not run: policy failed"}, "P1", None, None),  # nothing else was trained tonight
        ({"contracts": "quarantined", "policy": "x", "smoke": "not run"}, "P1", "R1", None),
        ({"smoke": "p95 900 ms over the budget"}, "P1", "R1", None),  # the smoke test ran and refused
    ],
)
def test_a_model_that_passed_its_own_gate_gets_a_candidate_without_the_one_that_failed(
    failed, policy, ranker, expected
):
    from ltrr_core.nightly import fallback_models

    assert fallback_models(_decision(failed), policy, ranker) == expected


@pytest.mark.slow
def test_two_nights_ranker_runs_compare_in_the_mlflow_ui_with_datasets_and_metrics(demo_run, tmp_path):
    """The MLflow UI (a real server on 127.0.0.1, the demo's tracking store) in Chromium: the ranker
    experiment's training runs, two nights selected and compared like a person would."""
    from mlflow import MlflowClient

    from ltrr_core.tracking import tracking_uri
    from tests.browser import ARTIFACTS, chromium, free_port, stop, wait_http

    settings, _, rows = demo_run
    experiment = MlflowClient(tracking_uri(settings)).get_experiment_by_name(settings.mlflow.ranker_experiment)
    port, log = free_port(), tmp_path / "mlflow.log"
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            tracking_uri(settings),
            "--workers",
            "1",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 240, server, log)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # The *Model training* view of the experiment (MLflow 3 opens on a GenAI overview otherwise).
            page.goto(
                f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
            )
            nights = [f"nightly {row['date']}" for row in rows[-2:]]
            for name in nights:
                page.get_by_role("row").filter(has_text=name).get_by_role("checkbox").first.check(timeout=60_000)
            # each run's training dataset (mlflow.log_input), listed beside it
            assert page.get_by_role("button", name=re.compile(r"^ranking rows .*real CPCD train queries")).count() >= 2
            page.get_by_role("button", name="Compare").click()
            page.get_by_text("Comparing 2 Runs").wait_for(timeout=60_000)
            page.get_by_text("ranker_version").first.wait_for()
            body = page.inner_text("body")
            assert all(name in body for name in nights)
            assert "ranker.ndcg_at_10" in body and "fusion_baseline.ndcg_at_10" in body  # metrics side by side
            page.get_by_text("feature_importance.png").first.dispatch_event(
                "click"
            )  # the plots side by side (the assistant panel overlaps it)
            page.locator("img[src*='feature_importance.png'], img[alt*='feature_importance']").first.wait_for(
                timeout=30_000
            )
            page.screenshot(path=str(ARTIFACTS / "mlflow-compare.png"), full_page=True)
            page.close()
    finally:
        stop(server)
