"""The second stage in a bundle: how large it is on disk, and how long the server's second stage takes for one
buyer and for a batch.

Why: the bundle carries what /v1/recommend needs to give a known buyer the evaluated list (the training order
log, the kept EASE neighbours, category codes, the ranker graph). A dense EASE matrix over 6,000 products would
be N² × 4 bytes = 144 MB; the bundle keeps `recommend.ease_neighbours` weights per product instead, the same
table the evaluation scored with. This fits the spec's second stage (no two-tower training), saves it as the
exporter does, loads it as the server does, and times `TwoStage.lists` (the code /v1/recommend runs).

    .venv/bin/python bench/two_stage_bundle.py examples/tafeng_best.yaml
    .venv/bin/python bench/two_stage_bundle.py examples/completejourney_best.yaml --buyers 100
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine_line

from tandem.recommend.build import fit_two_stage
from tandem.recommend.two_stage import TwoStage
from tandem.run import prepare
from tandem.spec import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--buyers", type=int, default=200, help="single-buyer calls timed")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    print(machine_line())
    spec = load_spec(args.spec)
    interactions, _, data = prepare(spec)
    started = time.perf_counter()
    fitted = fit_two_stage(spec, interactions, data)
    print(f"fit: {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as folder:
        fitted.save(folder)
        sizes = {f.name: f.stat().st_size for f in sorted(Path(folder).iterdir())}
        loaded = TwoStage.load(folder)
    n = fitted.settings.ease_products
    print(
        f"buyers {fitted.log.n_buyers:,}, products {fitted.log.n_products:,}, orders {len(fitted.log.buyer):,}, "
        f"kept neighbour weights {fitted.neighbours.weights.nnz:,}"
    )
    for name, size in sizes.items():
        print(f"  {name}: {size / 1e6:.2f} MB")
    print(
        f"second stage on disk: {sum(sizes.values()) / 1e6:.2f} MB (a dense EASE over {n:,}: {n * n * 4 / 1e6:.0f} MB)"
    )
    rng = np.random.default_rng(0)
    buyers = rng.choice(fitted.log.n_buyers, min(args.buyers, fitted.log.n_buyers), replace=False)
    loaded.lists(buyers[:1], args.k)  # warm-up
    times = []
    for b in buyers:
        t = time.perf_counter()
        loaded.lists(np.array([b]), args.k)
        times.append(time.perf_counter() - t)
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    print(f"one buyer, k={args.k}: median {statistics.median(times) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms")
    block = rng.choice(fitted.log.n_buyers, min(1024, fitted.log.n_buyers), replace=False)
    t = time.perf_counter()
    loaded.lists(block, args.k)
    print(f"{len(block)} buyers at once: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
