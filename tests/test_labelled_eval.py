"""Known answers for ``ltrr eval``'s served evaluation: hand-computed nDCG under the grading rule,
the static mixture chosen within the served budget, candidate hit, paired intervals and slices
-- on a two-query world small enough to compute by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from ltrr_core.config import Settings, load_settings
from ltrr_core.eval.labelled import evaluate_labelled
from ltrr_core.labelled.datasets import LabelledQueries
from ltrr_core.labelled.labels import graded_labels
from ltrr_core.models.policy import Decision
from ltrr_core.retrieval.base import Candidates

L3 = math.log2(3)
IDEAL_Q1 = 2 + 1 / L3  # graded qrels of q1: t1 = 2 at rank 1, its artist ar1 = 1 at rank 2


class _Fixed:
    def __init__(self, name: str, answers: dict[str, list[str]]):
        self.name, self.answers = name, answers

    def retrieve(self, query, k: int) -> Candidates:
        ids = self.answers.get(query.text, [])[:k]
        return Candidates(self.name, tuple(ids), tuple(float(len(ids) - i) for i in range(len(ids))))


class _Service:
    """What evaluate_labelled reads of a SearchService, with fixed answers."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.bundle_id, self.policy_label = "B-test", "learned:v1"
        self.strategies = {"a": _Fixed("a", {"Q One": ["ar1", "t1"], "q two": ["t2"]}), "b": _Fixed("b", {})}
        self.policy = SimpleNamespace(plans={"a_only": {"a": 1}, "b_two": {"b": 2}, "both": {"a": 2, "b": 2}})
        self.understander = SimpleNamespace(understand=lambda text: None)
        self.ranker = None  # a bundle that ranks by fusion
        self.display = pd.DataFrame(
            {
                "id": ["t1", "t2", "ar1", "x"],
                "type": ["track", "track", "artist", "track"],
                "title": ["Song One", "Song Two", "Alpha", "Other"],
                "artists": [["Alpha"], ["Beta"], ["Alpha"], ["Gamma"]],
            }
        ).set_index("id")
        self.served = {"Q One": ["t1", "x"], "q two": ["x", "t2"]}

    def retrieve_plan(self, query, depths):
        from ltrr_core.retrieval.fusion import fuse

        found = [self.strategies[n].retrieve(query, d) for n, d in depths.items() if d > 0]
        return fuse(found, self.settings.retrieval.fusion), {}

    def search(self, text, k=None, request_id=None, explore=True):
        assert explore is False  # evaluation measures the greedy path, no shuffles
        ids = self.served[text]
        decision = Decision("a_only", {"a": 2}, 1.0, {"a": 1.0}, {"a_only": 1.0})
        return SimpleNamespace(
            results=[{"entity_id": e} for e in ids],
            candidate_ids=list(ids),
            decision=decision,
            understanding={"intent": {"track": 0.9, "artist": 0.1} if text == "Q One" else {"artist": 1.0}},
        )


@pytest.fixture
def evaluation():
    settings = load_settings(None, **{"eval.metrics": ["ndcg@10", "recall@10"], "eval.min_slice_queries": 1})
    service = _Service(settings)
    labelled = LabelledQueries({"q1": "Q One", "q2": "q two"}, {"q1": {"t1": 1}, "q2": {"t2": 1}})
    return evaluate_labelled(settings, service, labelled, frozenset({"q one"})), settings, service, labelled


def test_grading_rule_gives_the_liked_tracks_artist_the_related_grade(evaluation):
    _, settings, service, labelled = evaluation
    assert graded_labels(labelled, service.display, settings.eval).qrels == {"q1": {"t1": 2, "ar1": 1}, "q2": {"t2": 2}}


def test_ndcg_by_hand_in_both_views(evaluation):
    result = evaluation[0]
    graded, tracks = result.metrics["graded"], result.metrics["tracks"]
    # hybrid = strategy a's order (b finds nothing): q1 [ar1, t1], q2 [t2]; served: q1 [t1, x], q2 [x, t2]
    assert graded["hybrid"]["ndcg@10"] == pytest.approx(((1 + 2 / L3) / IDEAL_Q1 + 1) / 2, abs=1e-4)
    assert graded["served"]["ndcg@10"] == pytest.approx((2 / IDEAL_Q1 + 1 / L3) / 2, abs=1e-4)
    assert tracks["hybrid"]["ndcg@10"] == pytest.approx((1 / L3 + 1) / 2, abs=1e-4)  # the artist is a miss
    assert tracks["served"]["ndcg@10"] == pytest.approx((1 + 1 / L3) / 2, abs=1e-4)
    assert graded["served"]["recall@10"] == tracks["served"]["recall@10"] == 1.0  # hit metrics: intended only


