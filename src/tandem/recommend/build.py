"""From a prepared experiment to a fitted two-stage recommender: the order log in the encoded codes, the
product categories, the cutoff and the horizon, then the ranker trained on windows of the training period.

Training stays inside the training period: for each window w = 1..windows, the features come from the orders
before t_w = as_of - w × horizon and the labels are the pairs bought in [t_w, t_w + horizon). The lists are
then built from every order before `as_of`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tandem.data.prepare import BUYER, PRODUCT, TS, Interactions
from tandem.errors import Problem, SpecError
from tandem.evaluation.ease_fit import fit_ease
from tandem.recommend.candidates import Neighbours
from tandem.recommend.orders import OrderLog
from tandem.recommend.pair_features import PairStats
from tandem.recommend.ranker import train_ranker
from tandem.recommend.ranker_graph import Ranker
from tandem.recommend.two_stage import TwoStage, candidate_table
from tandem.spec import ExperimentSpec, RecommendSpec
from tandem.training.dataset import EncodedData


def order_log(interactions: Interactions, data: EncodedData) -> OrderLog:
    """The training orders (aggregated data: every line before the cutoff; else the training rows), restricted
    to the training pairs (so that a sampled experiment stays sampled)."""
    train = interactions.frame.iloc[interactions.train]
    lines = interactions.orders if interactions.orders is not None else train[[BUYER, PRODUCT, TS]]
    buyers = pd.Index(data.buyer_ids).get_indexer(lines[BUYER])
    products = pd.Index(data.product_ids).get_indexer(lines[PRODUCT])
    log = OrderLog.of(buyers, products, lines[TS].to_numpy(np.int64), len(data.buyer_ids), len(data.product_ids))
    history = data.history
    kept = (log.buyer >= 0) & (log.product >= 0)
    kept[kept] = history.bought(log.buyer[kept], log.product[kept])
    return OrderLog(log.buyer[kept], log.product[kept], log.time[kept], log.n_buyers, log.n_products)


def categories(data: EncodedData, column: str | None) -> np.ndarray:
    """[n_products] code of each product's category (-1 when missing or when no column is named)."""
    if column is None:
        return np.full(len(data.product_ids), -1, np.int64)
    codes, _ = pd.factorize(data.catalog_frame[column])
    return codes.astype(np.int64)


def cutoff_and_horizon(spec: ExperimentSpec, interactions: Interactions) -> tuple[int, float]:
    """The time the lists are made at (the split's cutoff) and the span they are for (recommend.horizon_days,
    else the test period's length)."""
    test_ts = interactions.frame[TS].to_numpy(np.int64)[interactions.test]
    cutoff = interactions.report.get("cutoff")
    cutoff = int(cutoff) if cutoff is not None else int(test_ts.min())
    days = spec.recommend.horizon_days if spec.recommend is not None else None
    horizon = days * 86_400.0 if days is not None else float(max(test_ts.max() - cutoff + 1, 86_400))
    return cutoff, horizon


def _neighbours(log: OrderLog, settings: RecommendSpec) -> Neighbours:
    """EASE over the log's most bought products, each product's strongest neighbours kept."""
    history = log.history()
    counts = np.bincount(history.product, minlength=log.n_products)
    ease = fit_ease(history, counts, settings.ease_lambda, settings.ease_products)
    return Neighbours.of(ease, log.n_products, settings.ease_neighbours)


def train_two_stage(
    log: OrderLog, as_of: int, horizon: float, category: np.ndarray, settings: RecommendSpec, seed: int
) -> TwoStage:
    """Train the rankers on windows of the log before `as_of` and build the recommender at `as_of`: one over
    every candidate, and one over the candidates the buyer had not bought, for the lists of new products (a
    list without the buyer's history asks a different question: what, of what it never bought, it buys next).
    Raises ValueError when the log is shorter than one horizon."""
    rng = np.random.default_rng(seed)
    parts, report = [], {"windows": []}
    for w in range(1, settings.windows + 1):
        start = as_of - w * horizon
        if start <= log.start:
            break
        before = log.as_of(int(start))
        inside = (log.time >= start) & (log.time < start + horizon)
        label_keys = np.unique(log.buyer[inside] * log.n_products + log.product[inside])
        buyers = np.unique(label_keys // log.n_products)
        if len(buyers) > settings.max_train_buyers:
            buyers = np.sort(rng.choice(buyers, settings.max_train_buyers, replace=False))
        stats = PairStats.of(before, int(start), horizon, category)
        table = candidate_table(before, _neighbours(before, settings), stats, buyers, settings)
        rows, products, features = table
        keys = buyers[rows] * log.n_products + products
        labels = np.isin(keys, label_keys).astype(np.float32)
        unseen = ~before.history().bought(buyers[rows], products)
        parts.append((features, labels, rows + (w - 1) * log.n_buyers, unseen))
        covered = float(labels.sum() / max(1, np.isin(label_keys // log.n_products, buyers).sum()))
        report["windows"].append(
            {"start": int(start), "buyers": len(buyers), "candidates": len(rows), "label_coverage": covered}
        )
    if not parts:
        raise ValueError("the training period is shorter than one horizon: the ranker has nothing to learn from")
    features, labels, groups, unseen = (np.concatenate(p) for p in zip(*parts, strict=True))
    graph, report["losses"] = _ranker(features, labels, groups, settings.ranker_loss, settings, seed)
    ranker = explore_ranker = Ranker(graph)
    if unseen.any():  # else no candidate is new to its buyer: the one ranker orders the (popular) fill alone
        unbought = features[unseen], labels[unseen], groups[unseen]
        graph, report["explore_losses"] = _ranker(*unbought, settings.explore_ranker_loss, settings, seed)
        explore_ranker = Ranker(graph)
    return TwoStage(settings, log, as_of, horizon, category, _neighbours(log, settings), ranker, explore_ranker, report)


def _ranker(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, loss: str, settings: RecommendSpec, seed: int
) -> tuple[bytes, list[float]]:
    """A ranker's graph and losses, trained with `loss` and the settings' layers and schedule."""
    return train_ranker(
        features,
        labels,
        groups,
        layers=settings.ranker_layers,
        loss=loss,
        epochs=settings.ranker_epochs,
        learning_rate=settings.ranker_learning_rate,
        groups_per_batch=settings.buyers_per_batch,
        seed=seed,
        members=settings.rankers,
    )


def fit_two_stage(spec: ExperimentSpec, interactions: Interactions, data: EncodedData) -> TwoStage:
    """Train the spec's two-stage recommender on the training period. Raises SpecError when the data cannot
    support one (no time split, or a training period shorter than the horizon)."""
    settings = spec.recommend
    if settings is None or spec.data.split.kind != "time" or TS not in interactions.frame:
        raise SpecError([Problem("recommend", "a two-stage recommend needs timestamps and a time split")])
    if settings.category is not None and settings.category not in data.catalog_frame:
        known = ", ".join(c for c in data.catalog_frame.columns if not c.startswith("__"))
        raise SpecError(
            [Problem("recommend.category", f"'{settings.category}' is not a product feature column (known: {known})")]
        )
    cutoff, horizon = cutoff_and_horizon(spec, interactions)
    log = order_log(interactions, data)
    try:
        return train_two_stage(log, cutoff, horizon, categories(data, settings.category), settings, spec.training.seed)
    except ValueError as e:
        raise SpecError([Problem("recommend.horizon_days", str(e))]) from None
