"""One night of the platform for a date D, as the domain steps the ``nightly`` flow wires:

    validate D's logs ─┬─ train the retrieval policy (window ending D) ──┐
                       └─ train the ranker (evaluated on D) ──────────────┤
    catalog (if its inputs changed) → indexes (if the catalog or their     ├→ bundle → gates → promote → retention
    settings changed) → Q2E (observed engagement up to D + doc2query) ────┘

What a night produced is written to ``<data_dir>/<orchestration.out_dir>/<D>.json`` (atomic).
Re-running D is idempotent: the new run's outputs replace the previous run's, and whatever the
previous run of D created that nothing serves or needs any more (its policy and ranker
directories, its Q2E version, its candidate bundle unless it served requests or was promoted) is
removed after the new record is written -- no date ever holds two sets of outputs. Promotion
decisions stay in the append-only promotion history: a decision, once taken, is a fact. The last
step applies the configured retention (``ltrr_core.retention``) to old log days and versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from .config import Settings
from .durable import read_json, write_json_atomic
from .tracking import MODEL_TRAINING_VIEW

# The steps of a night, in order; the flows' ``steps`` parameter is a list of them (the Prefect
# UI's run form offers them as choices).
Step = Literal["validate_logs", "catalog", "indexes", "q2e", "bandit", "ranker", "bundle", "promote", "retention"]
STEPS: tuple[str, ...] = get_args(Step)
DETAIL_ITEMS = 8  # key: value pairs a report row shows per step
DETAIL_CHARS = 60  # characters of one value


class NightlyError(ValueError):
    """A nightly run asked for something it cannot do (unknown step, bad date, no logs)."""


def select_steps(steps: list[str] | None) -> list[str]:
    """All steps by default; a backfill may pick some (e.g. ``["bandit"]`` to re-train policies)."""
    if not steps:
        return list(STEPS)
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise NightlyError(f"unknown nightly step(s) {unknown}; the steps are {list(STEPS)}")
    if "promote" in steps and "bundle" not in steps:
        raise NightlyError("step 'promote' gates the bundle that step 'bundle' builds: select both")
    return [s for s in STEPS if s in steps]


def parse_day(text: str, name: str = "date") -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError) as error:
        raise NightlyError(f"{name} {text!r} is not a date (YYYY-MM-DD)") from error


def resolve_day(settings: Settings, day: str | None, today: date | None = None) -> date:
    """The date a run processes: the given one, else (a scheduled run) today + ``nightly_day_offset``."""
    if day:
        return parse_day(day)
    return (today or datetime.now(UTC).date()) + timedelta(days=settings.orchestration.nightly_day_offset)


def backfill_days(start: str, end: str) -> list[date]:
    first, last = parse_day(start, "start_date"), parse_day(end, "end_date")
    if last < first:
        raise NightlyError(f"end_date {last} is before start_date {first}")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def nightly_root(settings: Settings) -> Path:
    return settings.data_dir / settings.orchestration.out_dir


def read_record(settings: Settings, day: date) -> dict[str, Any] | None:
    path = nightly_root(settings) / f"{day.isoformat()}.json"
    return read_json(path) if path.is_file() else None


def records(settings: Settings) -> list[dict[str, Any]]:
    return [read_json(p) for p in sorted(nightly_root(settings).glob("*.json"))]


def log_root(settings: Settings) -> Path:
    return settings.data_dir / settings.runtime.log_dir


def has_logs(settings: Settings, day: date) -> bool:
    from .logs import logged_days

    return day.isoformat() in logged_days(log_root(settings))


def validate_logs(settings: Settings, day: date) -> dict[str, Any]:
    """D's impressions and feedback through their contracts (bad rows quarantined with reasons;
    a day over the quarantine limit raises ``ContractViolation`` and the night stops)."""
    from .contracts.logs import check_logged_day

    if not has_logs(settings, day):
        raise NightlyError(
            f"no impressions logged for {day} under {log_root(settings)}: nothing to learn from "
            "(serve traffic or run `ltrr simulate` first)"
        )
    _, _, report = check_logged_day(log_root(settings), day.isoformat(), settings.data_dir / "data_docs")
    return report


def catalog_status(settings: Settings) -> dict[str, Any]:
    """Is the published catalog a function of today's inputs? (then content understanding is skipped)"""
    from .catalog.pipeline import catalog_store, inputs_fingerprint

    store = catalog_store(settings)
    version = store.current_version()
    fingerprint = inputs_fingerprint(settings)
    if version is None:
        return {"stale": True, "reason": "no catalog published yet", "fingerprint": fingerprint}
    recorded = read_json(store.versions_dir / version / "manifest.json").get("ingest", {}).get("inputs_fingerprint")
    if recorded != fingerprint:
        return {"stale": True, "reason": f"inputs changed since {version}", "fingerprint": fingerprint}
    return {
        "stale": False,
        "reason": f"inputs unchanged since {version}",
        "version": version,
        "fingerprint": fingerprint,
    }


