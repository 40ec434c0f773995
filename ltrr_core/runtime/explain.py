"""What one query went through, stage by stage: the runtime's ``GET /explain`` page and the JSON
it renders (``GET /explain.json``), for a search engineer asking "why these results?".

Stages, in the order the request ran them: query understanding (normalised text, intent,
interpretations with their slots), the policy's plan (greedy: what the bundle serves when it does
not explore, with the probability the policy gives it and each strategy's marginal), each
strategy's candidates with ranks and scores, the fused list with provenance, the ranker's
features and score per shown result with its strongest contributions (SHAP), and the time each
stage took. An explanation is not an impression: nothing is logged and no exploration is drawn.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from jinja2 import Environment, select_autoescape

from ..features.ranking import feature_names
from .service import SearchService

FUSED_SHOWN = 30  # fused candidates listed (the ranker sees ``ranker.rerank_depth`` of them)
PLANS_SHOWN = 8  # likeliest plans of the exploring policy listed


@dataclass(frozen=True)
class ExplainedCandidate:
    rank: int
    entity_id: str
    title: str
    artists: list[str]
    type: str
    score: float | None


@dataclass(frozen=True)
class ExplainedStrategy:
    name: str
    depth: int
    n: int
    ms: float | None
    meta: dict[str, Any]
    candidates: list[ExplainedCandidate]


@dataclass(frozen=True)
class ExplainedResult:
    position: int
    entity_id: str
    title: str
    artists: list[str]
    type: str
    score: float  # the ranker's score (or fusion's, without a ranker)
    fused_rank: int | None  # where fusion put it, before the ranker
    found_by: dict[str, list[float]]  # strategy -> [rank, score]
    features: dict[str, float | None]  # the ranker's inputs, by name
    top_features: list[dict[str, float]]  # strongest SHAP contributions to its score


@dataclass(frozen=True)
class Explanation:
    query: str
    request_id: str
    bundle_id: str
    policy: str
    plan: str
    depths: dict[str, int]
    propensity: float  # P(this plan) when the policy explores
    plan_probabilities: dict[str, float]  # the exploring distribution's likeliest plans
    strategy_probabilities: dict[str, float]  # P(strategy runs) under that distribution
    policy_features: dict[str, float]
    understanding: dict[str, Any]
    strategies: list[ExplainedStrategy]
    fused: list[ExplainedCandidate]
    n_fused: int
    ranker: str
    results: list[ExplainedResult]
    timings_ms: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def explain_query(service: SearchService, text: str, k: int) -> Explanation:
    """Run ``text`` through ``service`` greedily with the ranker's explanations on (InvalidQuery
    for text that cannot be searched, as ``search`` raises it)."""
    response = service.search(text, k=k, explain=True, explore=False)
    fused_rank = {entity_id: rank for rank, entity_id in enumerate(response.candidate_ids, start=1)}
    names = feature_names(list(response.ranking.get("strategies", [])))
    rows = response.ranking.get("rows", [])
    top = response.ranking.get("top_features") or [[] for _ in rows]
    results = [
        ExplainedResult(
            position=result["position"],
            entity_id=result["entity_id"],
            title=result["title"] or "",
            artists=list(result["artists"]),
            type=result["type"] or "",
            score=result["score"],
            fused_rank=fused_rank.get(result["entity_id"]),
            found_by={s: [float(rank), float(score)] for s, (rank, score) in row["found_by"].items()},
            features=dict(zip(names, row["values"])),
            top_features=contributions,
        )
        for result, row, contributions in zip(response.results, rows, top)
    ]
    strategies = [
        ExplainedStrategy(
            name,
            int(trace["depth"]),
            int(trace["n"]),
            response.timings_ms.get(name),
            dict(trace.get("meta") or {}),
            [
                _candidate(service, rank, entity_id, score)
                for rank, (entity_id, score) in enumerate(zip(trace["ids"], trace["scores"]), start=1)
            ],
        )
        for name, trace in response.per_strategy.items()
    ]
    fused = [
        _candidate(service, rank, entity_id, None)
        for rank, entity_id in enumerate(response.candidate_ids[:FUSED_SHOWN], start=1)
    ]
    decision = response.decision
    distribution = service.policy.probabilities(response.policy_features)
    likeliest = sorted(distribution.items(), key=lambda item: -item[1])[:PLANS_SHOWN]
    marginals = {
        name: float(sum(p for plan, p in distribution.items() if service.policy.plans[plan].get(name, 0) > 0))
        for name in service.strategies
    }
    return Explanation(
        query=text,
        request_id=response.request_id,
        bundle_id=response.bundle_id,
        policy=response.policy,
        plan=decision.plan,
        depths=dict(decision.depths),
        propensity=float(distribution.get(decision.plan, 0.0)),
        plan_probabilities={plan: float(p) for plan, p in likeliest},
        strategy_probabilities=marginals,
        policy_features={n: float(v) for n, v in response.policy_features.items()},
        understanding=response.understanding,
        strategies=strategies,
        fused=fused,
        n_fused=len(response.candidate_ids),
        ranker=str(response.ranking.get("ranker", "fusion")),
        results=results,
        timings_ms=dict(response.timings_ms),
    )


def _candidate(service: SearchService, rank: int, entity_id: str, score: float | None) -> ExplainedCandidate:
    row = service.display.loc[entity_id] if entity_id in service.display.index else None
    artists = [] if row is None or row["artists"] is None else [str(a) for a in row["artists"]]
    return ExplainedCandidate(
        rank,
        entity_id,
        "" if row is None else str(row["title"] or ""),
        artists,
        "" if row is None else str(row["type"] or ""),
        score,
    )


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    return str(value)


_ENVIRONMENT = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_ENVIRONMENT.filters["num"] = _number

PAGE = _ENVIRONMENT.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>explain{% if e %}: {{ e.query }}{% endif %} — ltrr</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em} h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.4em 0} td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4} .num{text-align:right;font-variant-numeric:tabular-nums} .muted{color:#777}
.strategies{display:flex;flex-wrap:wrap;gap:1.2em} details{margin:.2em 0} code{background:#f4f4f4;padding:0 3px}
.error{color:#a00;font-weight:bold}
</style></head><body>
<h1>Why these results?</h1>
<form method="get" action="explain"><input name="q" size="50" value="{{ query }}" aria-label="query">
<input name="k" size="3" value="{{ k }}" aria-label="results"> <button type="submit">explain</button>
{% if e %}<a href="explain.json?q={{ e.query | urlencode }}&amp;k={{ k }}">JSON</a>{% endif %}</form>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
{% if e %}
<p>Bundle <code>{{ e.bundle_id }}</code>, policy <code>{{ e.policy }}</code>, ranker <code>{{ e.ranker }}</code>.
Nothing of this request was logged; the plan is the greedy one, what the bundle serves without an exploration draw.</p>

<h2 id="timings">Timings (ms)</h2>
<table><tr>{% for stage in e.timings_ms %}<th>{{ stage }}</th>{% endfor %}</tr>
<tr>{% for ms in e.timings_ms.values() %}<td class="num">{{ ms | num(2) }}</td>{% endfor %}</tr></table>

<h2 id="understanding">1. Query understanding</h2>
<p>Normalised: <code>{{ e.understanding.normalised }}</code>{% if e.understanding.corrections %}; corrections:
{% for wrong, right in e.understanding.corrections.items() %}<code>{{ wrong }}</code> → <code>{{ right | join(" / ") if right is not string else right }}</code> {% endfor %}{% endif %}.
Intent: {% for name, p in e.understanding.intent.items() %}{{ name }} {{ p | num(3) }}{% if not loop.last %}, {% endif %}{% endfor %}.</p>
<table><tr><th>interpretation</th><th>probability</th><th>intent</th><th>slots (kind = value, confidence)</th><th>unexplained</th></tr>
{% for i in e.understanding.interpretations %}<tr><td class="num">{{ loop.index }}</td><td class="num">{{ i.probability | num(3) }}</td>
<td>{{ i.intent }}</td><td>{% for s in i.slots %}{{ s.kind }} = <b>{{ s.display or s.value }}</b> ({{ s.confidence | num(2) }}{% if s.corrected %}, corrected{% endif %}{% if s.partial %}, partial{% endif %}){% if not loop.last %}; {% endif %}{% endfor %}</td>
<td>{{ i.unexplained | join(" ") }}</td></tr>{% endfor %}</table>

<h2 id="plan">2. The policy's plan</h2>
<p>Plan <b>{{ e.plan }}</b>: {% for name, depth in e.depths.items() %}{{ name }} at depth {{ depth }}{% if not loop.last %}, {% endif %}{% endfor %}.
When the policy explores it draws this plan with probability <b>{{ e.propensity | num(4) }}</b> (the propensity its logs carry).</p>
<table><tr><th>likeliest plans</th><th>P(plan)</th></tr>{% for plan, p in e.plan_probabilities.items() %}
<tr><td>{% if plan == e.plan %}<b>{{ plan }}</b>{% else %}{{ plan }}{% endif %}</td><td class="num">{{ p | num(4) }}</td></tr>{% endfor %}</table>
<table><tr><th>strategy</th><th>P(runs)</th></tr>{% for name, p in e.strategy_probabilities.items() %}
<tr><td>{{ name }}</td><td class="num">{{ p | num(4) }}</td></tr>{% endfor %}</table>
<details><summary>policy features</summary><table>{% for name, v in e.policy_features.items() %}
<tr><td>{{ name }}</td><td class="num">{{ v | num(4) }}</td></tr>{% endfor %}</table></details>

<h2 id="strategies">3. Strategies</h2>
<div class="strategies">{% for s in e.strategies %}<div><b>{{ s.name }}</b>: {{ s.n }} candidates at depth {{ s.depth }}{% if s.ms is not none %}, {{ s.ms | num(2) }} ms{% endif %}
<table><tr><th>rank</th><th>entity</th><th>score</th></tr>{% for c in s.candidates %}
<tr><td class="num">{{ c.rank }}</td><td>{{ c.title }}{% if c.artists %} <span class="muted">— {{ c.artists | join(", ") }}</span>{% endif %} <span class="muted">({{ c.type }})</span></td><td class="num">{{ c.score | num(4) }}</td></tr>{% endfor %}</table>
{% if s.meta %}<details><summary>meta</summary><code>{{ s.meta }}</code></details>{% endif %}</div>{% endfor %}</div>

<h2 id="fused">4. Fused ({{ e.n_fused }} candidates; first {{ e.fused | length }})</h2>
<table><tr><th>rank</th><th>entity</th><th>type</th></tr>{% for c in e.fused %}
<tr><td class="num">{{ c.rank }}</td><td>{{ c.title }}{% if c.artists %} <span class="muted">— {{ c.artists | join(", ") }}</span>{% endif %}</td><td>{{ c.type }}</td></tr>{% endfor %}</table>

<h2 id="results">5. Ranked results ({{ e.ranker }})</h2>
<table><tr><th>#</th><th>entity</th><th>score</th><th>fused rank</th><th>found by (rank, score)</th><th>strongest contributions</th></tr>
{% for r in e.results %}<tr><td class="num">{{ r.position }}</td>
<td>{{ r.title }}{% if r.artists %} <span class="muted">— {{ r.artists | join(", ") }}</span>{% endif %} <span class="muted">({{ r.type }}, {{ r.entity_id }})</span>
<details><summary>features</summary><table>{% for name, v in r.features.items() %}<tr><td>{{ name }}</td><td class="num">{{ v | num(4) }}</td></tr>{% endfor %}</table></details></td>
<td class="num">{{ r.score | num(4) }}</td><td class="num">{{ r.fused_rank | num }}</td>
<td>{% for s, rs in r.found_by.items() %}{{ s }} ({{ rs[0] | int }}, {{ rs[1] | num(3) }}){% if not loop.last %}<br>{% endif %}{% endfor %}</td>
<td>{% for f in r.top_features %}{{ f.feature }} {{ "%+.3f" | format(f.contribution) }}{% if not loop.last %}<br>{% endif %}{% endfor %}</td></tr>{% endfor %}</table>
{% endif %}
</body></html>
""")


def render_html(explanation: Explanation | None, query: str = "", k: int = 10, error: str | None = None) -> str:
    """The page: the form, and the explanation (or the error that stopped it)."""
    return PAGE.render(e=explanation, query=query, k=k, error=error)
