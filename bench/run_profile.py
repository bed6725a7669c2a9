"""Where the whole `tandem train` tutorial run spends its time: imports, data, training, evaluation, saving.

Why: a user sees process start → metrics written, and on the tutorial most of that is not training. This
script prints

  1. the import cost of each library the CLI pulls in (`python -X importtime`, in a fresh process);
  2. the phases of one run in this process, wall and CPU seconds each (the same calls `tandem train` makes);
  3. with --env-study, the whole CLI run under OpenMP settings, alternated round by round: libgomp's default
     (waiting threads spin 300,000 times before sleeping), OMP_WAIT_POLICY=PASSIVE, a short spin (the CLI's
     default since this benchmark), and one thread. --burners N adds N busy-looping processes for the study,
     a reproducible stand-in for the other work on a shared machine, where spinning OpenMP threads lose badly.

    .venv/bin/python bench/run_profile.py
    .venv/bin/python bench/run_profile.py --env-study --rounds 5
    .venv/bin/python bench/run_profile.py --env-study --rounds 5 --burners 1 --skip-phases
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _common import (
    OPENMP_KEYS,
    OUT,
    REPO,
    TANDEM,
    TUTORIAL_SPEC,
    load_average,
    run_child,
    seconds_since_process_start,
)

BASELINE = "GOMP_SPINCOUNT=300000"
ENV_VARIANTS = {
    "GOMP_SPINCOUNT=300000": {"GOMP_SPINCOUNT": "300000"},  # libgomp's default: what torch ran with before
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
}


def import_costs(statement: str, min_ms: float = 30.0, depth: int = 2) -> list[tuple[str, float, int]]:
    """(module, cumulative ms, nesting) of the imports `statement` triggers in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True, cwd=REPO
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part for part in line.removeprefix("import time:").split("|"))
        level = (len(name) - len(name.lstrip())) // 2
        if level <= depth and int(cumulative) / 1000 >= min_ms:
            rows.append((name.strip(), int(cumulative) / 1000, level))
    return rows


def phases() -> list[tuple[str, float, float]]:
    """(phase, seconds since process start, CPU seconds of this process) at the end of each phase of the CLI's
    train command, making the same calls in the same order; metrics.json is written before model/ and bundle/."""
    marks = [("interpreter started, bench helpers imported", seconds_since_process_start(), time.process_time())]

    def mark(name: str) -> None:
        marks.append((name, seconds_since_process_start(), time.process_time()))

    import torch  # noqa: F401

    mark("import torch")
    from tandem.run import RunResult, build_model, final_metrics
    from tandem.spec import load_spec
    from tandem.training.dataset import encode
    from tandem.training.loop import train
    from tandem.validation import check_data

    mark("import tandem.run (pandas, duckdb, pydantic, ...)")
    spec = load_spec(TUTORIAL_SPEC)
    mark("load spec")
    interactions, buyer, product = check_data(spec)
    mark("read, clean, split, fit features")
    data = encode(interactions, buyer, product)
    mark("encode")

    trained = build_model(spec, buyer, product, data)
    mark("build model")
    history, weights = train(trained.model, data, spec)
    mark(f"train ({spec.training.epochs} epochs)")
    metrics, notes = final_metrics(trained.model, data, spec)
    mark("final metrics (full-catalog ranks, baselines, RMSE)")
    result = RunResult(spec, metrics, history, weights, interactions.report, trained, notes, data=data)
    out = OUT / "run-profile"
    result.save(out, models=False)
    mark("write metrics.json and the other reports")
    trained.save(out / "model")
    mark("write model/")
    from tandem.export.bundle import export_bundle

    export_bundle(trained, data, out / "bundle")
    mark("write bundle/ (ONNX export, index)")
    return marks


def env_study(rounds: int) -> None:
    """Whole CLI runs under each OpenMP setting, alternated; medians of start → metrics.json and of training."""
    to_metrics: dict[str, list[float]] = {name: [] for name in ENV_VARIANTS}
    training: dict[str, list[float]] = {name: [] for name in ENV_VARIANTS}
    out = OUT / "run-profile-env"
    for r in range(rounds):
        for name, env in ENV_VARIANTS.items():
            started = time.time()
            cmd = [str(TANDEM), "train", str(TUTORIAL_SPEC), "--quiet", "--out", str(out)]
            run_child(cmd, out / "log.txt", env, drop=OPENMP_KEYS)
            to_metrics[name].append((out / "metrics.json").stat().st_mtime - started)
            training[name].append(sum(h["seconds"] for h in json.loads((out / "history.json").read_text())))
            print(
                f"round {r + 1} {name:<24} to metrics {to_metrics[name][-1]:6.2f} s, training {training[name][-1]:6.2f} s"
                f" (load {load_average()})",
                flush=True,
            )
    base, base_training = (statistics.median(x[BASELINE]) for x in (to_metrics, training))
    print(f"\n# medians of {rounds}; speed-up against libgomp's default ({BASELINE})")
    for name in ENV_VARIANTS:
        m, t = statistics.median(to_metrics[name]), statistics.median(training[name])
        print(f"  {name:<24} to metrics {m:6.2f} s ({base / m:.2f}×)   training {t:6.2f} s ({base_training / t:.2f}×)")


def start_burners(n: int) -> list[subprocess.Popen]:
    """n processes that each keep one core busy until stopped."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-study", action="store_true", help="alternate whole runs under OpenMP settings")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--burners", type=int, default=0, help="busy-looping processes during the study")
    parser.add_argument("--skip-phases", action="store_true", help="only the OpenMP study")
    args = parser.parse_args()
    print(f"# run_profile: load average {load_average()}, OMP env: "
          f"{ {k: v for k, v in os.environ.items() if k.startswith(('OMP_', 'GOMP_'))} }")  # fmt: skip
    if not args.skip_phases:
        print("\n## Phases of one run in this process: wall and CPU (user + system) seconds, and wall since start")
        print(f"  {'phase':<60} {'wall':>6} {'CPU':>6} {'at':>7}")
        previous, previous_cpu = 0.0, 0.0
        for name, at, cpu in phases():
            print(f"  {name:<60} {at - previous:6.2f} {cpu - previous_cpu:6.2f} {at:7.2f}")
            previous, previous_cpu = at, cpu
        print("\n## Import cost (ms, cumulative; nested imports are counted under whoever imports them first)")
        for name, ms, level in import_costs("import tandem.cli, tandem.run"):
            print(f"  {'  ' * level}{name:<{40 - 2 * level}} {ms:8.0f}")
    if args.env_study:
        print(f"\n## OpenMP settings, whole CLI runs alternated, {args.burners} busy-looping process(es) beside")
        burners = start_burners(args.burners)
        try:
            env_study(args.rounds)
        finally:
            for b in burners:
                b.kill()
                b.wait()


if __name__ == "__main__":
    main()
