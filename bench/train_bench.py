"""Training throughput of the engine, and the whole tutorial run as a user sees it.

Why: the reference to beat is TensorFlow Recommenders' multitask tutorial (DESIGN.md, "Reference results"),
and B2B catalogs are far larger than MovieLens. This script prints

  1. the tutorial protocol (examples/movielens_multitask.yaml): seconds per epoch and examples/s of
     tandem.training.loop.train, median over repeated trainings of a fresh model;
  2. a synthetic Zipf-like catalog (default 1M buyer–product pairs, 100K buyers, 50K products) written as
     Parquet under bench/out/, trained with a multitask spec of id embeddings at batch 8192, with its
     examples/s as a fraction of the limit: the three bare matrix products of the exact in-batch softmax at
     a batch's distinct counts, timed in the same run;
  3. one in-batch softmax step (forward + backward) at batch 8192 on a real MovieLens batch: the naive
     B × B score matrix against the engine's distinct-row form (RetrievalTask), with their losses compared;
  4. the blocked softmax alone at several block sizes against the bare products (`--only blocks`);
  5. the whole `tandem train examples/movielens_multitask.yaml --quiet` run: process start to metrics.json
     written and to process exit, median of several runs.

    .venv/bin/python bench/train_bench.py            # everything (about 5–10 minutes on 2 busy cores)
    .venv/bin/python bench/train_bench.py --quick    # small sizes, a minute
    .venv/bin/python bench/train_bench.py --memory 1000000,10000000   # peak memory, 1M against 10M pairs
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from _common import OUT, TANDEM, TUTORIAL_SPEC, machine_line, median, run_child, spread, timed
from torch import nn

from tandem.models.blocked_softmax import blocked_softmax_loss
from tandem.models.tasks import RetrievalTask
from tandem.models.two_tower import TwoTowerModel
from tandem.run import prepare
from tandem.spec import ExperimentSpec, load_spec, parse_spec
from tandem.training.dataset import EncodedData
from tandem.training.loop import train
from tandem.training.optim import make_optimizers


def fresh_model(spec: ExperimentSpec, trained) -> TwoTowerModel:
    torch.manual_seed(spec.training.seed)
    buyer, product = trained.buyer_features.inputs(), trained.product_features.inputs()
    return TwoTowerModel(spec.model, buyer, product, sparse=spec.training.sparse_embeddings)


def bench_training(name: str, spec: ExperimentSpec, reps: int, limit: bool = False) -> tuple[EncodedData, list[float]]:
    """Prepare once, then train a fresh model `reps` times; print epoch times and examples/s, and with
    `limit`, examples/s as a fraction of the bare-product limit timed during the same epochs (`LimitProbe`)."""
    started = time.perf_counter()
    _, trained, data = prepare(spec)
    prepared = time.perf_counter() - started
    n = len(data.train)
    # The first optimiser of a process imports torch._dynamo (torch.optim's _disable_dynamo): time it apart.
    started = time.perf_counter()
    make_optimizers(trained.model, spec.training)
    first_optimizer = time.perf_counter() - started
    epochs, totals = [], []
    probe = LimitProbe(data, spec.training.batch_size, trained.model.query_tower.output_dim) if limit else None
    for _ in range(reps):
        model = fresh_model(spec, trained)
        started = time.perf_counter()
        history, _ = train(model, data, spec, callbacks=[probe] if probe else ())
        totals.append(time.perf_counter() - started)
        epochs += [h["seconds"] for h in history]
    print(f"\n## {name}: {n:,} training rows, {len(data.buyer_ids):,} buyers, {len(data.product_ids):,} products")
    print(f"  load + fit features + encode     {prepared:.2f} s")
    print(f"  first optimizer (torch._dynamo)  {first_optimizer:.2f} s")
    print(f"  seconds per epoch                {spread(epochs)}")
    print(f"  examples/s                       {n / median(epochs):,.0f}")
    print(f"  train(), {spec.training.epochs} epoch(s)               {spread(totals)}")
    if probe:
        dim = probe.queries.shape[1]
        ceiling = spec.training.batch_size / median(probe.times)
        print(
            f"  limit: 3 bare products {probe.n_q}×{probe.n_c}×{dim}  {ceiling:,.0f} examples/s ({spread(probe.times)})"
        )
        print(f"  fraction of the limit            {n / median(epochs) / ceiling:.0%}")
    return data, epochs


class LimitProbe:
    """A training callback that times the limit every `every` steps, between steps, so the limit and the
    training share the machine's load; `seconds` (its own time) is taken out of the epoch's.

    The limit: the exact in-batch softmax needs at least scores = Q @ C.T and the two gradient products,
    dScores @ C and dScores.T @ Q, at the distinct counts of a batch (the first of a seeded shuffle); nothing
    else is timed.
    """

    def __init__(self, data: EncodedData, batch: int, dim: int, every: int = 5) -> None:
        order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:batch]
        self.n_q = len(torch.unique(data.train.query[order]))
        self.n_c = len(torch.unique(data.train.product[order]))
        g = torch.Generator().manual_seed(1)
        self.queries = torch.randn(self.n_q, dim, generator=g)
        self.candidates = torch.randn(self.n_c, dim, generator=g)
        self.every, self.times, self.seconds = every, [], 0.0

    def products(self) -> None:
        scores = self.queries @ self.candidates.T
        scores @ self.candidates
        scores.T @ self.queries

    def on_step(self, epoch: int, step: int, steps: int) -> None:
        if step % self.every == 1:
            started = time.perf_counter()
            self.products()
            self.times.append(time.perf_counter() - started)
            self.seconds += self.times[-1]

    def on_epoch_end(self, epoch: int, record: dict, weights: dict) -> None:
        record["seconds"] -= self.seconds
        self.seconds = 0.0


def write_synthetic(path: os.PathLike, rows: int, buyers: int, products: int, seed: int = 0) -> None:
    """Zipf-like buyer activity and product popularity (exponents 0.8 and 1.0), unique pairs, a sales target."""
    rng = np.random.default_rng(seed)

    def zipf_ids(n_ids: int, size: int, exponent: float) -> np.ndarray:
        weights = 1.0 / np.arange(1, n_ids + 1) ** exponent
        return rng.choice(rng.permutation(n_ids), size=size, p=weights / weights.sum())

    pairs = np.zeros((0, 2), dtype=np.int64)
    while len(pairs) < rows:
        draw = np.stack([zipf_ids(buyers, rows, 0.8), zipf_ids(products, rows, 1.0)], axis=1)
        pairs = np.unique(np.concatenate([pairs, draw]), axis=0)
    pairs = pairs[rng.permutation(len(pairs))[:rows]]
    table = pa.table(
        {
            "buyer_id": pairs[:, 0],
            "product_id": pairs[:, 1],
            "ts": rng.integers(1_600_000_000, 1_700_000_000, size=rows),
            "sales": np.round(rng.lognormal(2.0, 1.0, size=rows), 2),
        }
    )
    pq.write_table(table, path)


def synthetic_spec(parquet: str, dim: int, batch: int, epochs: int) -> ExperimentSpec:
    raw = {
        "name": "synthetic-multitask",
        "data": {
            "transactions": {"path": parquet},
            "buyer_id": "buyer_id",
            "product_id": "product_id",
            "timestamp": "ts",
            "split": {"kind": "random", "test_fraction": 0.2, "seed": 42},
        },
        "features": {
            "buyer": [{"column": "buyer_id", "transform": "id", "embedding_dim": dim}],
            "product": [{"column": "product_id", "transform": "id", "embedding_dim": dim}],
            "target": "sales",
        },
        "model": {"type": "multitask", "rating_head_layers": [256, 128, 1]},
        "training": {"optimizer": "adagrad", "learning_rate": 0.1, "batch_size": batch, "epochs": epochs},
        "evaluation": {"ks": [10, 100]},
    }
    return parse_spec(raw, base=OUT)


def softmax_step(data: EncodedData, batch: int, dim: int, reps: int) -> None:
    """One retrieval step over a real batch: naive B × B cross-entropy against the distinct-row form."""
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:batch]
    users, items = data.train.query[order], data.train.product[order]
    torch.manual_seed(0)
    queries = nn.Embedding(len(data.query_buyer), dim)
    products = nn.Embedding(len(data.product_ids), dim)
    task = RetrievalTask()
    b = len(order)

    def naive() -> torch.Tensor:
        scores = queries(users) @ products(items).T  # [B, B]: every row's product is a column
        return nn.functional.cross_entropy(scores, torch.arange(b), reduction="sum")

    def distinct() -> torch.Tensor:
        uq, q_index = torch.unique(users, return_inverse=True)
        uc, c_index, counts = torch.unique(items, return_inverse=True, return_counts=True)
        return task(queries(uq), products(uc), q_index, c_index, counts)

    def step(loss_fn):
        def run() -> None:
            queries.zero_grad(set_to_none=True)
            products.zero_grad(set_to_none=True)
            loss_fn().backward()

        return run

    a, c = naive().item(), distinct().item()
    n_q, n_c = len(torch.unique(users)), len(torch.unique(items))
    t_naive = timed(step(naive), reps)
    t_distinct = timed(step(distinct), reps)
    print(
        f"\n## In-batch softmax step (forward + backward), batch {b}, dim {dim}: {n_q} distinct queries, {n_c} products"
    )
    print(f"  naive B×B ({b}×{b})              {spread(t_naive)}")
    print(f"  distinct rows ({n_q}×{n_c})       {spread(t_distinct)}")
    print(f"  speed-up                          {median(t_naive) / median(t_distinct):.1f}×")
    print(
        f"  losses                            naive {a:.3f}, distinct {c:.3f} (relative gap {abs(a - c) / abs(a):.1e})"
    )


def block_sizes(n_q: int, n_c: int, dim: int, batch: int, reps: int) -> None:
    """The blocked loss (forward + backward) at several block sizes against the three bare products, interleaved,
    on random embeddings at the synthetic batch's distinct counts (every distinct row used, the rest repeats)."""
    g = torch.Generator().manual_seed(0)
    q_index = torch.cat([torch.arange(n_q), torch.randint(0, n_q, (batch - n_q,), generator=g)])
    c_index = torch.cat([torch.arange(n_c), torch.randint(0, n_c, (batch - n_c,), generator=g)])
    counts = torch.bincount(c_index, minlength=n_c)
    queries = (0.3 * torch.randn(n_q, dim, generator=g)).requires_grad_()
    candidates = (0.3 * torch.randn(n_c, dim, generator=g)).requires_grad_()

    def bare() -> None:
        scores = queries.detach() @ candidates.detach().T
        scores @ candidates.detach()
        scores.T @ queries.detach()

    def blocked(elements: int):
        def run() -> None:
            queries.grad = candidates.grad = None
            blocked_softmax_loss(queries, candidates, q_index, c_index, counts, block_elements=elements).backward()

        return run

    fns = {"3 bare products": bare, **{f"blocked, 2^{p} scores": blocked(1 << p) for p in range(16, 22)}}
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(reps):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    print(f"\n## Blocked in-batch softmax, forward + backward, {n_q}×{n_c}×{dim}, batch {batch} (interleaved)")
    for name, values in times.items():
        print(f"  {name:<26} {spread(values)}  bare/this {median(times['3 bare products']) / median(values):.2f}")


