"""The learned ranker: labels, position bias, the training-set contract, serving/training
feature parity on simulated days through the real runtime, training, MLflow and serving."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ltrr_core.config import PositionBiasConfig, RankerConfig

ROOT = Path(__file__).resolve().parent.parent


def test_graded_labels_take_the_strongest_event_of_each_shown_result():
    from ltrr_core.ranking.labels import clicked, graded_labels

    shown = pd.DataFrame(
        {"request_id": ["r1"] * 4 + ["r2"], "entity_id": ["a", "b", "c", "d", "a"], "position": [1, 2, 3, 4, 1]}
    )
    feedback = pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r1", "r1", "r1", "r1", "r3"],
            "entity_id": ["a", "a", "a", "b", "b", "c", "a"],
            "event": ["click", "stream", "like", "click", "skip", "click", "like"],
        }
    )
    labels = graded_labels(shown, feedback, RankerConfig())
    assert labels.tolist() == [3.0, 1.0, 1.0, 0.0, 0.0]  # r2's "a" is not r3's like
    assert clicked(shown, feedback).tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_contenders_score_known_ndcg_and_mrr_on_hand_built_rankings():
    """Graded truth q1: a = 2, b = 1; q2: c = 1. nDCG@10 (linear gain, log2(rank + 1) discount):
    fusion q1 [b, a, x]: (1 + 2 / log2 3) / (2 + 1 / log2 3) = 2.261860 / 2.630930 = 0.859719;
    fusion q2 [x, c]: (1 / log2 3) / 1 = 0.630930; mean 0.745324. The ranker ([a, b, x], [c, x])
    orders both ideally: 1.0. MRR@10 of the engaged a (q1) and c (q2): fusion 1/2, ranker 1."""
    from ltrr_core.ranking.evaluate import score_contenders

    graded = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}}
    engaged = {"q1": {"a": 1}, "q2": {"c": 1}}
    ranked = {
        "fusion_baseline": {"q1": ["b", "a", "x"], "q2": ["x", "c"]},
        "ranker": {"q1": ["a", "b", "x"], "q2": ["c", "x"]},
    }
    out = score_contenders(ranked, graded, engaged, {"q1": "artist", "q2": "tag"}, 0.95)
    log3 = np.log2(3)
    fusion_q1, fusion_q2 = (1 + 2 / log3) / (2 + 1 / log3), 1 / log3
    assert fusion_q1 == pytest.approx(0.859719, abs=1e-6) and fusion_q2 == pytest.approx(0.630930, abs=1e-6)
    assert out["fusion_baseline"]["ndcg@10"] == 0.7453 and out["ranker"]["ndcg@10"] == 1.0
    assert out["fusion_baseline"]["mrr@10"] == 0.5 and out["ranker"]["mrr@10"] == 1.0
    assert out["fusion_baseline"]["by_query_type"] == {
        "artist": {"ndcg@10": 0.8597, "n": 1},
        "tag": {"ndcg@10": 0.6309, "n": 1},
    }
    # ranker minus fusion per query: 1 - 0.859719 = 0.140281 and 1 - 0.630930 = 0.369070. With two
    # pairs a resample is both of one (p = 1/4 each) or one of each: the 95% percentile interval
    # runs from the one gap to the other (a sign or pairing error would not).
    assert out["ranker"]["ndcg@10_minus_fusion_ci"] == [0.1403, 0.3691]
    assert out["ranker"]["mrr@10_minus_fusion_ci"] == [0.5, 0.5]


def _pbm_log(eta: float, seed: int, n_queries: int = 300, shows: int = 20):
    """Clicks drawn by the simulator's own position-based model on rankings whose order varies
    between impressions (as the policy's exploration makes it vary)."""
    from ltrr_core.config import ClickModelConfig
    from ltrr_core.simulate import PositionBasedModel

    model = PositionBasedModel(ClickModelConfig(eta=eta))
    rng = np.random.default_rng(seed)
    queries, entities, positions, clicks = [], [], [], []
    for q in range(n_queries):
        grades = rng.choice([0, 1, 2], size=10, p=[0.6, 0.25, 0.15])
        for _ in range(shows):
            order = rng.permutation(10)
            probabilities = model.click_probabilities([int(grades[i]) for i in order])
            clicked = rng.random(10) < probabilities
            queries += [f"q{q}"] * 10
            entities += [f"e{i}" for i in order]
            positions += list(range(1, 11))
            clicks += clicked.astype(float).tolist()
    return np.array(queries), np.array(entities), np.array(positions), np.array(clicks), model


@pytest.mark.parametrize("eta", [0.5, 1.0, 1.5])
def test_position_bias_estimate_recovers_the_simulators_examination_curve(eta):
    from ltrr_core.ranking.labels import fit_position_bias

    queries, entities, positions, clicks, model = _pbm_log(eta, seed=int(eta * 10))
    bias = fit_position_bias(queries, entities, positions, clicks, PositionBiasConfig(iterations=200))
    np.testing.assert_allclose(bias.examination, model.examination(10), atol=0.04)


@pytest.mark.parametrize("eta", [0.5, 1.0, 1.5])
def test_randomized_traffic_recovers_the_simulators_examination_curve(eta):
    """Each request shows its own 10 results in random order (the runtime's RandTop-k share);
    clicks come from the simulator's position-based model."""
    from ltrr_core.config import ClickModelConfig
    from ltrr_core.ranking.labels import fit_position_bias_randomized
    from ltrr_core.simulate import PositionBasedModel

    model = PositionBasedModel(ClickModelConfig(eta=eta))
    rng = np.random.default_rng(int(eta * 100))
    requests, positions, clicks = [], [], []
    for r in range(1500):  # ~ a week of 10% randomised traffic at 2k requests a day
        grades = rng.choice([0, 1, 2], size=10, p=[0.6, 0.25, 0.15])
        clicked = rng.random(10) < model.click_probabilities([int(g) for g in grades])
        requests += [f"r{r}"] * 10
        positions += list(range(1, 11))
        clicks += clicked.astype(float).tolist()
    bias = fit_position_bias_randomized(np.array(requests), np.array(positions), np.array(clicks), PositionBiasConfig())
    assert bias.eta == pytest.approx(eta, abs=0.15)
    np.testing.assert_allclose(bias.examination, model.examination(10), atol=0.05)


def test_ips_weights_are_inverse_examination_with_a_floor():
    from ltrr_core.ranking.labels import PositionBias

    bias = PositionBias(np.array([1.0, 0.5, 0.25, 0.05]), 1, 1)
    assert bias.weights(np.array([1, 2, 3, 4]), floor=0.1).tolist() == [1.0, 2.0, 4.0, 10.0]


def test_features_keep_their_shape_for_an_entity_the_table_does_not_know():
    from ltrr_core.config import FusionConfig
    from ltrr_core.features.ranking import EntityAttributes, candidate_features, feature_names

    entities = EntityAttributes.from_frame(
        pd.DataFrame(
            [
                {
                    "id": "t1",
                    "type": "track",
                    "title": "Shake It Off",
                    "artists": ["Taylor Swift"],
                    "tags": ["pop"],
                    "genres": ["pop"],
                    "moods": [],
                    "seasons": [],
                    "version_types": [],
                    "decades": [2010],
                    "year": 2014,
                    "popularity": 10.0,
                }
            ]
        )
    )
    qu = {
        "normalised": "taylor swift shake it off",
        "tokens": ["taylor", "swift", "shake", "it", "off"],
        "intent": {"lookup": 1.0},
        "corrections": {},
        "interpretations": [
            {
                "probability": 0.9,
                "slots": [
                    {"kind": "artist", "value": "taylor swift", "confidence": 1.0},
                    {"kind": "title", "value": "shake it off", "confidence": 0.8},
                ],
            }
        ],
    }
    strategies = ["lexical", "semantic"]
    names = feature_names(strategies)
    values = candidate_features(
        qu,
        {"profile_top_tags": ["pop", "rock"]},
        {},
        [("t1", {"lexical": (1, 9.0)}), ("unknown", {"semantic": (3, 0.5)})],
        entities,
        strategies,
        FusionConfig(),
    )
    assert values.shape == (2, len(names))
    row = dict(zip(names, values[0]))
    assert row["slot_match_artist"] == pytest.approx(0.9) and row["slot_match_title"] == pytest.approx(0.72)
    assert row["lexical_reciprocal_rank"] == 1.0 and row["semantic_found"] == 0.0 and np.isnan(row["semantic_score"])
    assert row["profile_tag_overlap"] == 0.5 and row["title_similarity"] == 1.0
    assert np.isnan(dict(zip(names, values[1]))["popularity"])
    assert candidate_features(qu, {}, {}, [], entities, strategies, FusionConfig()).shape == (0, len(names))


def _synthetic_set(settings, n_requests: int = 30):
    from ltrr_core.features.ranking import feature_names
    from ltrr_core.ranking.dataset import KEYS, RankingSet
    from ltrr_core.ranking.labels import no_position_bias

    names = feature_names(sorted(settings.retrieval.strategies))
    rng = np.random.default_rng(0)
    rows = []
    for r in range(n_requests):
        for position in range(1, 6):
            grade = float(rng.choice([0, 1, 2, 3], p=[0.7, 0.1, 0.1, 0.1]))
            rows.append(
                [
                    f"r{r}",
                    "2026-03-01",
                    position,
                    f"e{r}-{position}",
                    f"q{r}",
                    False,
                    *rng.uniform(0, 1, len(names)),
                    grade,
                    float(grade > 0),
                    grade,
                ]
            )
    frame = pd.DataFrame(rows, columns=[*KEYS, "randomized", *names, "grade", "clicked", "label"])
    return RankingSet(frame, names, 0, no_position_bias(10))


@pytest.mark.parametrize(
    "plant, rule",
    [
        (lambda f: f.assign(relevant_grades=1), "expect_table_columns_to_match_set"),
        (lambda f: f.assign(label=np.where(f.index == 3, 99.0, f["label"])), "column 'label'"),
        (lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), "expect_compound_columns_to_be_unique"),
        (lambda f: f.assign(position=np.where(f.index == 0, 0, f["position"])), "column 'position'"),
    ],
)
def test_the_training_set_contract_refuses_a_bad_set_naming_the_rule(test_settings, plant, rule):
    from ltrr_core.contracts.validate import ContractViolation
    from ltrr_core.ranking.dataset import check_ranking_set

    data = _synthetic_set(test_settings)
    assert check_ranking_set(test_settings, data)["passed"]
    data.frame = plant(data.frame)
    with pytest.raises(ContractViolation, match=rule):
        check_ranking_set(test_settings, data)


