"""From a prepared experiment to a fitted two-stage recommender: the order log in the encoded codes, the
product categories, the cutoff and the horizon."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tandem.data.prepare import BUYER, PRODUCT, TS, Interactions
from tandem.errors import Problem, SpecError
from tandem.recommend.orders import OrderLog
from tandem.recommend.two_stage import TwoStage
from tandem.spec import ExperimentSpec
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
        return TwoStage.fit(log, cutoff, horizon, categories(data, settings.category), settings, spec.training.seed)
    except ValueError as e:
        raise SpecError([Problem("recommend.horizon_days", str(e))]) from None
