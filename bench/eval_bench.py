"""Full-catalog evaluation speed: tandem.evaluation.topk against the bare matrix product it cannot beat.

Why: every experiment ends with exact full-catalog ranks (true_ranks) and top-K lists (top_k), and B2B
catalogs reach a million products. Both functions score queries × candidates in blocks; the floor is the
blocked matrix product itself (queries @ candidates.T written into a reused buffer, nothing else), measured
in the same run so the ratio survives a noisy machine. Embeddings are random (seeded); each query has one
test interaction with a random true candidate (or --interactions-per-query of them).

For each catalog size and block size it prints seconds and queries/s of the bare product, true_ranks and
top_k (k=100), and each one's ratio to the bare product (median of the per-repeat ratios). With --baseline REV
it also times topk.py as committed at git revision REV, for a before/after in the same run (b54dc33 is the
version before the changes this benchmark led to). The "2-D" line is the product blocked over candidates
too, a lower floor than the row-blocked product for large catalogs.

    .venv/bin/python bench/eval_bench.py                       # 20K queries × 10K, 100K, 1M candidates
    .venv/bin/python bench/eval_bench.py --quick               # 2K queries, a minute
    .venv/bin/python bench/eval_bench.py --candidates 100000 --blocks 18,20,22,24 --baseline b54dc33
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from types import ModuleType

import numpy as np
import torch
from _common import OUT, REPO, machine_line

from tandem.evaluation import topk


def committed_topk(revision: str) -> ModuleType:
    """topk.py as committed at a git revision, loaded as a module."""
    source = subprocess.run(
        ["git", "show", f"{revision}:src/tandem/evaluation/topk.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = OUT / f"topk_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"topk_{revision}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bare_product(queries: torch.Tensor, candidates: torch.Tensor, block_elements: int) -> None:
    """The floor: queries @ candidates.T in row blocks into one reused buffer."""
    rows = max(1, block_elements // candidates.shape[0])
    candidates_t = candidates.T.contiguous()
    buffer = torch.empty(rows, candidates.shape[0])
    for start in range(0, queries.shape[0], rows):
        block = queries[start : start + rows]
        torch.mm(block, candidates_t, out=buffer[: block.shape[0]])


def bare_product_2d(queries: torch.Tensor, candidates: torch.Tensor, rows: int = 512, columns: int = 4096) -> None:
    """A faster floor for large catalogs: blocks of candidates too (4096 × d floats stay in L2), so the
    candidates are not streamed from memory once per few query rows."""
    candidates_t = candidates.T.contiguous()
    buffer = torch.empty(rows, columns)
    for start in range(0, queries.shape[0], rows):
        block = queries[start : start + rows]
        for c in range(0, candidates.shape[0], columns):
            chunk = candidates_t[:, c : c + columns]
            torch.mm(block, chunk, out=buffer[: block.shape[0], : chunk.shape[1]])


def measure(fns: dict[str, Callable[[], object]], reps: int, long_s: float) -> dict[str, list[float]]:
    """Time each fn once per repeat, interleaved; stop repeating once a repeat takes over `long_s`."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        started_rep = time.perf_counter()
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
        if time.perf_counter() - started_rep > long_s:
            break
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--candidates", default="10000,100000,1000000", help="comma-separated catalog sizes")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--blocks", default="20,22,24", help="block_elements to try, as powers of two")
    parser.add_argument("--reps", type=int, default=3, help="repeats (fewer when one repeat takes over 60 s)")
    parser.add_argument("--interactions-per-query", type=int, default=1)
    parser.add_argument("--baseline", metavar="REV", help="also time topk.py as of this git revision (e.g. b54dc33)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="2K queries, 10K and 100K candidates, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.queries, args.candidates, args.reps = 2_000, "10000,100000", 1
    if args.threads:
        torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    baseline = committed_topk(args.baseline) if args.baseline else None
    print(f"# eval_bench: {machine_line()}")
    print(
        f"# {args.queries:,} queries, dim {args.dim}, {args.interactions_per_query} interaction(s) per query, "
        f"top_k k={args.k}; seconds are medians, ratio = time / bare product time (median of per-repeat ratios)"
    )
    header = f"{'candidates':>10} {'block':>6} {'what':<22} {'seconds':>8} {'queries/s':>10} {'× bare':>7}"
    print(header)
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    queries = torch.randn(args.queries, args.dim, generator=generator)
    for n_candidates in (int(x) for x in args.candidates.split(",")):
        candidates = torch.randn(n_candidates, args.dim, generator=generator)
        query_of = np.repeat(np.arange(args.queries), args.interactions_per_query)
        true_items = rng.integers(0, n_candidates, size=len(query_of))
        ranks_args = (queries, candidates, query_of, true_items)
        bare_2d = measure({"2-D": partial(bare_product_2d, queries, candidates)}, args.reps, long_s=60.0)["2-D"]
        seconds = statistics.median(bare_2d)
        print(
            f"{n_candidates:>10,} {'2-D':>6} {'bare product, 2-D':<22} {seconds:>8.3f} {args.queries / seconds:>10,.0f}"
        )
        for power in (int(x) for x in args.blocks.split(",")):
            block = 1 << power
            fns: dict[str, Callable[[], object]] = {
                "bare product": partial(bare_product, queries, candidates, block),
                "true_ranks": partial(topk.true_ranks, *ranks_args, block_elements=block),
                f"top_k (k={args.k})": partial(topk.top_k, queries, candidates, args.k, block_elements=block),
            }
            if baseline is not None:
                fns[f"true_ranks ({args.baseline})"] = partial(baseline.true_ranks, *ranks_args, block_elements=block)
                fns[f"top_k ({args.baseline})"] = partial(
                    baseline.top_k, queries, candidates, args.k, block_elements=block
                )
            fns["bare product"]()  # warm-up: first-touch of the candidates, thread pool start
            times = measure(fns, args.reps, long_s=60.0)
            bare = times["bare product"]
            for name, values in times.items():
                ratio = statistics.median(v / b for v, b in zip(values, bare, strict=True))
                seconds = statistics.median(values)
                print(
                    f"{n_candidates:>10,} {'2^' + str(power):>6} {name:<22} {seconds:>8.3f} "
                    f"{args.queries / seconds:>10,.0f} {ratio:>7.2f}",
                    flush=True,
                )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