def whole_runs(runs: int) -> None:
    """`tandem train` as a user runs it: process start → metrics.json written, and → process exit."""
    out = OUT / "whole-run"
    to_metrics, to_exit = [], []
    for _ in range(runs):
        started = time.time()
        subprocess.run(
            [str(TANDEM), "train", str(TUTORIAL_SPEC), "--quiet", "--out", str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        to_exit.append(time.time() - started)
        to_metrics.append((out / "metrics.json").stat().st_mtime - started)
    print(f"\n## Whole tutorial run: tandem train {TUTORIAL_SPEC.relative_to(TUTORIAL_SPEC.parents[1])} --quiet")
    print(f"  process start → metrics.json      {spread(to_metrics)}")
    print(f"  process start → exit              {spread(to_exit)}")


def memory_runs(sizes: list[int], args: argparse.Namespace) -> None:
    """Peak resident memory of the synthetic benchmark (prepare + one epoch) at each size, in fresh processes."""
    print("\n## Peak memory of a synthetic epoch, whole process (fresh process per size)")
    first = None
    for rows in sizes:
        command = [sys.executable, __file__, "--only", "synthetic", "--rows", str(rows)]
        command += ["--buyers", str(args.buyers), "--products", str(args.products), "--dim", str(args.dim)]
        wall, peak, out = run_child(command, OUT / f"memory_{rows}.log")
        first = first or peak
        rate = next((line.split()[-1] for line in out.splitlines() if "examples/s  " in line), "?")
        print(f"  {rows:>11,} pairs  peak {peak:,.0f} MiB ({peak / first:.2f}x)  {wall:.0f} s  {rate} examples/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: 100K synthetic pairs, fewer repeats")
    parser.add_argument("--reps", type=int, default=3, help="trainings per dataset (tutorial)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic buyer–product pairs")
    parser.add_argument("--buyers", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=32, help="embedding dim of the synthetic spec")
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the synthetic spec")
    parser.add_argument("--whole-runs", type=int, default=5, help="repeats of the whole `tandem train` run")
    parser.add_argument("--only", choices=["tutorial", "synthetic", "softmax", "blocks", "whole"], action="append")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--memory", metavar="ROWS,ROWS", help="only: peak memory of a synthetic epoch at each size")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.buyers, args.products = 100_000, 10_000, 5_000
        args.reps, args.whole_runs = 1, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    only = set(args.only or ["tutorial", "synthetic", "softmax", "whole"])
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"# train_bench: {machine_line()}")
    if args.memory:
        memory_runs([int(x) for x in args.memory.split(",")], args)
        return

    if only & {"tutorial", "softmax"}:
        spec = load_spec(TUTORIAL_SPEC)
        if "tutorial" in only:
            data, _ = bench_training("Tutorial protocol (MovieLens 100K, batch 8192, 3 epochs)", spec, args.reps)
        else:
            _, _, data = prepare(spec)
        if "softmax" in only:
            softmax_step(data, args.batch, 32, reps=10 if args.quick else 30)
    if "synthetic" in only:
        parquet = OUT / f"synthetic_{args.rows}_{args.buyers}_{args.products}.parquet"
        if not parquet.exists():
            started = time.perf_counter()
            write_synthetic(parquet, args.rows, args.buyers, args.products)
            print(f"\nwrote {parquet.name} in {time.perf_counter() - started:.1f} s")
        spec = synthetic_spec(parquet.name, args.dim, args.batch, args.epochs)
        name = (
            f"Synthetic Zipf catalog ({args.rows:,} pairs, dim {args.dim}, batch {args.batch}, {args.epochs} epoch(s))"
        )
        bench_training(name, spec, 1, limit=True)
    if "blocks" in only:  # the first synthetic batch's distinct counts at the default sizes
        block_sizes(6837, 4363, args.dim, args.batch, reps=3 if args.quick else 7)
    if "whole" in only:
        whole_runs(args.whole_runs)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