def test_static_mixture_is_the_best_plan_within_the_served_budget(evaluation):
    result = evaluation[0]
    # served draws 2 candidates; "both" (4) is over budget although it would score higher
    assert result.static_mixture_plan == "a_only"
    assert result.metrics["graded"]["static_mixture"]["ndcg@10"] == pytest.approx((1 / IDEAL_Q1 + 1) / 2, abs=1e-4)
    assert result.candidate_hit["static_mixture"] == {"hit": 0.5, "mean_candidates": 1.0}  # q1 drew only ar1
    assert result.candidate_hit["served"] == {"hit": 1.0, "mean_candidates": 2.0}


def test_paired_interval_excludes_zero_when_every_query_loses(evaluation):
    result = evaluation[0]
    low, high = result.intervals["served-hybrid"]["ndcg@10"]
    q1 = 2 / IDEAL_Q1 - (1 + 2 / L3) / IDEAL_Q1
    q2 = 1 / L3 - 1
    assert low == pytest.approx(min(q1, q2), abs=1e-3) and high == pytest.approx(max(q1, q2), abs=1e-3)
    assert high < 0


def test_slices_split_seen_from_unseen_and_by_intent(evaluation):
    slices = evaluation[0].slices
    assert slices["seen"]["n_queries"] == 1 and slices["unseen"]["n_queries"] == 1
    assert slices["seen"]["strategies"]["served"]["ndcg@10"] == pytest.approx(2 / IDEAL_Q1, abs=1e-4)
    assert slices["intent:track"]["n_queries"] == 1 and slices["intent:artist"]["n_queries"] == 1


def test_report_renders_the_measured_rows_and_the_verdict(evaluation):
    from ltrr_core.eval import report as rep

    result = evaluation[0].to_dict()
    lines = rep.render_heldout(result, "configs/x.yaml")
    text = "\n".join(lines)
    served = result["strategies"]["served"]
    assert f"| served | {served['ndcg@10']:.4f} | {served['recall@10']:.4f} | 1.0000 | 2.0 |" in text
    assert "| served − hybrid |" in text and "served is worse (the interval excludes zero)" in text
    assert "`ltrr --config configs/x.yaml eval --split heldout --json`" in text
    assert "| seen | 1 |" in text and "| unseen | 1 |" in text
    assert "(`a_only`, chosen on these queries" in text
    prov = rep.Provenance(
        "ltrr report", "configs/x.yaml", "abc123", "2026-12-02 10:00 UTC", "x86_64, 2 cores", {"s": 1}
    )
    page = rep.render_report(prov, [lines], {"n_entities": 4, "version": "v1"})
    assert page.startswith("# Results\n") and "at commit `abc123`" in page and "| served |" in page


class _RankedService(_Service):
    """A bundle with a ranker that reverses whatever pool it is given."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.ranker = object()

    def fuse_plan(self, found, depths):
        from ltrr_core.retrieval.fusion import fuse

        return fuse([found[n].prefix(d) for n, d in depths.items()], self.settings.retrieval.fusion), {}

    def rank_fused(self, fused, qu, context, per_strategy, k):
        return [c.entity_id for c in reversed(fused)][:k]


def test_with_a_ranker_the_hybrid_pool_ranked_by_it_is_a_baseline_of_its_own():
    settings = load_settings(None, **{"eval.metrics": ["ndcg@10", "recall@10"], "eval.min_slice_queries": 1})
    labelled = LabelledQueries({"q1": "Q One", "q2": "q two"}, {"q1": {"t1": 1}, "q2": {"t2": 1}})
    result = evaluate_labelled(settings, _RankedService(settings), labelled, frozenset({"q one"}))
    # the hybrid pool reversed: q1 [t1, ar1] (ideal), q2 [t2]
    assert result.metrics["graded"]["hybrid_ranked"]["ndcg@10"] == pytest.approx(1.0, abs=1e-4)
    assert result.candidate_hit["hybrid_ranked"]["hit"] == 1.0
    low, high = result.intervals["served-hybrid_ranked"]["ndcg@10"]
    assert high < 0  # served loses on both queries
    assert (
        "served-hybrid_ranked" not in evaluate_labelled(settings, _Service(settings), labelled, frozenset()).intervals
    )
