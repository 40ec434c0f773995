"""The champion: the promoted bundle the runtime serves (``bundles/PROMOTED``) and the decision
history (``bundles/promotions.jsonl``) that says which bundles passed the gates. Read by the
runtime and the learners; written only by ``ltrr_core.promotion``, which gates candidates.

Nothing ungated serves: ``serving_bundle`` is the promoted bundle or ``NoChampion``; before the
first promotion the runtime refuses to start (``ltrr serve``) rather than serve the latest build.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import Settings
from ..models.ranker import SPEC_FILE, Ranker
from .bundle import PROMOTED, BundleError, bundle_store, bundles_root

POINTER = PROMOTED
HISTORY = "promotions.jsonl"


class NoChampion(BundleError):
    """No bundle has passed the gates: there is nothing the runtime may serve."""


def promoted_bundle(settings: Settings) -> Path | None:
    return bundle_store(settings).pointed(POINTER)


def serving_bundle(settings: Settings) -> Path:
    """What the runtime serves: the promoted bundle. Before any promotion, NoChampion -- never
    the latest build, which no gate has passed."""
    bundle = promoted_bundle(settings)
    if bundle is None:
        raise NoChampion(
            f"no bundle has been promoted under {bundles_root(settings)}, so nothing gated can serve: "
            "run `ltrr promote` (gates the latest built bundle) or a nightly first"
        )
    return bundle


def gated_bundles(settings: Settings) -> set[str]:
    """Bundles that passed every gate in some decision (promoted, or a dry run that would have been)."""
    return {
        e["bundle_id"]
        for e in history(settings)
        if e["action"] == "promote" and e.get("gates") and all(g["passed"] for g in e["gates"])
    }


def require_gated(settings: Settings, bundle: Path) -> Path:
    """``bundle`` if it has passed every gate, else BundleError saying how to gate it."""
    if Path(bundle).name not in gated_bundles(settings):
        raise BundleError(
            f"bundle {bundle} has not passed the promotion gates (bundles/{HISTORY}); "
            f"gate it with `ltrr promote --dry-run {bundle}` before serving it"
        )
    return Path(bundle)


def history(settings: Settings) -> list[dict[str, Any]]:
    path = bundles_root(settings) / HISTORY
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def serving_ranker(settings: Settings) -> Ranker | None:
    """The champion: the ranker of the promoted bundle, if there is one and it has a ranker."""
    try:
        directory = serving_bundle(settings) / "ranker"
    except BundleError:
        return None
    return Ranker(directory) if (directory / SPEC_FILE).is_file() else None
