"""Promotion gates on real bundles of the test platform: each planted bad candidate is blocked
and the champion keeps serving; a crash before the pointer switch changes nothing; rollback."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _tiny_ranker(directory, settings, ndcg: float, champion_ndcg: float | None):
    """A real CatBoost ranker file on the runtime's feature spec, with the evaluation numbers given."""
    from catboost import CatBoostRanker

    from ltrr_core.features.ranking import FEATURE_SPEC_VERSION, feature_names

    names = feature_names(sorted(settings.retrieval.strategies))
    rng = np.random.default_rng(0)
    model = CatBoostRanker(iterations=5, verbose=False, allow_writing_files=False)
    model.fit(rng.random((40, len(names))), rng.integers(0, 3, 40), group_id=np.repeat(np.arange(8), 5))
    directory.mkdir(parents=True)
    model.save_model(str(directory / "model.cbm"))
    (directory / "ranker.json").write_text(
        json.dumps({"version": directory.name, "feature_spec_version": FEATURE_SPEC_VERSION, "feature_names": names})
    )
    evaluation = {"fusion_baseline": {"ndcg@10": 0.40}, "ranker": {"ndcg@10": ndcg}}
    if champion_ndcg is not None:
        evaluation["champion"] = {"ndcg@10": champion_ndcg}
    checked = {"impressions": {"rows": 100, "quarantined": 1}, "feedback": {"rows": 50, "quarantined": 0}}
    (directory / "report.json").write_text(
        json.dumps(
            {
                "evaluation_day": "2026-04-03",
                "evaluation": evaluation,
                "contract": {"training": {"passed": True}},
                "contracts": {"2026-04-01": checked},
            }
        )
    )
    return directory


def _tiny_policy(directory, settings, lower_bound: float, logging_value: float, ess: float, quarantined: int = 0):
    from catboost import CatBoostClassifier

    strategies = settings.runtime.policy.grid.strategies
    plans = {"lexical25": {"lexical": 25}, "lexical25+memory25": {"lexical": 25, "memory": 25}}
    features = ["n_tokens", "intent_lookup"]
    rng = np.random.default_rng(0)
    model = CatBoostClassifier(iterations=5, verbose=False, allow_writing_files=False)
    model.fit(rng.random((40, len(features) + len(strategies))), rng.integers(0, 2, 40))
    directory.mkdir(parents=True)
    model.save_model(str(directory / "model.cbm"))
    (directory / "policy.json").write_text(
        json.dumps(
            {
                "version": directory.name,
                "plans": plans,
                "feature_names": features,
                "strategies": strategies,
                "cost_penalty": 0.05,
                "budget": 150,
                "epsilon": 0.1,
            }
        )
    )
    # "ess": unclipped weights (what the gate reads); "ess_clipped" only recorded beside it.
    estimate = {
        "estimate": lower_bound + 0.02,
        "ci": [lower_bound, lower_bound + 0.04],
        "ess": ess,
        "ess_clipped": ess * 1.5,
    }
    (directory / "report.json").write_text(
        json.dumps(
            {
                "ope": {"learned_policy": {"switch_dr": estimate}, "logging_policy": {"estimate": logging_value}},
                "contracts": {
                    "2026-04-01": {
                        "impressions": {"rows": 100, "quarantined": quarantined},
                        "feedback": {"rows": 40, "quarantined": 0},
                    }
                },
            }
        )
    )
    return directory


@pytest.fixture
def promotion_settings(q2e_platform, tmp_path):
    """The test platform with its own bundles root (so promotion pointers stay in this test)."""
    from ltrr_core.artifacts import build_bundle, bundles_root

    # Latency is gated in production; here the suite may share 2 cores with other work.
    settings = q2e_platform[0].with_overrides(
        **{"promotion.latency_budget_ms": 20000.0, "promotion.first_champion_latency_budget_ms": 20000.0}
    )
    root = bundles_root(settings)
    saved = {
        name: (root / name).read_text() if (root / name).exists() else None
        for name in ("LATEST", "PROMOTED", "promotions.jsonl")
    }
    for name in ("PROMOTED", "promotions.jsonl"):
        (root / name).unlink(missing_ok=True)
    champion = root / build_bundle(settings)["bundle_id"]
    yield settings, champion, tmp_path
    for name, text in saved.items():
        if text is None:
            (root / name).unlink(missing_ok=True)
        else:
            (root / name).write_text(text)


