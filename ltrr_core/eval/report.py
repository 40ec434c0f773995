"""``docs/results.md``: every headline number with the command, config, seeds, commit and date
that produced it, per slice, with intervals -- rendered from the typed results of the
evaluations themselves, so that the README quotes nothing that no command reproduces.

Sections: real held-out CPCD queries (``ltrr eval``: served vs the static hybrid and the best
static mixture), the loop on GENERATED traffic (the nightly records of ``make demo``), query
understanding on MusicRecoNER (``ltrr eval-qu``) and, when asked, the tuning sweeps on the
train part.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Settings

SYSTEM_ORDER = ("served", "static_mixture", "hybrid", "hybrid_ranked")


@dataclass(frozen=True)
class Provenance:
    command: str
    config: str
    commit: str
    date: str
    machine: str
    seeds: dict[str, Any]
    via: str | None = None  # what people run to regenerate (a make target), when not the command itself


def provenance(
    settings: Settings, command: str, config: str, repo: Path, via: str | None = None, output: Path | None = None
) -> Provenance:
    """The commit (``+uncommitted changes`` when a tracked file other than ``output`` -- the page
    being regenerated -- differs from it), the UTC date, the machine and every seed the numbers
    depend on."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = [line.split(maxsplit=1)[1] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    mine = (
        str(Path(output).resolve().relative_to(Path(repo).resolve()))
        if output and Path(output).resolve().is_relative_to(Path(repo).resolve())
        else None
    )
    if any(path != mine for path in changed):
        commit += " + uncommitted changes"
    import psutil

    machine = f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    seeds = {
        "splits.seed": settings.splits.seed,
        "simulate.seed": settings.simulate.seed,
        "runtime.seed": settings.runtime.seed,
        "bandit.learner.seed": settings.bandit.learner.seed,
        "bootstrap": f"{settings.eval.n_bootstrap} resamples, seed 0",
    }
    return Provenance(command, config, commit, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), machine, seeds, via)


def _f(value: Any, pattern: str = "{:.4f}") -> str:
    return "–" if value is None else pattern.format(value)


def _ci(interval: list[float] | None) -> str:
    return "–" if not interval else f"[{interval[0]:+.4f}, {interval[1]:+.4f}]"


def _verdict(interval: list[float]) -> str:
    low, high = interval
    if low > 0:
        return "served is better (the interval excludes zero)"
    if high < 0:
        return "served is worse (the interval excludes zero)"
    return "no detectable difference (the interval contains zero)"