# --- through the real runtime -----------------------------------------------------------------

DAYS = [date(2026, 4, d) for d in (1, 2, 3)]


@pytest.fixture(scope="module")
def ranker_loop(q2e_platform, bundle_dir, tmp_path_factory):
    """Three simulated days on the test platform, then the train_ranker flow for the third."""
    import yaml

    from ltrr_core.catalog.store import CatalogStore
    from ltrr_core.config import load_settings
    from ltrr_core.logs.recorder import InteractionRecorder
    from ltrr_core.runtime import load_service
    from ltrr_core.simulate import Simulator, World

    out = tmp_path_factory.mktemp("ranker")
    config = out / "ranker.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "extends": str(q2e_platform[2]),
                "runtime": {"log_dir": str(out / "logs")},
                "simulate": {"out_dir": str(out / "sim")},
                "ranker": {
                    "out_dir": str(out / "rankers"),
                    "min_requests": 10,
                    "iterations": 80,
                    "sources": ["logs"],
                    "position_bias": {"randomize_share": 0.3},
                },
                "mlflow": {"tracking_uri": f"sqlite:///{out / 'mlflow.db'}"},
            }
        )
    )
    settings = load_settings(config)
    service = load_service(settings, bundle_dir)
    recorder = InteractionRecorder(settings.data_dir / settings.runtime.log_dir, settings.runtime)
    simulator = Simulator(
        settings, World(settings, CatalogStore(settings.data_dir / "catalog").load()), service, recorder
    )
    for day in DAYS:
        simulator.run_day(day, 150)
    recorder.close()
    return settings, config, service


