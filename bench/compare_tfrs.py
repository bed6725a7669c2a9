"""Tandem against TensorFlow Recommenders on the multitask tutorial, side by side on this machine.

Why: the issue's bar is "the whole run, process start to metrics written, at least 5× faster than the
fastest form of TFRS, measured side by side". On a shared, noisy machine only alternation makes that fair:
each round runs Tandem, TFRS with training-time metrics off, and (unless --no-metrics-on) TFRS as the
tutorial is written, one after the other; the script prints the medians and the ratios of the medians,
and the median of the per-round ratios.

Tandem runs as a user runs it (`.venv/bin/tandem train examples/movielens_multitask.yaml --quiet --out
bench/out/compare/tandem`); TFRS runs bench/tfrs_tutorial.py in its own virtualenv (bench/out/tfrs-venv, see
RESULTS.md for how it is made). "to metrics" is process spawn → metrics.json written (Tandem, file mtime) or
→ metrics printed (TFRS); "to exit" is spawn → process exit, as timed by this script.

    .venv/bin/python bench/compare_tfrs.py --rounds 5
    .venv/bin/python bench/compare_tfrs.py --rounds 1 --no-metrics-on     # quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import BENCH, OUT, TANDEM, TUTORIAL_SPEC, load_average, machine_line, run_child

TFRS_PYTHON = OUT / "tfrs-venv" / "bin" / "python"


def run_tandem(out: Path, log: Path, env: dict[str, str]) -> dict[str, float]:
    started = time.time()
    wall, rss, _ = run_child([str(TANDEM), "train", str(TUTORIAL_SPEC), "--quiet", "--out", str(out)], log, env)
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    return {
        "to_metrics_s": (out / "metrics.json").stat().st_mtime - started,
        "to_exit_s": wall,
        "training_s": sum(h["seconds"] for h in history),
        "peak_rss_mib": rss,
        "top_100": metrics["recall_at_100"],
        "rmse": metrics["rmse"],
    }


def run_tfrs(mode: str, log: Path) -> dict[str, float]:
    wall, rss, stdout = run_child([str(TFRS_PYTHON), str(BENCH / "tfrs_tutorial.py"), "--metrics", mode], log)
    result = json.loads(stdout.rsplit("RESULT ", 1)[1])
    return {
        "to_metrics_s": result["start_to_metrics_s"],
        "to_exit_s": wall,
        "training_s": result["training_s"],
        "peak_rss_mib": rss,
        "top_100": result["top_100_accuracy"],
        "rmse": result["rmse"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-metrics-on", action="store_true", help="skip TFRS as written (the slowest form)")
    parser.add_argument("--tandem-env", action="append", default=[], metavar="NAME=VALUE", help="env for Tandem")
    args = parser.parse_args()
    if not TFRS_PYTHON.exists():
        raise SystemExit(f"{TFRS_PYTHON} is missing: make the TFRS virtualenv first (see bench/RESULTS.md)")
    env = dict(item.split("=", 1) for item in args.tandem_env)
    folder = OUT / "compare"
    print(f"# compare_tfrs: {machine_line()}")
    contenders = {"tandem": lambda r: run_tandem(folder / "tandem", folder / f"tandem-{r}.log", env)}
    contenders["tfrs, metrics off"] = lambda r: run_tfrs("off", folder / f"tfrs-off-{r}.log")
    if not args.no_metrics_on:
        contenders["tfrs, metrics on"] = lambda r: run_tfrs("on", folder / f"tfrs-on-{r}.log")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for r in range(args.rounds):
        for name, fn in contenders.items():
            results[name].append(fn(r))
            row = results[name][-1]
            print(
                f"round {r + 1} {name:<18} to metrics {row['to_metrics_s']:6.2f} s  to exit {row['to_exit_s']:6.2f} s  "
                f"training {row['training_s']:6.2f} s  peak {row['peak_rss_mib']:5.0f} MiB  "
                f"top-100 {row['top_100']:.3f}  RMSE {row['rmse']:.3f}  (load {load_average()})",
                flush=True,
            )

    def med(name: str, key: str) -> float:
        return statistics.median(row[key] for row in results[name])

    print(f"\n# medians over {args.rounds} round(s)")
    print(f"{'':<18} {'to metrics':>10} {'to exit':>8} {'training':>8} {'peak MiB':>8} {'top-100':>7} {'RMSE':>6}")
    for name in results:
        print(
            f"{name:<18} {med(name, 'to_metrics_s'):>10.2f} {med(name, 'to_exit_s'):>8.2f} "
            f"{med(name, 'training_s'):>8.2f} {med(name, 'peak_rss_mib'):>8.0f} "
            f"{med(name, 'top_100'):>7.3f} {med(name, 'rmse'):>6.3f}"
        )
    for name in [n for n in results if n != "tandem"]:
        per_round = [
            t["to_metrics_s"] / d["to_metrics_s"] for t, d in zip(results[name], results["tandem"], strict=True)
        ]
        print(
            f"{name} / tandem, process start → metrics: {med(name, 'to_metrics_s') / med('tandem', 'to_metrics_s'):.1f}× "
            f"(median of per-round ratios {statistics.median(per_round):.1f}×); training only: "
            f"{med(name, 'training_s') / med('tandem', 'training_s'):.1f}×"
        )


if __name__ == "__main__":
    main()
