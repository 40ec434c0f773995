"""The off-policy learner on a synthetic problem whose best plan depends on the context."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ltrr_core.bandit import learner, training
from ltrr_core.models.policy import LearnedPolicy
from tests.conftest import make_settings

PLANS = {"a100": {"a": 100}, "b100": {"b": 100}, "a25+b25": {"a": 25, "b": 25}}


def _settings(tmp_path):
    return make_settings(
        tmp_path,
        **{
            "runtime.policy": {
                "plans": PLANS,
                "default_plan": "a100",
                "epsilon": 1.0,
                "grid": {"strategies": ["a", "b"], "depths": [0, 25, 50, 100], "budget": 100},
            },
            "bandit.learner.min_engaged_requests": 20,
            "bandit.learner.iterations": 100,
            "bandit.ope.n_bootstrap": 200,
        },
    )


def _window(n_per_day: int, days: list[str], seed: int):
    """Context f in {0, 1}: for f = 0 strategy a finds the wanted entity at rank 40, b never; for
    f = 1 the reverse. Logged uniformly over the library, so the logging value is known."""
    rng = np.random.default_rng(seed)
    rows, ranks = [], []
    library = _settings_library()
    for day in days:
        for i in range(n_per_day):
            f = int(rng.integers(2))
            rank = np.array([40.0, np.inf]) if f == 0 else np.array([np.inf, 40.0])
            plan = list(library)[int(rng.integers(len(library)))]
            found = any(rank[j] <= library[plan].get(s, 0) for j, s in enumerate(["a", "b"]))
            engaged = found and rng.random() < 0.9
            rows.append(
                {
                    "request_id": f"{day}-{i}",
                    "day": day,
                    "timestamp": pd.Timestamp(day, tz="UTC"),
                    "raw_query": f"q{f}",
                    "plan": plan,
                    "depths": json.dumps(library[plan]),
                    "propensity": 1 / len(library),
                    "bundle_id": "synthetic",
                    "policy_features": json.dumps({"f": float(f)}),
                    "engagement": float(engaged),
                    "engaged_entity": "e" if engaged else None,
                    "candidates": sum(library[plan].values()),
                }
            )
            ranks.append(rank if engaged else np.array([np.inf, np.inf]))
    return learner.WindowData(days, pd.DataFrame(rows), {}), np.array(ranks)


def _settings_library():
    from ltrr_core.config import PolicyConfig

    return PolicyConfig(
        plans=PLANS, default_plan="a100", grid={"strategies": ["a", "b"], "depths": [0, 25, 50, 100], "budget": 100}
    ).library()


def test_plan_hits_follow_ranks_and_depths():
    ranks = np.array([[40.0, np.inf], [np.inf, 10.0]])
    hits = training.plan_hits(ranks, PLANS, ["a", "b"])
    assert hits.tolist() == [[1, 0, 0], [0, 1, 1]]


def test_learned_policy_beats_the_logging_policy_where_the_best_plan_depends_on_context(tmp_path):
    settings = _settings(tmp_path)
    data, ranks = _window(400, ["2026-02-01", "2026-02-02"], seed=0)
    policy_dir, report = learner.train_night(settings, data, ranks)
    policy = LearnedPolicy(policy_dir)
    best_for = {f: policy.plan_names[int(np.argmax(policy.values({"f": float(f)})))] for f in (0, 1)}
    assert policy.plans[best_for[0]].get("a", 0) >= 50 and "b" not in policy.plans[best_for[0]]
    assert policy.plans[best_for[1]].get("b", 0) >= 50 and "a" not in policy.plans[best_for[1]]
    ope = report["ope"]
    logging_ci = ope["logging_policy"]["ci"]
    for name in ("ips", "snips", "dr"):
        assert ope["learned_policy"][name]["ci"][0] > logging_ci[1], (name, ope)
    # Every estimator reports the ESS of the same unclipped weights; switch-DR adds its clipped one.
    learned = ope["learned_policy"]
    assert len({learned[name]["ess"] for name in learned}) == 1, learned
    assert "ess_clipped" in learned["switch_dr"]
    assert all("ess_clipped" not in learned[name] for name in ("ips", "snips", "dr"))
    assert report["held_out_day"] == "2026-02-02" and report["training"]["engaged_requests"] > 100
    probabilities = policy.probabilities({"f": 0.0})
    assert sum(probabilities.values()) == pytest.approx(1.0)
    assert min(probabilities.values()) == pytest.approx(policy.epsilon / len(policy.plans))


def test_too_little_engagement_is_refused(tmp_path):
    settings = _settings(tmp_path).with_overrides(**{"bandit.learner.min_engaged_requests": 10_000})
    data, ranks = _window(50, ["2026-02-01"], seed=1)
    with pytest.raises(learner.NotEnoughData, match="min_engaged_requests is 10000"):
        learner.train_night(settings, data, ranks)


@pytest.mark.parametrize("bad", [0.0, 1.7, float("nan"), None])
def test_impressions_with_broken_propensities_are_quarantined_and_never_trained_on(tmp_path, bad):
    import pyarrow as pa

    from ltrr_core.durable import write_parquet
    from ltrr_core.logs import IMPRESSION_SCHEMA
    from tests.test_log_contracts import DAY, _impression

    settings = _settings(tmp_path)
    rows = [_impression(f"ok-{i}", policy=None, policy_features="{}") for i in range(5)]
    rows.append(_impression("broken", propensity=bad, policy=None, policy_features="{}"))
    frame = pd.DataFrame(rows)
    # a writer that bypassed the runtime's checks: propensity nullable, anything goes
    schema = IMPRESSION_SCHEMA.set(
        IMPRESSION_SCHEMA.get_field_index("propensity"), pa.field("propensity", pa.float64())
    )
    write_parquet(
        pa.Table.from_pandas(frame, preserve_index=False, schema=schema),
        settings.data_dir / settings.runtime.log_dir / "impressions" / f"date={DAY}" / "part-0.parquet",
    )
    from datetime import date

    data = learner.load_window(settings, date.fromisoformat(DAY), 1)
    assert "broken" not in set(data.outcomes["request_id"]) and len(data.outcomes) == 5
    report = data.validation[DAY]["impressions"]
    assert report["quarantined"] == 1 and any("propensity" in reason for reason in report["reasons"])


def test_a_one_day_window_holds_out_a_share_of_its_requests_for_the_estimate(tmp_path):
    settings = _settings(tmp_path)
    data, ranks = _window(400, ["2026-02-01"], seed=3)
    _, report = learner.train_night(settings, data, ranks)
    held_out = report["ope"]["n"]
    assert report["held_out_day"] is None and report["held_out"] == "30% of 2026-02-01's requests"
    assert report["training"]["requests"] + held_out == 400 and 80 <= held_out <= 160
    # stable: the same requests are held out on a re-run
    again = learner.held_out_rows(data.outcomes, None, 0.3)
    assert again.sum() == held_out and (again == learner.held_out_rows(data.outcomes, None, 0.3)).all()


def test_real_rows_teach_the_policy_a_context_its_logs_never_showed(tmp_path):
    """Logs hold only f = 0 (strategy a finds it); real train queries hold f = 1, where only b does.
    Trained on both, the policy picks b for f = 1; on the logs alone it has no reason to."""
    from ltrr_core.bandit.real import RealPlanRows

    settings = _settings(tmp_path)
    data, ranks = _window(400, ["2026-02-01", "2026-02-02"], seed=0)
    only_a = (data.outcomes["policy_features"] == json.dumps({"f": 0.0})).to_numpy()
    data = learner.WindowData(data.days, data.outcomes[only_a].reset_index(drop=True), {})
    ranks = ranks[only_a]
    real = RealPlanRows(pd.DataFrame({"f": [1.0] * 200}), np.tile([np.inf, 30.0], (200, 1)), ["a", "b"], "synthetic")

    def best_for_real_context(policy_dir) -> dict[str, int]:
        policy = LearnedPolicy(policy_dir)
        return policy.plans[policy.plan_names[int(np.argmax(policy.values({"f": 1.0})))]]

    with_real, report = learner.train_night(settings, data, ranks, real)
    assert report["real"]["queries"] == 200 and report["real"]["replayable"] == 200
    assert best_for_real_context(with_real).get("b", 0) >= 50
    logs_only, _ = learner.train_night(settings, data, ranks)
    assert best_for_real_context(logs_only).get("b", 0) == 0


@pytest.mark.slow
def test_real_rows_replay_the_liked_tracks_of_train_queries_with_a_cross_fitted_memory(bundle_dir, q2e_platform):
    """The memory index learned the train searches: replayed with it whole, it finds the liked
    track of nearly every train query. Cross-fitted, each (query, fold) row sees the memory of the
    other folds only, and finds far fewer; excluded, memory is never credited."""
    from ltrr_core.bandit.real import real_plan_rows
    from ltrr_core.learning_data import query_text
    from ltrr_core.runtime import load_service

    settings = q2e_platform[0].with_overrides(
        **{"ranker.real.max_queries": 120, "bandit.learner.real_memory": "cross_fitted"}
    )
    service = load_service(settings, bundle_dir)
    strategies = training.action_strategies(settings)
    memory = strategies.index("memory")
    rows = real_plan_rows(settings, service, strategies)
    assert rows.ranks.shape == (len(rows.features), len(strategies)) and len(rows.features) >= 120
    found = np.isfinite(rows.ranks).any(axis=1)
    assert found.mean() > 0.8  # real lookups: lexical / structured find the liked track
    assert (rows.features["n_chars"] > 0).all()

    from ltrr_core.learning_data import folded_train_queries

    queries = folded_train_queries(settings, service.display)
    ids = list(queries.qrels)
    whole = training.replay_ranks(
        service,
        [query_text(q) for q in ids],
        [{e for e, g in queries.qrels[q].items() if g >= settings.eval.liked_track_grade} for q in ids],
        ["memory"],
        settings.bandit.learner.replay_depth,
    )[:, 0]
    crossed = rows.ranks[:, memory]
    assert np.isfinite(whole).mean() > 0.9  # the leak cross-fitting removes
    assert np.isfinite(crossed).mean() < np.isfinite(whole).mean() - 0.3

    excluded = real_plan_rows(
        settings.with_overrides(**{"bandit.learner.real_memory": "excluded"}), service, strategies
    )
    assert len(excluded.features) == 120 and np.isinf(excluded.ranks[:, memory]).all()
    assert (excluded.features["memory_exact"] == 0).all()


def _timed(data, ms_per_strategy: dict[str, float], seed: int = 1):
    """The window with stage timings logged: each strategy the plan ran took its base time plus
    1 ms per 100 candidates of depth, with noise (what the runtime's trace records)."""
    rng = np.random.default_rng(seed)
    timings = [
        json.dumps(
            {
                s: float(ms_per_strategy[s] + depth / 100 + rng.exponential(0.5))
                for s, depth in json.loads(d).items()
                if depth > 0
            }
        )
        for d in data.outcomes["depths"]
    ]
    return learner.WindowData(data.days, data.outcomes.assign(timings_ms=timings), data.validation)


@pytest.mark.parametrize("slow", ["a", "b"])
def test_the_policy_skips_a_strategy_whose_logged_latency_does_not_pay(tmp_path, slow):
    """Both strategies find what people want equally (rank 40 for every context); one of them
    took 80 ms per request in the logged traces. The fitted latency lines price it, and the
    learned policy's greedy plan for every context leaves it out -- for either one made slow."""
    settings = _settings(tmp_path)
    data, ranks = _window(300, ["2026-02-01", "2026-02-02"], seed=3)
    ranks = np.where(np.isfinite(ranks).any(axis=1)[:, None], 40.0, np.inf)  # both find every engaged entity
    fast = "b" if slow == "a" else "a"
    policy_dir, report = learner.train_night(settings, _timed(data, {slow: 80.0, fast: 1.0}), ranks)
    policy = LearnedPolicy(policy_dir)
    lines = report["latency"]["lines"]
    assert lines[slow][0] > 60 and lines[fast][0] < 5 and 0 < lines[fast][1] < 0.05
    for f in (0.0, 1.0):
        greedy = policy.plans[policy.greedy({"f": f})]
        assert greedy.get(slow, 0) == 0 and greedy.get(fast, 0) > 0, greedy
    latency = dict(zip(policy.plan_names, policy.plan_latency_ms))
    assert latency[f"{slow}100"] > 60 > latency[f"{fast}100"]


def test_logs_without_timings_leave_the_policy_priced_by_candidates_alone(tmp_path):
    settings = _settings(tmp_path)
    data, ranks = _window(200, ["2026-02-01", "2026-02-02"], seed=0)
    policy_dir, report = learner.train_night(settings, data, ranks)
    policy = LearnedPolicy(policy_dir)
    assert report["latency"]["lines"] == {} and not policy.plan_latency_ms.any()
    np.testing.assert_allclose(policy.plan_penalties, policy.cost_penalty * policy.plan_costs)
