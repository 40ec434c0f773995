"""Two nights of the closed loop on the test platform: simulate with the apprentice, train,
serve the learned policy, measure, and find everything in the logs and MLflow."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loop(q2e_platform, bundle_dir, tmp_path_factory):
    import yaml

    from ltrr_core.eval.policy_nights import evaluate_nights

    out = tmp_path_factory.mktemp("loop")
    overrides = {
        "runtime": {"log_dir": str(out / "logs")},
        "simulate": {"out_dir": str(out / "sim")},
        "bandit": {
            "out_dir": str(out / "policies"),
            "learner": {"min_engaged_requests": 10, "iterations": 60},
            "ope": {"n_bootstrap": 200},
        },
        "mlflow": {"tracking_uri": f"sqlite:///{out / 'mlflow.db'}"},
    }
    config = out / "loop.yaml"
    config.write_text(yaml.safe_dump({"extends": str(q2e_platform[2]), **overrides}))
    from ltrr_core.config import load_settings

    settings = load_settings(config)
    from ltrr_core.runtime import bundle_loader

    evaluation = evaluate_nights(settings, bundle_loader(settings), 2, 45)
    return settings, evaluation.nights, config, evaluation


def test_nights_switch_from_the_apprentice_to_the_learned_policy(loop):
    settings, nights, *_ = loop
    assert [n["policy"].split(":")[0] for n in nights] == ["epsilon_default", "learned"]
    for night in nights:
        m = night["candidate_hit_rate"]
        assert set(m["single_strategies"]) == set(settings.runtime.policy.grid.strategies)
    second = nights[1]
    assert "covers_measured" in second["previous_estimate"]
    # The second night's policy is also judged against static plans chosen on the
    # previous day (night 1, ground truth), and the learned night is pooled.
    prior = second["candidate_hit_rate"]["learned"]["static_from_previous_day"]
    costs = {n: sum(d.values()) for n, d in settings.runtime.policy.library().items()}
    budget = second["candidate_hit_rate"]["learned"]["avg_candidates"]
    assert costs[prior["best_static"]["plan"]] <= budget
    mixture_cost = sum(share * costs[n] for n, share in prior["best_static_mixture"]["plans"].items())
    assert mixture_cost == pytest.approx(budget, abs=0.2)
    pooled = loop[3].pooled
    assert pooled["nights"] == 1 and pooled["requests"] == second["simulation"]["requests"]
    assert pooled["learned"] == second["candidate_hit_rate"]["learned"]["hit_rate"]
    assert set(pooled["baselines"]) == {
        "best_static",
        "best_static_mixture",
        "previous_day_best_static",
        "previous_day_best_static_mixture",
    }


def test_the_learned_policy_logs_its_exact_propensities(loop):
    from ltrr_core.bandit.learner import policies_root
    from ltrr_core.logs import read_logs
    from ltrr_core.models.policy import LearnedPolicy

    settings, nights, *_ = loop
    day = nights[1]["day"]
    impressions = read_logs(settings.data_dir / settings.runtime.log_dir, "impressions", day)
    version = nights[1]["policy"].split(":", 1)[1]
    policy = LearnedPolicy(policies_root(settings) / version)
    for row in impressions.head(30).itertuples():
        features = json.loads(row.policy_features)
        assert row.propensity == pytest.approx(policy.probabilities(features)[row.plan])
        assert row.propensity >= policy.epsilon / len(policy.plans)


def test_each_training_is_an_mlflow_run_with_a_challenger(loop):
    import mlflow
    from mlflow import MlflowClient

    from ltrr_core.bandit import training

    settings, nights, *_ = loop
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    client = MlflowClient()
    challenger = client.get_model_version_by_alias(settings.mlflow.policy_model_name, "challenger")
    assert challenger.run_id == nights[-1]["training"]["mlflow_run"]
    run = client.get_run(challenger.run_id)
    assert "learned.dr.estimate" in run.data.metrics and run.inputs.dataset_inputs
    artifacts = {a.path for a in client.list_artifacts(challenger.run_id)}
    assert {"ope_intervals.png", "report.json"} <= artifacts
    info = mlflow.models.get_model_info(f"models:/{settings.mlflow.policy_model_name}/{challenger.version}")
    names = info.signature.inputs.input_names()
    depths = [f"depth:{s}" for s in training.action_strategies(settings)]
    assert names[-len(depths) :] == depths and "memory_exact" in names  # context, then the plan's depths
    assert info.saved_input_example_info is not None
    # the evaluation itself: per-night metrics (one step per night) and the learning-curve plot
    evaluation = loop[3]
    assert {a.path for a in client.list_artifacts(evaluation.mlflow_run)} == {"nights.png", "evaluation.json"}
    learned = client.get_metric_history(evaluation.mlflow_run, "learned")
    assert [m.step for m in learned] == [0, 1]
    assert learned[1].value == nights[1]["candidate_hit_rate"]["learned"]["hit_rate"]


def test_the_learned_policy_is_measured_on_real_cpcd_held_out_queries(loop):
    from ltrr_core.artifacts import latest_bundle
    from ltrr_core.eval.policy_nights import evaluate_cpcd
    from ltrr_core.runtime import load_service

    settings, *_ = loop
    service = load_service(settings, latest_bundle(settings))
    assert service.policy_label.startswith("learned:")
    result = evaluate_cpcd(settings, service, limit=200)  # of the 623 held-out queries (the command runs all)
    assert result["n_queries"] == 200
    assert result["served"] > 0.3  # real held-out queries: the greedy plans find most liked tracks
    assert result["avg_candidates"] <= settings.runtime.policy.grid.budget  # greedy plans stay within the budget


def test_the_train_bandit_flow_runs_in_prefect_and_registers_a_challenger(loop, prefect_harness):
    import mlflow
    from mlflow import MlflowClient

    from flows.train_bandit import train_bandit

    settings, nights, config, _ = loop
    report = train_bandit(nights[-1]["day"], 2, str(config))
    assert report["window"] == [n["day"] for n in nights] and report["held_out_day"] == nights[-1]["day"]
    assert set(report["ope"]["learned_policy"]) == set(settings.bandit.ope.estimators)
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    challenger = MlflowClient().get_model_version_by_alias(settings.mlflow.policy_model_name, "challenger")
    assert challenger.run_id == report["mlflow"]["run_id"]