def indexes_status(settings: Settings) -> dict[str, Any]:
    """Does the current index build match the current catalog and index settings?"""
    from .catalog.pipeline import catalog_store
    from .index.build import IndexNotBuilt, current_build, settings_fingerprint

    try:
        _, manifest = current_build(settings)
    except IndexNotBuilt:
        return {"stale": True, "reason": "no index build yet"}
    catalog_version = catalog_store(settings).current_version()
    if manifest["catalog_version"] != catalog_version:
        return {"stale": True, "reason": f"built from {manifest['catalog_version']}, catalog is {catalog_version}"}
    if manifest.get("settings_fingerprint") != settings_fingerprint(settings):
        return {"stale": True, "reason": "index settings changed"}
    return {
        "stale": False,
        "reason": f"build {manifest['build_id']} matches catalog {catalog_version}",
        "build_id": manifest["build_id"],
    }


def q2e_status(settings: Settings, until: date | None) -> dict[str, Any]:
    """Is the current Q2E version a function of today's inputs (catalog, engagement up to
    ``until``, settings)? A re-run of a date with nothing new skips the rebuild."""
    from .memory.build import inputs_fingerprint, q2e_store

    store = q2e_store(settings)
    version = store.current_version()
    if version is None:
        return {"stale": True, "reason": "no Q2E table yet"}
    if store.manifest(version).get("inputs_fingerprint") != inputs_fingerprint(settings, until):
        return {"stale": True, "reason": f"catalog, engagement or settings changed since {version}"}
    return {"stale": False, "reason": f"inputs unchanged since {version}", "version": version}


@dataclass
class Trained:
    """A model trained tonight (``directory``), or why none was (``skipped``)."""

    component: str
    directory: Path | None
    report: dict[str, Any] | None
    skipped: str | None
    data: Any = None  # what its MLflow run logs as the training dataset

    def summary(self) -> dict[str, Any]:
        if self.directory is None:
            return {"status": "skipped", "reason": self.skipped}
        if self.report is None:
            raise ValueError(f"the {self.component} trained into {self.directory} has no training report")
        return {"status": "trained", "version": self.report["version"], "directory": str(self.directory)}


def train_policy(settings: Settings, day: date) -> Trained:
    """The retrieval policy on the window ending D (D held out for OPE); too little engagement
    is a skipped step, not a failure: the champion's policy keeps serving."""
    from .bandit import learner, training
    from .runtime import bundle_loader

    data = learner.load_window(settings, day, settings.bandit.learner.window_days)
    try:
        loader = bundle_loader(settings)
        ranks = learner.replay_window(settings, data.outcomes, training.action_strategies(settings), loader)
        directory, report = learner.train_night(settings, data, ranks, learner.real_rows(settings, loader))
    except learner.NotEnoughData as error:
        return Trained("policy", None, None, str(error))
    return Trained("policy", directory, report, None, data.outcomes)


def train_ranker(settings: Settings, day: date) -> Trained:
    """The ranker on the days before D, validated on D-1, evaluated on D."""
    from .ranking import train
    from .runtime import bundle_loader

    try:
        directory, report, rows = train.train_night(settings, day, bundle_loader(settings), settings.ranker.window_days)
    except train.NotEnoughRankingData as error:
        return Trained("ranker", None, None, str(error))
    return Trained("ranker", directory, report, None, rows)


def tracked_summary(settings: Settings, trained: Trained, run_name: str) -> dict[str, Any]:
    """Log a model trained tonight to MLflow (registered, alias challenger); its headline numbers."""
    summary = trained.summary()
    if trained.directory is None:
        return summary
    report = trained.report
    if report is None:  # summary() has already refused a trained model without a report
        raise ValueError(f"the {trained.component} trained into {trained.directory} has no training report")
    if trained.component == "policy":
        from .bandit.tracking import log_training_run

        summary["ope_switch_dr"] = report["ope"]["learned_policy"].get("switch_dr")
        summary["logging_policy"] = report["ope"]["logging_policy"]
        summary["mlflow"] = log_training_run(settings, trained.directory, report, trained.data, run_name)
    else:
        from .ranking.tracking import log_ranker_run

        summary["ndcg@10"] = {k: v.get("ndcg@10") for k, v in report["evaluation"].items() if isinstance(v, dict)}
        summary["mlflow"] = log_ranker_run(settings, trained.directory, report, trained.data, run_name)
    return summary