def test_a_good_candidate_is_promoted_and_recorded_then_rolled_back(promotion_settings):
    from ltrr_core.artifacts import build_bundle, bundles_root
    from ltrr_core.artifacts.champion import history, promoted_bundle
    from ltrr_core.promotion import promote, rollback

    settings, champion, tmp = promotion_settings
    first = promote(settings, champion)
    assert first.promoted and promoted_bundle(settings) == champion
    ranker = _tiny_ranker(tmp / "R_good", settings, ndcg=0.41, champion_ndcg=None)
    policy = _tiny_policy(tmp / "P_good", settings, lower_bound=0.47, logging_value=0.46, ess=120)
    candidate = bundles_root(settings) / build_bundle(settings, policy, ranker)["bundle_id"]
    dry = promote(settings, candidate, dry_run=True)
    assert all(g.passed for g in dry.gates) and not dry.promoted and promoted_bundle(settings) == champion
    second = promote(settings, candidate)
    assert second.promoted and promoted_bundle(settings) == candidate
    smoke = next(g for g in second.gates if g.name == "smoke")
    assert smoke.numbers["queries"] == len(settings.promotion.smoke_queries)
    entry = rollback(settings)
    assert entry["bundle_id"] == champion.name and promoted_bundle(settings) == champion
    actions = [e["action"] for e in history(settings)]
    assert actions == ["promote", "switched", "promote", "promote", "switched", "rollback"]


@pytest.mark.parametrize(
    "plant, gate",
    [
        ("worse_ranker", "ranker"),
        ("low_policy_bound", "policy"),
        ("low_ess", "policy"),
        ("contract_failure", "contracts"),
        ("tampered", "integrity"),
    ],
)
def test_each_gate_blocks_a_planted_bad_candidate_and_the_champion_keeps_serving(promotion_settings, plant, gate):
    from ltrr_core.artifacts import build_bundle, bundles_root
    from ltrr_core.artifacts.champion import history, promoted_bundle
    from ltrr_core.promotion import promote

    settings, champion, tmp = promotion_settings
    assert promote(settings, champion).promoted
    ranker = _tiny_ranker(tmp / "R", settings, ndcg=0.30 if plant == "worse_ranker" else 0.41, champion_ndcg=0.40)
    policy = _tiny_policy(
        tmp / "P",
        settings,
        lower_bound=0.30 if plant == "low_policy_bound" else 0.47,
        logging_value=0.46,
        ess=5 if plant == "low_ess" else 120,
        quarantined=40 if plant == "contract_failure" else 0,
    )
    candidate = bundles_root(settings) / build_bundle(settings, policy, ranker)["bundle_id"]
    if plant == "tampered":
        target = candidate / "retrieval.json"
        target.write_text(target.read_text().replace("rrf", "RRF", 1))
    decision = promote(settings, candidate)
    failed = [g.name for g in decision.gates if not g.passed]
    assert not decision.promoted and gate in failed
    assert promoted_bundle(settings) == champion
    assert history(settings)[-1]["reasons"] and history(settings)[-1]["bundle_id"] == candidate.name
    assert "smoke" in failed  # a refused bundle is never even loaded


def test_a_crash_between_writing_and_switching_leaves_the_champion_serving(promotion_settings):
    from ltrr_core.artifacts import build_bundle, bundles_root
    from ltrr_core.artifacts.champion import promoted_bundle, serving_bundle
    from ltrr_core.promotion import promote

    settings, champion, _ = promotion_settings
    assert promote(settings, champion).promoted
    candidate = bundles_root(settings) / build_bundle(settings)["bundle_id"]

    def crash():
        raise KeyboardInterrupt("killed between write and switch")

    assert all(g.passed for g in promote(settings, candidate, dry_run=True).gates)
    with pytest.raises(KeyboardInterrupt):
        promote(settings, candidate, before_switch=crash)
    assert promoted_bundle(settings) == champion and serving_bundle(settings) == champion
    assert not list(bundles_root(settings).glob(".PROMOTED.*"))  # no half-written pointer left behind
    shutil.rmtree(candidate)


