"""ALS (the `implicit` library) on an experiment's own split, counted exactly as Tandem counts its models.

Why: on repeat-heavy data a factorisation trained in seconds is the reference an id-only two-tower model must
at least match (DESIGN.md, "Reference results"). This script loads the spec's data with the engine itself (same
filters, aggregation and split), fits ALS on the training buyer × product purchases, and scores its factors with
the engine's evaluation (`model_metrics`: full-catalog ranks, ties in the interaction's favour; repeat pairs
ranked in full lists, explore pairs in lists without the buyer's past products), so its figures sit beside
`metrics.json` of a `tandem train` on the same spec.

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/als_baseline.py examples/completejourney_multitask.yaml --factors 128 --iterations 20
"""

from __future__ import annotations

import argparse
import time

import implicit
import numpy as np
import scipy.sparse as sp
import threadpoolctl
import torch
from _common import machine_line

from tandem.data.prepare import load_interactions
from tandem.evaluation.evaluate import SplitPairs, model_metrics
from tandem.features.pipeline import fit_features
from tandem.spec import load_spec
from tandem.training.dataset import encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--factors", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--regularization", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--weights", choices=("binary", "orders"), default="binary", help="purchase matrix values")
    args = parser.parse_args()
    threadpoolctl.threadpool_limits(1, "blas")  # implicit's own threads do the work; BLAS threads fight them
    print(machine_line())
    spec = load_spec(args.spec, args.set)
    interactions = load_interactions(spec)
    data = encode(interactions, *fit_features(spec, interactions))
    history = data.history
    values = history.orders if args.weights == "orders" else np.ones(len(history.product))
    matrix = sp.csr_matrix(
        (values.astype(np.float32), history.product, history.indptr), shape=(history.n_buyers, history.n_products)
    )
    model = implicit.als.AlternatingLeastSquares(
        factors=args.factors,
        iterations=args.iterations,
        regularization=args.regularization,
        alpha=args.alpha,
        random_state=0,
    )
    started = time.perf_counter()
    model.fit(matrix, show_progress=False)
    seconds = time.perf_counter() - started
    users, items = (np.asarray(f, dtype=np.float32) for f in (model.user_factors, model.item_factors))
    queries = torch.from_numpy(users[data.query_buyer])  # each query row scores as its buyer
    pairs = SplitPairs.of(data, data.test)
    metrics = model_metrics(queries, torch.from_numpy(items), data, pairs, spec.evaluation, breakdown=True)
    print(
        f"ALS ({args.factors} factors, {args.iterations} iterations, regularization {args.regularization}, "
        f"alpha {args.alpha}, {args.weights}; implicit {implicit.__version__}): fitted in {seconds:.1f} s"
    )
    print("| | R@10 | R@100 | NDCG@10 | NDCG@100 |")
    print("|---|---|---|---|---|")
    for subset in ("", "repeat_", "explore_"):
        cells = [
            metrics.get(f"{subset}{m}_at_{k}")
            for m, k in (("recall", 10), ("recall", 100), ("ndcg", 10), ("ndcg", 100))
        ]
        print(
            f"| {subset.rstrip('_') or 'all'} | " + " | ".join("—" if c is None else f"{c:.4f}" for c in cells) + " |"
        )


if __name__ == "__main__":
    main()