def champion_component(settings: Settings, component: str) -> Path | None:
    """The promoted bundle's policy or ranker directory (a full copy with its report), if it has one."""
    from .artifacts.champion import promoted_bundle

    bundle = promoted_bundle(settings)
    spec = {"policy": "policy.json", "ranker": "ranker.json"}[component]
    return bundle / component if bundle is not None and (bundle / component / spec).is_file() else None


def build_candidate(settings: Settings, policy: Path | None, ranker: Path | None) -> dict[str, Any]:
    """A bundle from tonight's indexes and Q2E, tonight's models or else the champion's."""
    from .artifacts import build_bundle

    chosen = {
        "policy": (policy, "tonight") if policy else (champion_component(settings, "policy"), "champion"),
        "ranker": (ranker, "tonight") if ranker else (champion_component(settings, "ranker"), "champion"),
    }
    manifest = build_bundle(settings, chosen["policy"][0], chosen["ranker"][0])
    return {
        "bundle_id": manifest["bundle_id"],
        "components": manifest["components"],
        "sources": {name: source if path else "none" for name, (path, source) in chosen.items()},
    }


def fallback_models(decision: dict[str, Any], policy: str | None, ranker: str | None) -> dict[str, str | None] | None:
    """When tonight's bundle was refused only by the gate of one of tonight's two models, the
    other model alone (beside the champion's) is worth a candidate of its own: a policy that
    fails its off-policy gate should not keep a ranker that passed its own from serving, nor the
    reverse. Returns the models of that second candidate, or None (both failed, one alone was
    trained, or another gate -- contracts, integrity, a smoke test that ran -- refused it)."""
    failed = {g["name"] for g in decision["gates"] if not g["passed"]}
    smoke = next((g for g in decision["gates"] if g["name"] == "smoke"), None)
    if smoke is not None and not smoke["passed"] and not smoke["reason"].startswith("not run"):
        return None
    failed.discard("smoke")
    if not (policy and ranker) or failed not in ({"policy"}, {"ranker"}):
        return None
    return (
        {"policy_dir": None, "ranker_dir": ranker}
        if failed == {"policy"}
        else {"policy_dir": policy, "ranker_dir": None}
    )


def promote_candidate(settings: Settings, bundle_id: str) -> dict[str, Any]:
    from .artifacts import bundles_root
    from .promotion import promote

    return promote(settings, bundles_root(settings) / bundle_id).to_dict()