@pytest.mark.slow
def test_logged_features_equal_features_recomputed_offline_from_the_logged_inputs(ranker_loop, bundle_dir):
    from ltrr_core.config import RetrievalConfig
    from ltrr_core.features.ranking import EntityAttributes, candidate_features, feature_names
    from ltrr_core.logs import read_logs

    settings = ranker_loop[0]
    spec = json.loads((bundle_dir / "ranker" / "feature_spec.json").read_text())
    retrieval = RetrievalConfig.model_validate(json.loads((bundle_dir / "retrieval.json").read_text()))
    entities = EntityAttributes.load(bundle_dir / "ranker" / "entities.parquet")
    impressions = read_logs(settings.data_dir / settings.runtime.log_dir, "impressions", DAYS[0].isoformat())
    assert spec["names"] == feature_names(spec["strategies"])
    compared = 0
    for imp in impressions.itertuples():
        logged = json.loads(imp.shown_features)
        assert logged["feature_spec"] == spec["version"] and logged["strategies"] == spec["strategies"]
        meta = {name: found["meta"] for name, found in json.loads(imp.candidates).items()}
        inputs = [
            (e, {s: tuple(v) for s, v in row["found_by"].items()}) for e, row in zip(imp.shown_ids, logged["rows"])
        ]
        recomputed = candidate_features(
            json.loads(imp.qu), json.loads(imp.context), meta, inputs, entities, spec["strategies"], retrieval.fusion
        )
        values = np.array(
            [[np.nan if v is None else v for v in row["values"]] for row in logged["rows"]], dtype=float
        ).reshape(len(logged["rows"]), recomputed.shape[1])  # a request may show nothing
        np.testing.assert_allclose(values, recomputed.round(6), atol=1e-6, equal_nan=True)
        compared += len(values)
    assert compared > 500
    randomized = [json.loads(f)["randomized"] for f in impressions["shown_features"]]
    assert 0 < sum(randomized) < len(randomized)  # the RandTop-k share (0.3 here) is logged