def test_a_first_champion_that_fails_its_gates_leaves_nothing_serving(promotion_settings):
    """The defect this guards: the first champion refused, then the latest ungated build served."""
    from ltrr_core import nightly
    from ltrr_core.artifacts import build_bundle, bundles_root, latest_bundle
    from ltrr_core.artifacts.champion import NoChampion, history, promoted_bundle, require_gated, serving_bundle

    settings, _, _ = promotion_settings
    strict = settings.with_overrides(**{"promotion.first_champion_latency_budget_ms": 0.001})
    with pytest.raises(NoChampion, match="failed its gates.*smoke: p95 .* over the 0 ms budget of a first champion"):
        nightly.ensure_champion(strict)
    refused = history(settings)[-1]
    assert refused["action"] == "promote" and not refused["promoted"]
    assert promoted_bundle(settings) is None
    with pytest.raises(NoChampion, match="no bundle has been promoted"):
        serving_bundle(settings)
    # A newer build exists (the refused one, then another): neither serves, explicitly or not.
    newer = bundles_root(settings) / build_bundle(settings)["bundle_id"]
    assert latest_bundle(settings) == newer
    for bundle in (newer, bundles_root(settings) / refused["bundle_id"]):
        with pytest.raises(Exception, match="has not passed the promotion gates"):
            require_gated(settings, bundle)
    # With a budget it can meet, the same static champion passes and serves.
    decision = nightly.ensure_champion(settings)
    assert decision is not None and decision["promoted"] and serving_bundle(settings) == promoted_bundle(settings)
    assert nightly.ensure_champion(settings) is None  # a champion exists: nothing to do
    assert require_gated(settings, serving_bundle(settings)) == serving_bundle(settings)


def test_the_smoke_gate_refuses_a_slow_candidate_but_not_a_busy_machine(promotion_settings, monkeypatch):
    """Within the budget a candidate passes. Over it (a 1 ms budget here), it passes only while
    the champion timed in the same run is as slow: a candidate 0.5 s slower per query than the
    champion is refused; when the machine is 'busy' (both 0.5 s slower) the same candidate passes."""
    from ltrr_core.artifacts import build_bundle, bundles_root
    from ltrr_core.artifacts.champion import promoted_bundle
    from ltrr_core.promotion import promote
    from ltrr_core.runtime.service import SearchService

    settings, champion, _ = promotion_settings
    settings = settings.with_overrides(
        **{
            "promotion.smoke_repeats": 2,
            "promotion.latency_slack_ms": 25.0,
            "promotion.latency_regression_tolerance": 0.5,
            "promotion.smoke_queries": ["taylor swift", "rock", "beyonce halo", "adele hello"],
        }
    )
    assert promote(settings, champion).promoted
    candidate = bundles_root(settings) / build_bundle(settings)["bundle_id"]
    roomy = next(g for g in promote(settings, candidate, dry_run=True).gates if g.name == "smoke")
    assert roomy.passed and "within the 20000 ms budget" in roomy.reason and roomy.numbers["champion_p95_ms"] > 0
    strict = settings.with_overrides(**{"promotion.latency_budget_ms": 1.0})
    same = next(g for g in promote(strict, candidate, dry_run=True).gates if g.name == "smoke")
    assert same.passed and "so is the champion" in same.reason
    original, slowed = SearchService.search, set()

    def slower(self, *args, **kwargs):
        if self.bundle_id in slowed:
            time.sleep(0.5)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SearchService, "search", slower)
    slowed.add(candidate.name)
    decision = promote(strict, candidate)
    smoke = next(g for g in decision.gates if g.name == "smoke")
    assert not decision.promoted and not smoke.passed and "over the champion's" in smoke.reason
    assert smoke.numbers["p95_ms"] >= 500 and smoke.numbers["p95_ms"] > smoke.numbers["champion_limit_ms"]
    assert smoke.numbers["champion_limit_ms"] == pytest.approx(smoke.numbers["champion_p95_ms"] * 1.5 + 25, abs=0.2)
    assert promoted_bundle(settings) == champion
    slowed.add(champion.name)  # a busy machine: both slow alike
    busy = next(g for g in promote(strict, candidate, dry_run=True).gates if g.name == "smoke")
    assert busy.passed and "so is the champion" in busy.reason and busy.numbers["champion_p95_ms"] >= 500
