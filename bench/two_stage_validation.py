"""The two-stage recommend measured on a validation split inside the training period, to choose its settings
without looking at the test period.

The spec's time split is moved back by one horizon: the recommender is trained on the orders before
`cutoff - horizon` and judged on the distinct buyer–product pairs bought in [cutoff - horizon, cutoff), beside
buy-again on the same pairs. Test-period lines are never read into the lists or the labels.

    python bench/two_stage_validation.py examples/completejourney_best.yaml \
        --set recommend.ranker_loss=bce --set recommend.windows=3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import machine_line

from tandem.data.prepare import load_interactions
from tandem.evaluation.baselines import Baselines
from tandem.features.pipeline import fit_features
from tandem.recommend.build import categories, cutoff_and_horizon, order_log, train_two_stage
from tandem.spec import load_spec
from tandem.training.dataset import encode

KS = (10, 100)


def recalls(lists: np.ndarray, list_of: np.ndarray, products: np.ndarray, kept: np.ndarray) -> dict[int, float]:
    """Share of the kept pairs whose product is in its buyer's top K, for each K."""
    rows, wanted = list_of[kept], products[kept]
    rank = np.where(lists[rows] == wanted[:, None], np.arange(lists.shape[1]), lists.shape[1]).min(axis=1)
    return {k: float((rank < k).mean()) if len(rank) else 0.0 for k in KS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="FIELD=VALUE")
    args = parser.parse_args()
    print(machine_line())
    spec = load_spec(args.spec, args.overrides)
    if spec.recommend is None:
        parser.error("the spec has no recommend section")
    started = time.perf_counter()
    interactions = load_interactions(spec)
    data = encode(interactions, *fit_features(spec, interactions))
    cutoff, horizon = cutoff_and_horizon(spec, interactions)
    log = order_log(interactions, data)
    at = int(cutoff - horizon)
    inside = log.time >= at
    keys = np.unique(log.buyer[inside] * log.n_products + log.product[inside])
    before = log.as_of(at)
    pair_buyer, pair_product = keys // log.n_products, keys % log.n_products
    history = before.history()
    repeat = history.bought(pair_buyer, pair_product)
    buyers, list_of = np.unique(pair_buyer, return_inverse=True)
    k = max(KS)
    model = train_two_stage(before, at, horizon, categories(data, spec.recommend.category), spec.recommend, 42)
    baselines = Baselines(history, np.bincount(history.product, minlength=log.n_products))
    rows = {
        "two-stage": (model.lists(buyers, k), model.lists(buyers, k, explore=True)),
        "buy_again": (baselines.lists("buy_again", buyers, k), baselines.lists("buy_again", buyers, k, explore=True)),
    }
    print(f"validation pairs {len(keys):,} ({repeat.mean():.1%} re-orders), buyers {len(buyers):,}")
    print("| list | all R@10 | all R@100 | repeat R@10 | repeat R@100 | explore R@100 |")
    print("|---|---|---|---|---|---|")
    every = np.ones(len(keys), bool)
    for name, (full, explore) in rows.items():
        a, r, e = (
            recalls(full, list_of, pair_product, every),
            recalls(full, list_of, pair_product, repeat),
            recalls(explore, list_of, pair_product, ~repeat),
        )
        print(f"| {name} | {a[10]:.4f} | {a[100]:.4f} | {r[10]:.4f} | {r[100]:.4f} | {e[100]:.4f} |")
    model_all = recalls(rows["two-stage"][0], list_of, pair_product, every)
    base_all = recalls(rows["buy_again"][0], list_of, pair_product, every)
    lifts = ", ".join(f"R@{k} ×{model_all[k] / max(base_all[k], 1e-12):.3f}" for k in KS)
    print(f"lift over buy-again: {lifts}; {time.perf_counter() - started:.0f} s; {machine_line()}")


if __name__ == "__main__":
    main()