def retire_previous(settings: Settings, previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Remove what the previous run of the same date created and nothing needs any more (bundles:
    ``retention.protected_bundles``, the same rule as retention's)."""
    from .artifacts import bundles_root
    from .durable import remove_tree
    from .memory.build import q2e_store
    from .retention import protected_bundles

    if not previous:
        return []
    old, new = previous.get("outputs", {}), current.get("outputs", {})
    candidates: list[Path] = []
    for key in ("policy_dir", "ranker_dir"):
        if old.get(key) and old[key] != new.get(key):
            candidates.append(Path(old[key]))
    store = q2e_store(settings)
    if old.get("q2e_version") and old["q2e_version"] not in (new.get("q2e_version"), store.current_version()):
        candidates.append(store.store.path(old["q2e_version"]))
    if (
        old.get("bundle_id")
        and old["bundle_id"] != new.get("bundle_id")
        and old["bundle_id"] not in protected_bundles(settings)
    ):
        candidates.append(bundles_root(settings) / old["bundle_id"])
    removed = []
    for path in candidates:
        if path.is_dir() and settings.data_dir.resolve() in path.resolve().parents:
            remove_tree(path, settings.data_dir)
            removed.append(str(path))
    return removed


def write_record(settings: Settings, record: dict[str, Any]) -> Path:
    path = nightly_root(settings) / f"{record['date']}.json"
    write_json_atomic(path, record)
    return path


def gate_table(decision: dict[str, Any]) -> list[str]:
    rows = ["| gate | passed | reason |", "|---|---|---|"]
    rows += [f"| {g['name']} | {'yes' if g['passed'] else '**no**'} | {g['reason']} |" for g in decision["gates"]]
    return rows


def markdown(record: dict[str, Any], mlflow_ui: str | None = None) -> str:
    """The run's Prefect artifact: what ran, counts, metrics, gate decisions, MLflow runs."""
    lines = [
        f"# Nightly {record['date']} (run {record['attempt']})",
        "",
        "| step | status | details |",
        "|---|---|---|",
    ]
    for name in STEPS:
        step = record["steps"].get(name, {"status": "not selected"})
        lines.append(f"| {name} | {step['status']} | {readable_details(_without_contract_docs(step))} |")
    lines += contract_docs_table(record)
    served = record.get("served_day")
    if served:
        lines += [
            "",
            f"Served on {record['date']}: {served['requests']} requests, candidate recall "
            f"{served['candidate_recall']}, nDCG@10 {served['ndcg@10']}, reward {served['reward']}, "
            f"{served['unique_candidates']} candidates per request, ranked by {served['ranked_by']}.",
        ]
    decision = record.get("promotion")
    if decision:
        verdict = "promoted" if decision["promoted"] else f"not promoted ({'; '.join(decision['reasons'])})"
        lines += ["", f"## Promotion of {decision['bundle_id']}: {verdict}", "", *gate_table(decision)]
    runs = record.get("mlflow", {})
    if runs:
        lines += ["", "## MLflow runs", ""]
        for name, run in runs.items():
            lines.append(mlflow_run_line(name, run, mlflow_ui))
    if record.get("retired"):
        lines += ["", f"Replaced outputs of the previous run of this date: {record['retired']}"]
    return "\n".join(lines)


def mlflow_run_line(name: str, run: dict[str, Any], mlflow_ui: str | None) -> str:
    """One MLflow run of the night: a link to it, and to its experiment's training view where the
    nights compare side by side."""
    if not (mlflow_ui and run.get("experiment_id")):
        return f"- {name}: run {run['run_id']}"
    experiment = f"{mlflow_ui}/#/experiments/{run['experiment_id']}"
    return f"- {name}: [{run['run_id']}]({experiment}/runs/{run['run_id']}) ([all nights]({experiment}/runs{MODEL_TRAINING_VIEW}))"


def _without_contract_docs(step: dict[str, Any]) -> dict[str, Any]:
    return {
        k: ({i: w for i, w in v.items() if i not in ("rules", "data_docs")} if isinstance(v, dict) else v)
        for k, v in step.items()
    }


def contract_docs_table(record: dict[str, Any]) -> list[str]:
    """The log contracts of the night: rows, quarantined, the rules that failed with their rows,
    and a link to each validation's page in the GX Data Docs (``ltrr_core.contracts.docs``)."""
    validated = record["steps"].get("validate_logs", {})
    parts = [(k, validated[k]) for k in ("impressions", "feedback") if isinstance(validated.get(k), dict)]
    parts = [(k, part) for k, part in parts if "rules" in part]
    if not parts:
        return []
    lines = [
        "",
        "## Log contracts (GX Data Docs)",
        "",
        "| log | rows | quarantined | rules failed (rows) | held | page |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for kind, part in parts:
        rules: dict[str, int] = part["rules"]
        failed = ", ".join(f"{rule}: {n}" for rule, n in rules.items() if n).replace("|", "\\|") or "none"
        page = part.get("data_docs", "")
        link = f"[{kind} {record['date']}]({page})" if page.startswith("file:") else page
        held = sum(1 for n in rules.values() if not n)
        lines.append(
            f"| {kind} | {part['rows']} | {part['quarantined']} | {failed} | {held} of {len(rules)} | {link} |"
        )
    return lines


def readable_details(step: dict[str, Any]) -> str:
    """A step's details for a table cell: its scalar facts as ``key: value``, nested ones by their
    dotted key, values shortened and pipes escaped (the whole step is in the JSON record)."""
    pairs: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if len(pairs) >= DETAIL_ITEMS:
            return
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
            return
        text = json.dumps(value, default=str) if isinstance(value, list) else str(value)
        text = text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"
        pairs.append(f"{prefix}: {text}".replace("|", "\\|"))

    walk("", {k: v for k, v in step.items() if k != "status"})
    return "<br>".join(pairs) or "–"


def backfill_summary(start: str, end: str, nights: list[dict[str, Any]], run_link: str | None = None) -> str:
    """The backfill run's artifact: one row per date -- skipped, or what its night did -- with a
    link to that night's flow run (``run_link`` formatted with its ``flow_run_id``), whose
    artifact is the night's report."""
    lines = [
        f"# Backfill {start}..{end}",
        "",
        "| date | night | promoted | why not | served nDCG@10 | report |",
        "|---|---|---|---|---|---|",
    ]
    for night in nights:
        if "skipped" in night:
            lines.append(f"| {night['date']} | skipped: {night['skipped']} | – | – | – | – |")
            continue
        decision = night.get("promotion") or {}
        promoted = "yes" if decision.get("promoted") else ("no" if decision else "not run")
        reasons = "; ".join(decision.get("reasons", []))[:200].replace("|", "\\|") or "–"
        served = (night.get("served_day") or {}).get("ndcg@10", "–")
        run_id = night.get("flow_run_id")
        report = f"[nightly {night['date']}]({run_link.format(flow_run_id=run_id)})" if run_link and run_id else "–"
        lines.append(
            f"| {night['date']} | run {night.get('attempt', '?')} | {promoted} | {reasons} | {served} | {report} |"
        )
    return "\n".join(lines)


def new_record(settings: Settings, day: date, selected: list[str]) -> dict[str, Any]:
    """The record a run of D fills in; ``attempt`` counts the runs of D so far."""
    previous = read_record(settings, day)
    return {
        "date": day.isoformat(),
        "attempt": (previous or {}).get("attempt", 0) + 1,
        "selected": selected,
        "started_at": datetime.now(UTC).isoformat(),
        "steps": {},
        "outputs": {},
        "mlflow": {},
    }


def finish_record(settings: Settings, record: dict[str, Any]) -> dict[str, Any]:
    """Write the record of D, then remove what the previous run of D made that nothing needs;
    the served day's numbers (simulated days: against the ground truth) go with it."""
    from .eval.served import measure_served_day

    previous = read_record(settings, date.fromisoformat(record["date"]))
    record = {**record, "finished_at": datetime.now(UTC).isoformat()}
    if previous:
        # A run of some steps (a backfill of one stage) keeps what earlier runs of D made
        # for the other steps: only the steps that ran are replaced.
        carried = {
            k: {**v, "from_run": v.get("from_run", previous["attempt"])}
            for k, v in previous["steps"].items()
            if k not in record["steps"]
        }
        record["steps"] = {
            k: ({**carried, **record["steps"]})[k] for k in STEPS if k in carried or k in record["steps"]
        }
        ran = {"bandit": "policy_dir", "ranker": "ranker_dir", "q2e": "q2e_version", "bundle": "bundle_id"}
        record["outputs"] = {
            **{
                k: v
                for k, v in previous.get("outputs", {}).items()
                if not any(k == out and step in record["selected"] for step, out in ran.items())
            },
            **record["outputs"],
        }
        record["mlflow"] = {
            **{k: v for k, v in previous.get("mlflow", {}).items() if k not in record["mlflow"]},
            **record["mlflow"],
        }
        if "promotion" not in record and previous.get("promotion") and "promote" not in record["selected"]:
            record["promotion"] = previous["promotion"]
    if "validate_logs" in record["selected"]:
        record["served_day"] = measure_served_day(settings, record["date"])
    elif previous and previous.get("served_day"):
        record["served_day"] = previous["served_day"]
    write_record(settings, record)
    retired = retire_previous(settings, previous, record)
    if retired:
        record["retired"] = retired
        write_record(settings, record)
    return record


def mlflow_ui_url(settings: Settings) -> str:
    """Where `make ui` serves MLflow (the artifact's run links point there)."""
    return f"http://127.0.0.1:{settings.orchestration.mlflow_port}"


def curve_row(night: int, record: dict[str, Any], next_served: dict[str, Any] | None) -> dict[str, Any]:
    """One night of the learning curve: what D served (recall, nDCG@10, reward, cost), the policy
    trained on D with its off-policy estimate, the value measured the next day, and the
    promotion decision with its reasons."""
    served = record.get("served_day") or {}
    bandit = record["steps"].get("bandit", {})
    estimate = bandit.get("ope_switch_dr")
    decision = record.get("promotion") or {}
    sources = (record["steps"].get("bundle") or {}).get("sources") or {}
    promoted_models = [m for m, source in sources.items() if source == "tonight"] if decision.get("promoted") else []
    # The next day measures this night's policy only if it was promoted and served that day.
    version = bandit.get("version")
    served_next = bool(next_served and version and any(p.endswith(version) for p in next_served.get("policies") or {}))
    measured = next_served.get("reward") if served_next and next_served is not None else None
    return {
        "night": night,
        "date": record["date"],
        "candidate_recall": served.get("candidate_recall"),
        "ndcg@10": served.get("ndcg@10"),
        "reward": served.get("reward"),
        "unique_candidates": served.get("unique_candidates"),
        "served_by": {"policy": served.get("policies"), "ranker": served.get("ranked_by")},
        "policy": {
            "trained": bandit.get("status"),
            "version": bandit.get("version"),
            "estimate": estimate["estimate"] if estimate else None,
            "ci": estimate["ci"] if estimate else None,
            "ess": estimate["ess"] if estimate else None,
            "measured_next_day": measured,
            "served_next_day": served_next,
            "next_day_served_by": next_served.get("policies") if next_served else None,
            "covered": bool(estimate["ci"][0] <= measured <= estimate["ci"][1])
            if estimate and measured is not None
            else None,
        },
        "ranker": {
            "trained": record["steps"].get("ranker", {}).get("status"),
            "ndcg@10": record["steps"].get("ranker", {}).get("ndcg@10"),
        },
        "promotion": {
            "bundle_id": decision.get("bundle_id"),
            "promoted": decision.get("promoted"),
            "reasons": decision.get("reasons"),
            "models": promoted_models,  # tonight's models now serving
            "attempts": record.get("promotion_attempts") or [],
        },
        "next_day": {
            k: next_served.get(k)
            for k in ("day", "candidate_recall", "ndcg@10", "reward", "unique_candidates", "policies", "ranked_by")
        }
        if next_served
        else None,
    }


def note(record: dict[str, Any], step: str, result: dict[str, Any]) -> None:
    """Put a step's result into the night's record, with the outputs and MLflow runs it made."""
    if step == "validate_logs":
        record["steps"][step] = {"status": "ran", **result}
    elif step in ("bandit", "ranker"):
        record["steps"][step] = result
        if result.get("directory"):
            record["outputs"]["policy_dir" if step == "bandit" else "ranker_dir"] = result["directory"]
            record["mlflow"][step] = result["mlflow"]
    elif step == "bundle":
        record["steps"][step] = {"status": "ran", **result}
        record["outputs"]["bundle_id"] = result["bundle_id"]
    elif step == "promote":
        record["steps"][step] = {
            "status": "promoted" if result["promoted"] else "refused",
            "reasons": result["reasons"],
        }
        # A night may gate two candidates (``fallback_models``): every decision is kept, the last one rules.
        record.setdefault("promotion_attempts", []).append(
            {"bundle_id": result["bundle_id"], "promoted": result["promoted"], "reasons": result["reasons"]}
        )
        record["promotion"] = result
        record["mlflow"]["promotion"] = {
            "run_id": result["mlflow_run"],
            "experiment_id": result["mlflow_experiment_id"],
        }
    else:
        record["steps"][step] = result
        if step == "q2e":
            record["outputs"]["q2e_version"] = result["version"]


def ensure_champion(settings: Settings) -> dict[str, Any] | None:
    """Before the first night: a static bundle without learned models (the apprentice policy
    explores around the default plan, the fusion ranks) promoted through the same gates, so every
    night has a champion to beat. If it fails them, NoChampion with the gates' reasons: nothing
    ungated serves, so there is nothing to serve traffic with."""
    from .artifacts.champion import NoChampion, promoted_bundle

    if promoted_bundle(settings) is not None:
        return None
    candidate = build_candidate(settings, None, None)
    decision = promote_candidate(settings, candidate["bundle_id"])
    if not decision["promoted"]:
        raise NoChampion(
            f"the first (static) champion {candidate['bundle_id']} failed its gates, so nothing may "
            f"serve: {'; '.join(decision['reasons'])}"
        )
    return decision


def simulate_served_day(settings: Settings, queries_per_day: int) -> dict[str, Any]:
    """One GENERATED day of searches against the promoted bundle, after the last logged day."""
    from .artifacts.champion import serving_bundle
    from .runtime import load_service
    from .simulate.run import simulate

    return simulate(settings, load_service(settings, serving_bundle(settings)), 1, queries_per_day)[0].to_dict()


def learning_curve(records: list[dict[str, Any]], last_served: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per night; each night's policy is measured on the day after it (the last night's
    on ``last_served``, a day served without a nightly after it)."""
    following = [r.get("served_day") for r in records[1:]] + [last_served]
    return [curve_row(i + 1, record, nxt) for i, (record, nxt) in enumerate(zip(records, following))]