@pytest.mark.slow
def test_train_ranker_flow_trains_evaluates_and_registers_a_challenger(ranker_loop, prefect_harness):
    import mlflow
    from mlflow import MlflowClient

    from flows.train_ranker import train_ranker_flow

    settings, config, _ = ranker_loop
    report = train_ranker_flow(DAYS[2].isoformat(), 7, str(config))
    assert report["train_days"] == [DAYS[0].isoformat()] and report["validation_day"] == DAYS[1].isoformat()
    assert report["contract"]["training"]["passed"] and report["training_set"]["labelled_requests"] >= 10
    assert set(report["losses"]) == set(settings.ranker.losses) and report["loss"] in report["losses"]
    bias = report["position_bias"]
    assert bias["method"] == "randomized" and bias["n_clicks"] > 0
    assert bias["examination"][0] == 1.0 and bias["examination"][-1] < bias["examination"][0]
    evaluation = report["evaluation"]
    for name in ("fusion_baseline", "ranker", "ranker_without_position_bias"):
        assert evaluation[name]["n"]["ndcg@10"] > 100  # the metric itself: test_contenders_score_known_ndcg...
    assert len(evaluation["ranker"]["ndcg@10_minus_fusion_ci"]) == 2
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    client = MlflowClient()
    challenger = client.get_model_version_by_alias(settings.mlflow.ranker_model_name, "challenger")
    assert challenger.run_id == report["mlflow"]["run_id"]
    run = client.get_run(challenger.run_id)
    assert "ranker.ndcg_at_10" in run.data.metrics and "fusion_baseline.ndcg_at_10" in run.data.metrics
    assert run.inputs.dataset_inputs
    assert {"feature_importance.png", "examination.png", "report.json"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)
    }
    # The logged model says what it reads: the feature spec's columns, with real rows as its example.
    info = mlflow.models.get_model_info(f"models:/{settings.mlflow.ranker_model_name}/{challenger.version}")
    spec = json.loads((Path(report["ranker_dir"]) / "ranker.json").read_text(encoding="utf-8"))
    assert info.signature.inputs.input_names() == spec["feature_names"]
    assert info.saved_input_example_info is not None


