"""Validated promotion of a bundle to the pointer the runtime serves (``bundles/PROMOTED``).

A candidate is promoted only when every gate passes:

a. ``contracts``: every log day its policy and ranker were trained on passed the log
   contracts with at most ``promotion.max_quarantine_fraction`` of rows quarantined, and the
   ranker's training set passed its own contract;
b. ``ranker``: its nDCG@10 on the queries it was evaluated on -- the real validation queries
   when it learned from real engagement, else its logged evaluation day -- is not worse than the
   champion's on the same queries (or, without a champion, the fusion baseline's) beyond
   ``ranker_ndcg_tolerance``;
c. ``policy``: the lower bound of its off-policy value (switch-DR) is not below the logging
   policy's value on the same held-out day minus ``policy_value_tolerance`` (safe policy
   improvement), and the effective sample size of its UNCLIPPED importance weights (the
   report's ``ess``, not ``ess_clipped``) is at least ``min_ess``;
d. ``integrity``: the manifest and every checksum verify;
   ``query_encoder``: the bundle's ONNX query encoder was exported from the model its document
   vectors were built with, and its agreement with that model (mean cosine on the export's
   sample texts) meets ``embedding.query_min_cosine``;
e. ``smoke``: a fresh runtime loads it and answers ``smoke_queries`` (real queries), each with
   results; its p95 latency (after a warm-up, median of ``smoke_repeats`` per query) is within
   ``latency_budget_ms``, or else no worse than the champion's -- loaded beside it and timed in
   the same run, interleaved, so a busy machine slows both alike -- by more than
   ``latency_regression_tolerance`` + ``latency_slack_ms``; the first champion, with nothing to
   compare to, meets ``first_champion_latency_budget_ms``. Run only for a candidate the other
   gates passed (a bundle that does not verify is never loaded).

Nothing ungated serves: ``serving_bundle`` is the promoted bundle or ``NoChampion``; before the
first promotion the runtime refuses to start (``ltrr serve``) rather than serve the latest build.

Every decision, with the numbers behind it, is appended to ``bundles/promotions.jsonl``
(rewritten atomically) and logged as an MLflow run; on a switch (or a rollback) the registered
policy and ranker versions the bundle holds get the MLflow alias ``champion``. Promotion writes nothing but the pointer, switched by rename: a crash
at any point leaves the previous champion serving. Rollback points at the previous promoted
bundle again, through the same gates' integrity check. A crash after the switch but before its
record leaves the new champion serving and the record missing; the next promotion or rollback
restores it from the pointer (``reconcile_history``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts.bundle import MANIFEST, BundleError, bundle_store, bundles_root, verify_bundle
from .artifacts.champion import HISTORY, POINTER, history, promoted_bundle
from .config import Settings
from .durable import read_json, write_bytes_atomic
from .index.query_encoder import QueryEncoderError, read_spec


@dataclass
class Gate:
    name: str
    passed: bool
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Decision:
    bundle_id: str
    promoted: bool
    dry_run: bool
    gates: list[Gate]
    previous: str | None
    decided_at: str
    mlflow_run: str | None = None
    mlflow_experiment_id: str | None = None

    @property
    def reasons(self) -> list[str]:
        return [f"{g.name}: {g.reason}" for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reasons": self.reasons}


def _report(bundle: Path, component: str) -> dict[str, Any] | None:
    path = bundle / component / "report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def gate_contracts(settings: Settings, bundle: Path) -> Gate:
    limit = settings.promotion.max_quarantine_fraction
    worst, days = 0.0, 0
    for component in ("policy", "ranker"):
        report = _report(bundle, component)
        if report is None:
            continue
        if component == "ranker" and not all(c["passed"] for c in report.get("contract", {}).values()):
            return Gate("contracts", False, "the ranker's training set failed its contract", report.get("contract", {}))
        for day, checked in (report.get("contracts") or {}).items():
            days += 1
            for kind in ("impressions", "feedback"):
                rows = checked[kind]["rows"]
                share = checked[kind]["quarantined"] / rows if rows else 0.0
                worst = max(worst, share)
                if share > limit:
                    return Gate(
                        "contracts",
                        False,
                        f"{kind} of {day}: {share:.1%} of rows quarantined (limit {limit:.1%})",
                        {"day": day, "kind": kind, "quarantined_share": round(share, 4)},
                    )
    return Gate(
        "contracts",
        True,
        f"{days} log day(s) checked, worst quarantine {worst:.1%}",
        {"days": days, "worst_quarantined_share": round(worst, 4)},
    )


def gate_ranker(settings: Settings, bundle: Path) -> Gate:
    report = _report(bundle, "ranker")
    if report is None:
        return Gate("ranker", True, "no ranker in the bundle: the fusion ranks")
    evaluation = report["evaluation"]
    reference = "champion" if evaluation.get("champion") else "fusion_baseline"
    candidate, baseline = evaluation["ranker"]["ndcg@10"], evaluation[reference]["ndcg@10"]
    tolerance = settings.promotion.ranker_ndcg_tolerance
    evaluated_on = report.get("evaluated_on", f"logged day {report['evaluation_day']}")
    numbers = {
        "ndcg@10": candidate,
        f"{reference}_ndcg@10": baseline,
        "tolerance": tolerance,
        "evaluation_day": report["evaluation_day"],
        "evaluated_on": evaluated_on,
    }
    if candidate is None or baseline is None or candidate < baseline - tolerance:
        return Gate(
            "ranker",
            False,
            f"nDCG@10 {candidate} below the {reference}'s {baseline} beyond {tolerance} ({evaluated_on})",
            numbers,
        )
    return Gate("ranker", True, f"nDCG@10 {candidate} vs {reference} {baseline} ({evaluated_on})", numbers)


def gate_policy(settings: Settings, bundle: Path) -> Gate:
    report = _report(bundle, "policy")
    if report is None:
        return Gate("policy", True, "no learned policy in the bundle: the apprentice explores")
    ope = report["ope"]
    name = "switch_dr" if ope["learned_policy"].get("switch_dr") else "dr"
    estimate = ope["learned_policy"][name]
    logging_value = ope["logging_policy"]["estimate"]
    tolerance, min_ess = settings.promotion.policy_value_tolerance, settings.promotion.min_ess
    # ``ess``: Kish ESS of the unclipped weights; ``ess_clipped`` is recorded, never gated on.
    ess = estimate["ess"]
    numbers = {
        "lower_bound": estimate["ci"][0],
        "estimate": estimate["estimate"],
        "ess": ess,
        "ess_clipped": estimate.get("ess_clipped"),
        "logging_value": logging_value,
        "tolerance": tolerance,
        "min_ess": min_ess,
    }
    if name == "switch_dr" and "ess_clipped" not in estimate:
        # Reports written before ESS was split put the clipped ESS under "ess": it overstates.
        return Gate(
            "policy",
            False,
            "the switch-DR report has no ess_clipped: it predates the unclipped ESS, its "
            "'ess' is of clipped weights and overstates the support; retrain the policy",
            numbers,
        )
    if ess < min_ess:
        return Gate(
            "policy",
            False,
            f"effective sample size {ess} (unclipped weights) below {min_ess}"
            + (
                f" (clipped at max_weight it would be {estimate['ess_clipped']})"
                if estimate.get("ess_clipped") is not None
                else ""
            ),
            numbers,
        )
    if estimate["ci"][0] < logging_value - tolerance:
        return Gate(
            "policy",
            False,
            f"lower bound {estimate['ci'][0]:.4f} below the logging policy's value {logging_value:.4f} - {tolerance}",
            numbers,
        )
    return Gate(
        "policy",
        True,
        f"lower bound {estimate['ci'][0]:.4f} >= logging value {logging_value:.4f} - {tolerance}",
        numbers,
    )


def gate_integrity(bundle: Path) -> Gate:
    try:
        manifest = verify_bundle(bundle)
    except BundleError as error:
        return Gate("integrity", False, str(error))
    return Gate("integrity", True, f"{len(manifest['files'])} files verify", {"files": len(manifest["files"])})


def gate_query_encoder(settings: Settings, bundle: Path) -> Gate:
    """The bundle's ONNX query encoder was exported from the model its document vectors were
    built with, and its export gate's agreement still meets today's threshold."""
    directory = Path(bundle) / "query_encoder"
    if not directory.is_dir():
        return Gate("query_encoder", True, "no query encoder in the bundle: the torch model encodes queries")
    try:
        spec = read_spec(directory)
        # The integrity gate verifies the manifest and every checksum; this one reads it only.
        lance_model = read_json(Path(bundle) / MANIFEST)["components"]["lance"]["model"]
    except (QueryEncoderError, OSError, KeyError, ValueError) as error:
        return Gate("query_encoder", False, str(error))
    numbers = {"precision": spec.precision, **spec.agreement.model_dump()}
    if spec.model != lance_model:
        return Gate(
            "query_encoder", False, f"exported from {spec.model!r}, the document vectors are {lance_model!r}", numbers
        )
    threshold = settings.embedding.query_min_cosine
    if spec.agreement.mean_cosine < threshold:
        return Gate(
            "query_encoder",
            False,
            f"mean cosine to the document encoder {spec.agreement.mean_cosine} below {threshold}",
            numbers,
        )
    return Gate(
        "query_encoder",
        True,
        f"{spec.precision}, mean cosine {spec.agreement.mean_cosine} >= {threshold} on {spec.agreement.n_texts} texts",
        numbers,
    )


def _timed_medians(services: list[Any], queries: list[str], repeats: int) -> list[list[float]]:
    """Per service, per query the median latency (ms) of ``repeats`` answers, after one warm-up
    answer each. Services take turns query by query (order alternating), so load on the machine
    falls on all of them alike."""
    samples: list[list[list[float]]] = [[[] for _ in queries] for _ in services]
    for round_ in range(repeats):
        for q, text in enumerate(queries):
            order = list(range(len(services)))
            for index in order if (round_ + q) % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                services[index].search(text, explore=False)
                samples[index][q].append((time.perf_counter() - started) * 1000)
    return [[float(np.median(per_query)) for per_query in per_service] for per_service in samples]


def gate_smoke(settings: Settings, bundle: Path) -> Gate:
    from .runtime.service import load_service

    config = settings.promotion
    champion_path = promoted_bundle(settings)
    champion_path = champion_path if champion_path is not None and champion_path.name != Path(bundle).name else None
    try:
        service = load_service(settings, bundle)
        # The greedy plan (no exploration): a random exploratory plan (memory alone, say) may find
        # nothing for a query, and the gate must judge the bundle, not the draw.
        empty = [
            text for text in config.smoke_queries if not service.search(text, explore=False).results
        ]  # also the warm-up
    except Exception as error:  # noqa: BLE001 - any failure to serve blocks promotion, with its reason
        return Gate("smoke", False, f"{type(error).__name__}: {error}")
    services, note = [service], ""
    if champion_path is not None:
        try:
            champion = load_service(settings, champion_path)
            for text in config.smoke_queries:
                champion.search(text, explore=False)
            services.append(champion)
        except Exception as error:  # noqa: BLE001 - a broken champion must not block its replacement
            note = f" (champion {champion_path.name} could not be timed: {type(error).__name__}: {error})"
    medians = _timed_medians(services, config.smoke_queries, config.smoke_repeats)
    p95 = float(np.percentile(medians[0], 95))
    numbers: dict[str, Any] = {
        "queries": len(medians[0]),
        "repeats": config.smoke_repeats,
        "p95_ms": round(p95, 1),
        "cold_start_s": service.startup["seconds"],
    }
    if empty:
        return Gate("smoke", False, f"no results for {empty}", numbers)
    answered = f"{len(medians[0])} queries answered, p95 {p95:.0f} ms"
    if len(services) == 1:
        budget = config.first_champion_latency_budget_ms
        numbers["budget_ms"] = budget
        if p95 > budget:
            return Gate(
                "smoke", False, f"p95 {p95:.0f} ms over the {budget:.0f} ms budget of a first champion{note}", numbers
            )
        return Gate("smoke", True, f"{answered} (first-champion budget {budget:.0f} ms){note}", numbers)
    champion_p95 = float(np.percentile(medians[1], 95))
    limit = champion_p95 * (1 + config.latency_regression_tolerance) + config.latency_slack_ms
    numbers |= {
        "budget_ms": config.latency_budget_ms,
        "champion_p95_ms": round(champion_p95, 1),
        "champion_limit_ms": round(limit, 1),
    }
    if p95 <= config.latency_budget_ms:
        return Gate(
            "smoke",
            True,
            f"{answered}, within the {config.latency_budget_ms:.0f} ms budget "
            f"(champion {champion_p95:.0f} ms in the same run)",
            numbers,
        )
    if p95 <= limit:
        return Gate(
            "smoke",
            True,
            f"{answered}: over the {config.latency_budget_ms:.0f} ms budget, but so is the "
            f"champion timed in the same run ({champion_p95:.0f} ms, limit {limit:.0f} ms): "
            f"the machine is slow, not the bundle",
            numbers,
        )
    return Gate(
        "smoke",
        False,
        f"p95 {p95:.0f} ms over the {config.latency_budget_ms:.0f} ms budget and over the "
        f"champion's {champion_p95:.0f} ms measured in the same run (limit {limit:.0f} ms)",
        numbers,
    )


def evaluate_gates(settings: Settings, bundle: Path) -> list[Gate]:
    gates = [
        gate_contracts(settings, bundle),
        gate_ranker(settings, bundle),
        gate_policy(settings, bundle),
        gate_integrity(bundle),
        gate_query_encoder(settings, bundle),
    ]
    # A bundle that does not verify is never loaded, and one already refused is not worth a runtime.
    failed = [g.name for g in gates if not g.passed]
    gates.append(
        Gate("smoke", False, f"not run: {', '.join(failed)} failed") if failed else gate_smoke(settings, bundle)
    )
    return gates


def _record(settings: Settings, entry: dict[str, Any]) -> None:
    lines = [json.dumps(e, default=str) for e in [*history(settings), entry]]
    write_bytes_atomic(bundles_root(settings) / HISTORY, ("\n".join(lines) + "\n").encode("utf-8"))


def _component_version(bundle: Path, component: str, spec: str) -> str | None:
    path = bundle / component / spec
    return json.loads(path.read_text(encoding="utf-8"))["version"] if path.is_file() else None


def sync_mlflow_aliases(settings: Settings, bundle: Path) -> dict[str, Any]:
    """Point the registered models' ``champion`` alias at the policy and ranker versions the
    promoted bundle holds (found by the version parameter their training run logged)."""
    import mlflow
    from mlflow import MlflowClient

    from .tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(settings))
    client = MlflowClient()
    synced: dict[str, Any] = {}
    for component, spec, param, model_name in (
        ("policy", "policy.json", "policy_version", settings.mlflow.policy_model_name),
        ("ranker", "ranker.json", "ranker_version", settings.mlflow.ranker_model_name),
    ):
        version = _component_version(bundle, component, spec)
        if version is None:
            continue
        runs = mlflow.search_runs(
            search_all_experiments=True, filter_string=f"params.{param} = '{version}'", output_format="list"
        )
        registered = [
            v
            for run in runs
            for v in client.search_model_versions(f"name='{model_name}' and run_id='{run.info.run_id}'")
        ]
        if registered:
            client.set_registered_model_alias(model_name, "champion", registered[0].version)
            synced[component] = {"model": model_name, "version": registered[0].version, component + "_version": version}
        else:
            synced[component] = {"model": model_name, "registered": False, component + "_version": version}
    return synced


def _log_decision(settings: Settings, decision: Decision) -> tuple[str, str]:
    """The decision as an MLflow run (experiment ``mlflow.promotion_experiment``): gates as metrics."""
    import mlflow

    from .tracking import use_experiment

    experiment_id = use_experiment(settings, settings.mlflow.promotion_experiment)
    with mlflow.start_run(run_name=f"promote {decision.bundle_id}", experiment_id=experiment_id) as run:
        mlflow.log_params(
            {
                "bundle_id": decision.bundle_id,
                "dry_run": decision.dry_run,
                "previous": decision.previous or "none",
                "promoted": decision.promoted,
            }
        )
        # MLflow metric names allow no '@' (ndcg@10 -> ndcg_at_10).
        mlflow.log_metrics(
            {f"gate.{g.name}.passed": float(g.passed) for g in decision.gates}
            | {
                f"gate.{g.name}.{k.replace('@', '_at_')}": float(v)
                for g in decision.gates
                for k, v in g.numbers.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
        )
        mlflow.log_dict(decision.to_dict(), "decision.json")
    return run.info.run_id, run.info.experiment_id


def reconcile_history(settings: Settings) -> dict[str, Any] | None:
    """Record a switch of ``PROMOTED`` that the history lacks: a process that died (or hit a
    write error) between switching the pointer and recording the switch left the pointer right
    and the record missing. The pointer is the truth; the missing entry is restored from it, so
    rollback and ``ltrr promotions`` see every switch. Called before every promotion and rollback."""
    current = bundle_store(settings).read_pointer(POINTER)
    switches = [e for e in history(settings) if e["action"] in ("switched", "rollback")]
    recorded = switches[-1]["bundle_id"] if switches else None
    if current is None or current == recorded:
        return None
    entry = {
        "action": "switched",
        "bundle_id": current,
        "previous": recorded,
        "reconciled": True,
        "decided_at": datetime.now(UTC).isoformat(),
    }
    _record(settings, entry)
    return entry


def promote(
    settings: Settings, bundle: Path, dry_run: bool = False, before_switch: Callable[[], None] | None = None
) -> Decision:
    """Run the gates; when all pass (and not a dry run) switch ``PROMOTED`` to the bundle.
    ``before_switch`` is a test seam: a crash injected there must leave the old pointer."""
    bundle = Path(bundle)
    reconcile_history(settings)
    previous = bundle_store(settings).read_pointer(POINTER)
    gates = evaluate_gates(settings, bundle)
    decision = Decision(
        bundle.name,
        all(g.passed for g in gates) and not dry_run,
        dry_run,
        gates,
        previous,
        datetime.now(UTC).isoformat(),
    )
    decision.mlflow_run, decision.mlflow_experiment_id = _log_decision(settings, decision)
    _record(settings, {"action": "promote", **decision.to_dict()})
    if decision.promoted:
        if before_switch is not None:
            before_switch()
        bundle_store(settings).point(POINTER, bundle.name)
        _record(
            settings,
            {
                "action": "switched",
                "bundle_id": bundle.name,
                "previous": previous,
                "aliases": sync_mlflow_aliases(settings, bundle),
                "decided_at": datetime.now(UTC).isoformat(),
            },
        )
    return decision


def rollback(settings: Settings) -> dict[str, Any]:
    """Point ``PROMOTED`` back at the bundle promoted before the current one (it must still verify)."""
    reconcile_history(settings)
    switches = [e for e in history(settings) if e["action"] in ("switched", "rollback")]
    current = bundle_store(settings).read_pointer(POINTER)
    if not switches or current is None:
        raise BundleError("nothing to roll back: no bundle has been promoted")
    target = switches[-1]["previous"]
    if not target:
        raise BundleError(f"{current} is the first promoted bundle; there is nothing before it")
    integrity = gate_integrity(bundles_root(settings) / target)
    if not integrity.passed:
        raise BundleError(f"cannot roll back to {target}: {integrity.reason}")
    previous_of_target = next((e["previous"] for e in reversed(switches) if e["bundle_id"] == target), None)
    bundle_store(settings).point(POINTER, target)
    entry = {
        "action": "rollback",
        "bundle_id": target,
        "previous": previous_of_target,
        "from": current,
        "aliases": sync_mlflow_aliases(settings, bundles_root(settings) / target),
        "decided_at": datetime.now(UTC).isoformat(),
    }
    _record(settings, entry)
    return entry
