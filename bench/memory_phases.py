"""Peak resident memory of each phase of a synthetic run: where the memory of 10M interactions goes.

Why: the whole-process peak (`train_bench.py --memory`) says how much, not where. This resets the kernel's
peak counter (/proc/self/clear_refs) at each phase boundary and prints each phase's own peak, so the phase
that grows with the interactions is measured, not guessed. It uses the synthetic set of `train_bench.py`
(written there first) and stops the epoch after `--steps` steps, once its memory is steady.

    .venv/bin/python bench/memory_phases.py --rows 10000000 --steps 60
"""

from __future__ import annotations

import argparse
import os

import torch
from _common import OUT, machine_line
from train_bench import synthetic_spec

from tandem.data.prepare import load_interactions
from tandem.features.pipeline import fit_features
from tandem.models.two_tower import TwoTowerModel
from tandem.training.dataset import encode
from tandem.training.loop import train


def phase_end(name: str) -> None:
    """Print the phase's peak and current RSS (MiB), then reset the peak to the current RSS."""
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f)
    peak, now = (int(status[k].split()[0]) // 1024 for k in ("VmHWM", "VmRSS"))
    print(f"  {name:<26} peak {peak:>6,} MiB   resident after {now:>6,} MiB", flush=True)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class StopAfter(Exception):
    """Raised by the step callback: the epoch's steady state has been measured."""


class Steps:
    def __init__(self, last: int) -> None:
        self.last = last

    def on_step(self, epoch: int, step: int, steps: int) -> None:
        if step == self.last:
            phase_end(f"epoch, steps 1–{step} of {steps}")
            raise StopAfter

    def on_epoch_end(self, epoch: int, record: dict, weights: dict) -> None:
        phase_end("epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=60, help="steps of the epoch before stopping")
    args = parser.parse_args()
    parquet = OUT / f"synthetic_{args.rows}_100000_50000.parquet"
    if not parquet.exists():
        raise SystemExit(f"{parquet.name} is missing: run train_bench.py --only synthetic --rows {args.rows} first")
    print(f"# memory_phases: {machine_line()}\n## {args.rows:,} pairs, phase peaks (whole process)")
    phase_end("imports")
    spec = synthetic_spec(parquet.name, 32, 8192, 1)
    interactions = load_interactions(spec)
    phase_end("load_interactions")
    buyer, product = fit_features(spec, interactions)
    phase_end("fit_features")
    data = encode(interactions, buyer, product)
    phase_end("encode")
    torch.manual_seed(spec.training.seed)
    model = TwoTowerModel(spec.model, buyer.inputs(), product.inputs(), sparse=spec.training.sparse_embeddings)
    try:
        train(model, data, spec, callbacks=[Steps(args.steps)])
    except StopAfter:
        print(f"  (stopped after {args.steps} steps, as asked)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