@pytest.mark.slow
def test_the_ranker_serves_from_a_bundle_without_the_training_stack(ranker_loop):
    from ltrr_core.artifacts import build_bundle, bundles_root
    from ltrr_core.durable import read_pointer, write_pointer
    from ltrr_core.ranking.train import latest_ranker, train_night

    settings, config, _ = ranker_loop
    from ltrr_core.runtime import bundle_loader

    ranker_dir = latest_ranker(settings) or train_night(settings, DAYS[2], bundle_loader(settings))[0]
    previous = read_pointer(bundles_root(settings) / "LATEST")
    try:
        bundle = bundles_root(settings) / build_bundle(settings, None, ranker_dir)["bundle_id"]
    finally:
        write_pointer(bundles_root(settings) / "LATEST", previous)  # other tests serve the plain bundle
    code = (
        "import sys, json\n"
        "for blocked in ('mlflow', 'prefect', 'great_expectations'):   # the training stack\n"
        "    sys.modules[blocked] = None\n"
        "from ltrr_core.config import load_settings\n"
        "from ltrr_core.runtime import load_service\n"
        f"service = load_service(load_settings({str(config)!r}), {str(bundle)!r})\n"
        "response = service.search('metallica', explain=True)\n"
        "print(json.dumps({'ranker': response.ranking['ranker'], 'top': response.ranking['top_features'][0],\n"
        "                  'n': len(response.results)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ranker"] == f"catboost:{ranker_dir.name}" and result["n"] > 0
    assert len(result["top"]) == settings.ranker.explain_top_features and "contribution" in result["top"][0]


@pytest.mark.slow
def test_promoting_a_bundle_makes_its_registered_ranker_the_mlflow_champion(ranker_loop):
    import mlflow
    from mlflow import MlflowClient

    from ltrr_core.artifacts import build_bundle, bundles_root
    from ltrr_core.artifacts.champion import HISTORY, POINTER
    from ltrr_core.durable import read_pointer, write_pointer
    from ltrr_core.promotion import promote
    from ltrr_core.ranking.train import latest_ranker

    settings = ranker_loop[0].with_overrides(**{"promotion.ranker_ndcg_tolerance": 1.0})  # the gate is tested elsewhere
    root = bundles_root(settings)
    previous = read_pointer(root / "LATEST")
    ranker_dir = latest_ranker(settings)
    assert ranker_dir is not None, "the flow test trains and registers the ranker first"
    try:
        bundle = root / build_bundle(settings, None, ranker_dir)["bundle_id"]
        decision = promote(settings, bundle)
        assert decision.promoted, decision.reasons
        mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
        champion = MlflowClient().get_model_version_by_alias(settings.mlflow.ranker_model_name, "champion")
        run = MlflowClient().get_run(champion.run_id)
        assert run.data.params["ranker_version"] == ranker_dir.name
    finally:
        write_pointer(root / "LATEST", previous)
        (root / POINTER).unlink(missing_ok=True)  # other tests serve the plain bundle
        (root / HISTORY).unlink(missing_ok=True)


@pytest.mark.slow
def test_training_refuses_a_set_that_fails_its_contract_and_publishes_nothing(ranker_loop, monkeypatch):
    from ltrr_core.contracts.validate import ContractViolation
    from ltrr_core.ranking import train
    from ltrr_core.runtime import bundle_loader

    settings = ranker_loop[0]
    before = (
        sorted(p.name for p in train.rankers_root(settings).glob("R*")) if train.rankers_root(settings).exists() else []
    )
    real = train.build_ranking_set

    def leaking(*args, **kwargs):
        data = real(*args, **kwargs)
        data.frame["intent_kind"] = "cpcd_query"  # simulator ground truth joined in by mistake
        return data

    monkeypatch.setattr(train, "build_ranking_set", leaking)
    with pytest.raises(ContractViolation, match="expect_table_columns_to_match_set"):
        train.train_night(settings, DAYS[2], bundle_loader(settings))
    after = (
        sorted(p.name for p in train.rankers_root(settings).glob("R*")) if train.rankers_root(settings).exists() else []
    )
    assert after == before


