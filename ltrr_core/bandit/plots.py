"""Pictures of off-policy estimates (each estimator's interval beside the value it estimates) and
of the nightly evaluation (hit rates by night against the static baselines; estimate vs measured)."""

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


def plot_nights(nights: list[dict[str, Any]], path: Path) -> Path:
    """Left: candidate hit rate per night -- learned (greedy), served, the best static mixture at the
    same budget (hindsight and chosen on the previous day), each strategy alone, the oracle.
    Right: the previous night's off-policy estimate with its interval beside the measured value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [n["day"][5:] for n in nights]
    x = list(range(len(nights)))
    metrics = [n["candidate_hit_rate"] for n in nights]
    learned = [m.get("learned", {}) for m in metrics]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    left.plot(x, [m["oracle"] for m in metrics], "k:", label="oracle (any plan)")
    left.plot(
        x, [l.get("hit_rate", m["served"]) for l, m in zip(learned, metrics)], "o-", lw=2, label="learned (greedy)"
    )
    left.plot(x, [m["served"] for m in metrics], ".--", label="served (with exploration)")
    left.plot(
        x,
        [l.get("best_static_mixture", {}).get("hit_rate") for l in learned],
        "s-",
        label="best static mixture, hindsight",
    )
    prior = [l.get("static_from_previous_day", {}).get("best_static_mixture", {}).get("hit_rate") for l in learned]
    left.plot(x, prior, "^-", label="best static mixture, chosen on the previous day")
    for strategy in metrics[0]["single_strategies"]:
        left.plot(
            x,
            [m["single_strategies"].get(strategy) for m in metrics],
            lw=0.8,
            alpha=0.6,
            label=f"{strategy} alone (100)",
        )
    left.set_title("candidate hit rate by night, at the learned plans' budget", fontsize=10)
    left.set_xticks(x, days)
    left.set_ylabel("share of requests whose candidates hold an intended entity")
    left.legend(fontsize=7, loc="lower left")
    checks = [
        (i, n["previous_estimate"], n["measured_value"]) for i, n in enumerate(nights) if "previous_estimate" in n
    ]
    if checks:
        xs = [i for i, _, _ in checks]
        estimates = [e["estimate"] for _, e, _ in checks]
        right.errorbar(
            xs,
            estimates,
            yerr=[
                [e["estimate"] - e["ci"][0] for _, e, _ in checks],
                [e["ci"][1] - e["estimate"] for _, e, _ in checks],
            ],
            fmt="o",
            capsize=4,
            label="previous night's estimate (95%)",
        )
        right.plot(xs, [m for _, _, m in checks], "rx", ms=9, label="measured that day")
    right.set_title("the previous night's off-policy estimate vs the value measured on policy", fontsize=10)
    right.set_xticks(x, days)
    right.set_ylabel("reward (engagement - candidate cost)")
    right.legend(fontsize=8)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)