def render_heldout(result: dict[str, Any], config: str) -> list[str]:
    metrics = list(next(iter(result["strategies"].values())))
    head = metrics[0]
    slices = result["slices"]
    lines = [
        "## 1. Real held-out CPCD queries: what users get",
        "",
        f"Command: `ltrr --config {config} eval --split heldout --json`. Bundle `{result['bundle_id']}` "
        f"(policy `{result['policy']}`). {result['n_queries']} distinct queries of the held-out conversations with "
        f"a liked track: {slices.get('seen', {}).get('n_queries', 0)} **seen** (the normalised text was a train-part "
        f"search or a logged query: the memory index could know it) and {slices.get('unseen', {}).get('n_queries', 0)} "
        f"**unseen**. Labels: {result['label_rule']}. `served` = the bundle's "
        "greedy plan, fusion and ranker through `SearchService.search` (no exploration); `static_mixture` = the best "
        f"single plan within the served budget (`{result['static_mixture_plan']}`, chosen on these queries: an upper "
        "bound for any static plan); `hybrid` = every strategy at depth 100, fused; `hybrid_ranked` = the hybrid's "
        "pool ranked by the bundle's ranker (the static hybrid with the same learned ranker).",
        "",
        "| system | " + " | ".join(metrics) + " | candidate hit | mean candidates |",
        "|---|" + "---|" * (len(metrics) + 2),
    ]
    names = [n for n in SYSTEM_ORDER if n in result["strategies"]]
    names += [n for n in result["strategies"] if n not in SYSTEM_ORDER]
    for name in names:
        values, hit = result["strategies"][name], result["candidate_hit"][name]
        lines.append(
            f"| {name} | "
            + " | ".join(_f(values[m]) for m in metrics)
            + f" | {_f(hit['hit'])} | {_f(hit['mean_candidates'], '{:.1f}')} |"
        )
    lines += [
        "",
        f"Paired differences (95% percentile bootstrap over queries; {head} is the headline):",
        "",
        "| comparison | " + " | ".join(metrics) + " | verdict on " + head + " |",
        "|---|" + "---|" * (len(metrics) + 1),
    ]
    for name, by_metric in result["intervals"].items():
        lines.append(
            f"| {name.replace('-', ' − ')} | "
            + " | ".join(_ci(by_metric[m]) for m in metrics)
            + f" | {_verdict(by_metric[head])} |"
        )
    lines += [
        "",
        f"By slice ({head}; the interval is served − hybrid):",
        "",
        "| slice | queries | served | static mixture | hybrid | served − hybrid | served − static mixture |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, part in slices.items():
        s = part["strategies"]
        lines.append(
            f"| {name} | {part['n_queries']} | {_f(s['served'][head])} | {_f(s['static_mixture'][head])} | "
            f"{_f(s['hybrid'][head])} | {_ci(part['intervals']['served-hybrid'][head])} | "
            f"{_ci(part['intervals']['served-static_mixture'][head])} |"
        )
    tracks = result["views"]["tracks"]
    lines += [
        "",
        "The same systems with track labels only (an artist entity counts as a miss), reported once:",
        "",
        "| system | " + " | ".join(metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(_f(tracks[name][m]) for m in metrics) + " |")
    return lines + [""]


def render_loop(curve: list[dict[str, Any]], config: str) -> list[str]:
    lines = [
        "## 2. The loop on GENERATED traffic (`make demo`)",
        "",
        f"Command: `make demo` (`ltrr --config {config} demo`), rows from the nightly records. GENERATED: simulated "
        "people (the `simulate` half of the Last.fm users) type intents whose truth never feeds the platform "
        "(CPCD `simulate` conversations, the `truth` half of the Last.fm tag pairs, co-listening among the simulated "
        "people), with phrasings mined from real requests and a click model on top. Candidate recall and counts are "
        "measured on the whole candidate sets (log schema 1.4). The policy estimate is switch-DR on the night's held-out "
        "requests; `ESS` from the unclipped weights.",
        "",
        "| night | day | served by | cand. recall | nDCG@10 | reward | candidates | policy estimate [95% CI] | ESS | "
        "measured next day | ranker nDCG@10 (fusion) where gated | promoted | why not |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in curve:
        policy, promotion = row["policy"], row["promotion"]
        estimate = (
            f"{policy['estimate']:.3f} [{policy['ci'][0]:.3f}, {policy['ci'][1]:.3f}]"
            if policy["estimate"] is not None
            else str(policy["trained"])
        )
        served_by = ", ".join(f"{k} ({v})" for k, v in (row["served_by"]["policy"] or {}).items())
        lines.append(
            f"| {row['night']} | {row['date']} | {served_by} | {_f(row['candidate_recall'])} | {_f(row['ndcg@10'])} | "
            f"{_f(row['reward'])} | {_f(row['unique_candidates'], '{:.0f}')} | {estimate} | {_f(policy['ess'], '{:.0f}')} | "
            f"{_f(policy['measured_next_day']) if policy['served_next_day'] else '(not served)'} | "
            f"{_ranker(row['ranker'])} | {_promoted(promotion)} | {_why_not(promotion)} |"
        )
    return lines + [""]


def _promoted(promotion: dict[str, Any]) -> str:
    if not promotion["promoted"]:
        return "no"
    models = promotion.get("models")
    return f"yes ({' + '.join(models)})" if models else "yes"


def _why_not(promotion: dict[str, Any]) -> str:
    """The refusals of the night: every refused candidate's reasons (a night may gate two)."""
    attempts = promotion.get("attempts") or [promotion]
    return " / then: ".join("; ".join(a.get("reasons") or []) for a in attempts if not a.get("promoted"))


def _ranker(ranker: dict[str, Any]) -> str:
    scores = ranker.get("ndcg@10")
    if not isinstance(scores, dict):
        return str(ranker.get("trained") or "–")
    return f"{scores['ranker']:.4f} ({scores['fusion_baseline']:.4f})"


def render_bandit(lines_json: list[dict[str, Any]], command: str) -> list[str]:
    """Rows of ``ltrr bandit evaluate --json`` (one object per night, then ``pooled`` and
    ``cpcd_heldout``): the learned policy's greedy plans against static plans at its budget."""
    nights = [r for r in lines_json if "candidate_hit_rate" in r]
    pooled = next((r["pooled"] for r in lines_json if "pooled" in r), None)
    cpcd = next((r["cpcd_heldout"] for r in lines_json if "cpcd_heldout" in r), None)
    lines = [
        "## 3. The retrieval policy against static plans (GENERATED nights, then real held-out queries)",
        "",
        f"Command: `{command}`. Hit = the candidates hold an intended entity (simulator truth; CPCD: a liked "
        "track). `learned` is the policy's greedy plan for the same requests (exact by replay); the static plan "
        "and two-plan mixture are the best at the learned plans' mean budget, chosen in hindsight on the same "
        "requests or on the previous day.",
        "",
        "| day | policy | served | learned | candidates | best static plan | learned − plan | best static mixture "
        "| learned − mixture | mixture chosen the day before | learned − it | oracle |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for night in nights:
        m = night["candidate_hit_rate"]
        learned = m.get("learned") or {
            "hit_rate": m["served"],
            "avg_candidates": m["avg_candidates"],
            "best_static": m["best_static"],
            "minus_best_static_ci": m["served_minus_best_static_ci"],
        }
        mixture = learned.get("best_static_mixture") or {}
        prior = learned.get("static_from_previous_day") or {}
        lines.append(
            f"| {night['day']} | {night['policy']} | {_f(m['served'], '{:.3f}')} | {_f(learned['hit_rate'], '{:.3f}')} | "
            f"{_f(learned['avg_candidates'], '{:.0f}')} | {learned['best_static']['hit_rate']:.3f} "
            f"({learned['best_static']['plan']}) | {_ci(learned['minus_best_static_ci'])} | "
            f"{_f(mixture.get('hit_rate'), '{:.3f}')} | {_ci(learned.get('minus_best_static_mixture_ci'))} | "
            f"{_f((prior.get('best_static_mixture') or {}).get('hit_rate'), '{:.3f}')} | "
            f"{_ci(prior.get('minus_best_static_mixture_ci'))} | {_f(m['oracle'], '{:.3f}')} |"
        )
    if cpcd:
        best = cpcd["learned"]["best_static"] if "learned" in cpcd else cpcd["best_static"]
        learned = cpcd.get("learned") or {
            "hit_rate": cpcd["served"],
            "avg_candidates": cpcd["avg_candidates"],
            "minus_best_static_ci": cpcd["served_minus_best_static_ci"],
        }
        lines.append(
            f"| CPCD held-out ({cpcd['n_queries']} real queries) | {cpcd['policy']}, greedy | – | "
            f"{learned['hit_rate']:.3f} | {learned['avg_candidates']:.0f} | {best['hit_rate']:.3f} ({best['plan']}) | "
            f"{_ci(learned['minus_best_static_ci'])} | – | – | – | – | {cpcd['oracle']:.3f} |"
        )
    if pooled:
        lines += [
            "",
            f"Learned nights pooled ({pooled['nights']} nights, {pooled['requests']} requests): learned "
            f"{pooled['learned']:.3f}; "
            + "; ".join(
                f"{name} {row['hit_rate']:.3f}, learned − it {_ci(row['learned_minus_ci'])} "
                f"({_verdict(row['learned_minus_ci']).split(' (')[0].replace('served', 'learned')})"
                for name, row in pooled["baselines"].items()
            )
            + ".",
        ]
    return lines + [""]


def render_obd(result: dict[str, Any], config: str) -> list[str]:
    on = result["on_policy"]
    lines = [
        "## 6. Off-policy estimators on the Open Bandit Dataset (real logs)",
        "",
        f"Command: `ltrr --config {config} bandit ope-obd --json`. The uniform policy's click rate estimated "
        "from the Thompson-sampling log, against its own on-policy log: "
        f"{on['value']:.4f} [{on['ci'][0]:.4f}, {on['ci'][1]:.4f}]. ESS from the unclipped weights "
        "(switch-DR's clipped ESS beside it).",
        "",
        "| estimator | estimate | interval | ESS | ESS, clipped weights | covers the on-policy value |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["estimators"].items():
        lines.append(
            f"| {name} | {r['estimate']:.4f} | [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}] | {r['ess']:,.0f} | "
            f"{_f(r.get('ess_clipped'), '{:,.0f}')} | {'yes' if r['covers_on_policy'] else 'no'} |"
        )
    return lines + [""]


def render_qu(result: dict[str, Any], config: str) -> list[str]:
    lines = [
        "## 4. Query understanding on MusicRecoNER (real Reddit requests)",
        "",
        f"Command: `ltrr --config {config} eval-qu --json`. {result['n_requests']} requests; the best "
        "interpretation's artist and title spans against the annotated mentions.",
        "",
        "| mention | precision | recall | precision (lenient) | recall of in-catalog mentions | gold | gold in catalog |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("artist", "work"):
        r = result[kind]
        lines.append(
            f"| {kind} | {r['precision']:.3f} | {r['recall']:.3f} | {r['precision_lenient']:.3f} | "
            f"{r['recall_in_catalog']:.3f} | {r['n_gold']} | {r['n_gold_in_catalog']} |"
        )
    return lines + [""]


def render_catalog(manifest: dict[str, Any], config: str) -> list[str]:
    """Content understanding counts and the genre classifier's held-out evaluation, as the
    catalog build recorded them in its manifest."""
    understanding = manifest.get("content_understanding", {})
    counts, genre = understanding.get("counts", {}), understanding.get("genre_classifier", {})
    linking = manifest.get("ingest", {}).get("linking", {})
    lines = [
        "## 5. Content understanding (catalog build)",
        "",
        f"Command: `ltrr --config {config} content-understanding` (recorded in the catalog manifest, version "
        f"`{manifest.get('version')}`): {manifest.get('n_entities')} entities, "
        f"{linking.get('n_tracks_linked', '?')} of {linking.get('n_tracks', '?')} tracks linked to a Last.fm artist.",
        "",
        "| attribute | entities |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:,} |" for name, value in sorted(counts.items()) if name != "n_entities"]
    if genre.get("evaluated"):
        lines += [
            "",
            f"Genre classifier ({genre['split']}): {genre['n_test']:,} held-out entities, accuracy "
            f"{genre['accuracy']} (always-majority {genre['majority_baseline_accuracy']}), balanced accuracy "
            f"{genre['balanced_accuracy']} (chance {genre['chance_balanced_accuracy']}); at confidence "
            f"{genre['min_confidence']} it answers for {genre['coverage_at_threshold']:.0%} with accuracy "
            f"{genre['accuracy_at_threshold']}.",
        ]
    return lines + [""]


def render_sweep(title: str, command: str, scores: dict[str, dict[str, float]]) -> list[str]:
    metrics = list(next(iter(scores.values())))
    lines = [
        f"### {title}",
        "",
        f"Command: `{command}` (train part only; any other part is refused).",
        "",
        "| variant | " + " | ".join(metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    lines += [f"| {name} | " + " | ".join(_f(v[m]) for m in metrics) + " |" for name, v in scores.items()]
    return lines + [""]


def render_report(prov: Provenance, sections: list[list[str]], catalog: dict[str, Any]) -> str:
    seeds = ", ".join(f"`{k}` {v}" for k, v in prov.seeds.items())
    head = [
        "# Results",
        "",
        (f"Regenerate: `{prov.via}` (which runs `{prov.command}`). " if prov.via else f"Regenerate: `{prov.command}`. ")
        + f"Generated {prov.date} at commit `{prov.commit}` with `{prov.config}` "
        f"on {prov.machine}. Seeds: {seeds}. Catalog: {catalog.get('n_entities', '?')} entities "
        f"(version `{catalog.get('version', '?')}`).",
        "",
        "Every number below is produced by the command named with it; the README quotes rows of this page.",
        "",
    ]
    return "\n".join(head + [line for section in sections for line in section]).rstrip() + "\n"
