"""Draw a two-objective study's trade-off from its study.json, and print every trial with the Pareto set.

    .venv/bin/python bench/study_front.py runs/sweep/study.json --x recall_at_100 --y test_rmse \
        --png bench/studies_weight_sweep.png

Each completed trial is a point labelled with its parameters; trials with a loss weight of 0 (one task only)
are drawn apart; the Pareto set (study.json's `pareto`, Optuna's) is joined by a line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _short(params: dict) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1].replace('_weight', '')}={v:.3g}" for k, v in params.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study_json", type=Path)
    parser.add_argument("--x", default="recall_at_100")
    parser.add_argument("--y", default="test_rmse")
    parser.add_argument("--png", type=Path, required=True)
    parser.add_argument("--title", default="Retrieval against ranking: the loss-weight sweep")
    args = parser.parse_args()
    record = json.loads(args.study_json.read_text())
    front = set(record["pareto"])
    done = [t for t in record["trials"] if t["state"] == "complete"]
    print(f"{'trial':>5}  {'params':<34} {args.x:>14} {args.y:>10}  front")
    for t in sorted(done, key=lambda t: sorted(t["params"].items())):
        mark = "*" if t["number"] in front else ""
        print(
            f"{t['number']:>5}  {_short(t['params']):<34} {t['metrics'][args.x]:>14.4f} {t['metrics'][args.y]:>10.4f}  {mark}"
        )
    for t in record["trials"]:
        if t["state"] != "complete":
            print(f"{t['number']:>5}  {_short(t['params']):<34} {t['state']}")

    single = [t for t in done if 0 in t["params"].values()]
    joint = [t for t in done if t not in single]
    # Left: every trial; right: the joint models' corner, where the front lies.
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), dpi=120)
    line = sorted((t for t in done if t["number"] in front), key=lambda t: t["metrics"][args.x])
    for ax, zoomed in zip(axes, (False, True), strict=True):
        for group, colour, marker, label in ((joint, "#2f6fed", "o", "multitask trials"),
                                             (single, "#e8590c", "^", "a weight of 0 (one task learned)")):  # fmt: skip
            ax.scatter([t["metrics"][args.x] for t in group], [t["metrics"][args.y] for t in group], c=colour,
                       marker=marker, s=36, alpha=0.8, label=label, zorder=2)  # fmt: skip
        ax.plot([t["metrics"][args.x] for t in line], [t["metrics"][args.y] for t in line], "-D", c="#7b3fc4",
                ms=6, lw=1.5, label="Pareto front", zorder=3)  # fmt: skip
        if zoomed and joint:
            xs, ys = [t["metrics"][args.x] for t in joint], [t["metrics"][args.y] for t in joint]
            ax.set_xlim(min(xs) - 0.005, max(xs) + 0.005)
            ax.set_ylim(min(ys) - 0.01, max(ys) + 0.01)
            for t in joint:
                ax.annotate(_short(t["params"]), (t["metrics"][args.x], t["metrics"][args.y]), fontsize=5,
                            xytext=(3, 2), textcoords="offset points", alpha=0.7)  # fmt: skip
        ax.set_xlabel(f"{args.x} (higher is better)")
        ax.set_ylabel(f"{args.y} (lower is better)")
        ax.set_title(args.title if not zoomed else "the multitask trials, closer")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left" if not zoomed else "upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.png)
    print(f"wrote {args.png}; Pareto set: {sorted(front)}")


if __name__ == "__main__":
    main()
