"""Pictures of off-policy estimates: each estimator's interval beside the value it estimates."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_intervals(report: dict[str, Any], path: Path, title: str) -> Path:
    """Horizontal error bars per estimator, the on-policy value (when known) as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["estimators"])
    values = [report["estimators"][n]["estimate"] for n in names]
    lows = [v - report["estimators"][n]["ci"][0] for n, v in zip(names, values)]
    highs = [report["estimators"][n]["ci"][1] - v for n, v in zip(names, values)]
    figure, axis = plt.subplots(figsize=(7, 0.6 * len(names) + 1.5))
    axis.errorbar(values, range(len(names)), xerr=[lows, highs], fmt="o", capsize=4)
    on_policy = report.get("on_policy")
    if on_policy:
        axis.axvspan(*on_policy["ci"], color="tab:green", alpha=0.15, label="on-policy 95% interval")
        axis.axvline(on_policy["value"], color="tab:green", label="on-policy value")
        axis.legend(loc="lower right", fontsize=8)
    axis.set_yticks(range(len(names)), [f"{n} (ESS {report['estimators'][n]['ess']:.0f})" for n in names])
    axis.set_xlabel("estimated value")
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)