@pytest.mark.slow
def test_the_ranker_learns_from_real_likes_of_train_queries_and_beats_the_fusion_on_its_validation_part(ranker_loop):
    """Real engagement: CPCD train searches, candidates from the bundle's own retrieval, likes as
    labels. Validation queries are train queries put aside by hash; no held-out query is read; the
    pools are cached by what they depend on."""
    from ltrr_core.labelled.datasets import project_cpcd_queries
    from ltrr_core.learning_data import query_fold, query_text
    from ltrr_core.ranking import train
    from ltrr_core.ranking.real import cached_real_engagement_set, query_ids, real_engagement_set
    from ltrr_core.runtime import bundle_loader
    from ltrr_core.splits import SplitRefused

    settings = ranker_loop[0].with_overrides(
        **{
            "ranker.sources": ["real"],
            "ranker.real.max_queries": 400,
            "ranker.real.min_queries": 50,
            "ranker.real.memory": "cross_fitted",
        }
    )
    _, report, rows = train.train_night(settings, DAYS[2], bundle_loader(settings, (ranker_loop[2],)))
    assert report["sources"] == ["real"] and report["train_days"] == []
    assert report["contract"]["real_training"]["passed"] and report["contract"]["real_validation"]["passed"]
    assert report["contract"]["real_training"]["data_docs"].startswith("file://")  # its GX Data Docs page
    fitted, validated = report["real"]["fit"]["queries"], report["real"]["validation"]["queries"]
    texts = report["real"]["fit"]["texts"] + report["real"]["validation"]["texts"]
    assert texts <= 400 and texts < fitted + validated and validated >= 40  # one group per (text, memory fold)
    # The memory knows the train searches by heart: each group sees the memory of the other folds.
    assert "memory" in report["real"]["plan"]
    train_texts = set(project_cpcd_queries(settings, "train").queries)
    heldout_texts = set(project_cpcd_queries(settings, "heldout").queries) - train_texts
    used = {query_text(r.removeprefix("cpcd:")) for r in query_ids(rows)}
    assert used <= train_texts and not used & heldout_texts
    assert all(query_fold(r) is not None for r in query_ids(rows))
    evaluation = report["evaluation"]
    assert report["evaluated_on"].startswith(f"{evaluation['n_requests']} real validation queries")
    assert evaluation["n_requests"] == validated  # judged on the served pools, one per query
    assert fitted < report["real"]["fit"]["pools"] <= 2 * fitted  # a wide and (unless empty) a served pool per query
    assert evaluation["ranker"]["ndcg@10"] > evaluation["fusion_baseline"]["ndcg@10"]
    assert "evaluation_logged_day" in report  # the GENERATED day, reported beside it

    def refuse(bundle_id):
        raise AssertionError(f"the cached pools should have been reused, not {bundle_id} reloaded")

    from ltrr_core.learning_data import cache_dir, reference_bundle

    bundle = reference_bundle(settings)
    cached = cached_real_engagement_set(settings, bundle, refuse, cache_dir(settings, "real-pools"))
    assert query_ids(cached.fit).nunique() == fitted and query_ids(cached.validation).nunique() == validated

    def texts(frame):
        return {query_text(r.removeprefix("cpcd:")) for r in query_ids(frame)}

    assert texts(cached.validation) and not texts(cached.validation) & texts(cached.fit)  # split by text, not by fold
    with pytest.raises(SplitRefused, match="train part"):
        real_engagement_set(settings, ranker_loop[2], project_cpcd_queries(settings, "heldout"))


@pytest.mark.slow
def test_memory_modes_are_compared_on_the_same_cross_fitted_validation_pools(ranker_loop):
    """`ltrr ranker compare-memory`: the excluded ranker never learns from memory features, the
    cross-fitted one does, and both are judged on the same train-validation pools."""
    from ltrr_core.learning_data import bundle_q2e_table, reference_bundle
    from ltrr_core.ranking.memory_modes import compare_memory_modes

    settings = ranker_loop[0].with_overrides(**{"ranker.real.max_queries": 200, "ranker.real.min_queries": 50})
    bundle = reference_bundle(settings)
    result = compare_memory_modes(settings, ranker_loop[2], bundle_q2e_table(settings, bundle.name), [0])
    assert set(result.validation) == {"fusion_baseline", "excluded seed 0", "cross_fitted seed 0"}
    assert result.judged_queries >= 30 and result.heldout == {}
    assert result.difference[0] <= result.difference[1]
    assert not any(result.feature_importance["excluded"].values())  # memory is never in its pools
    assert any(result.feature_importance["cross_fitted"].values())
    assert "cross_fitted − excluded" in result.to_markdown()
