"""Pair features against an independent pandas computation on a random order log."""

import numpy as np
import pandas as pd
import pytest

from tandem.recommend.orders import OrderLog
from tandem.recommend.pair_features import HISTORY_FEATURES, pair_features

DAY = 86_400


@pytest.fixture
def orders() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame(
        {"b": rng.integers(0, 12, n), "p": rng.integers(0, 15, n), "t": rng.integers(0, 60, n) * DAY + 3600}
    )
    return frame.drop_duplicates().reset_index(drop=True)


def test_pair_features_match_pandas(orders: pd.DataFrame) -> None:
    n_buyers, n_products, as_of, horizon = 14, 16, 61 * DAY, 20.0 * DAY
    category = np.arange(n_products) % 4
    category[5] = -1
    log = OrderLog.of(orders.b, orders.p, orders.t, n_buyers, n_products)
    buyers = np.repeat(np.arange(n_buyers), n_products)
    products = np.tile(np.arange(n_products), n_buyers)
    got = pd.DataFrame(pair_features(log, as_of, horizon, buyers, products, category), columns=HISTORY_FEATURES)
    got["b"], got["p"] = buyers, products

    pairs = orders.groupby(["b", "p"]).t.agg(["count", "min", "max"]).reset_index()
    pairs["recent"] = (
        orders[orders.t >= as_of - horizon]
        .groupby(["b", "p"])
        .size()
        .reindex(pd.MultiIndex.from_frame(pairs[["b", "p"]]))
        .fillna(0)
        .to_numpy()
    )
    pairs["decay"] = orders.assign(w=np.exp(-(as_of - orders.t) / horizon)).groupby(["b", "p"]).w.sum().to_numpy()
    buyer_orders = orders.groupby("b").t.nunique()
    lines = orders.assign(c=category[orders.p])
    cat_share = lines.groupby(["b", "c"]).size() / lines.groupby("b").size()
    merged = got.merge(pairs, on=["b", "p"], how="left")
    bought = merged["count"].notna()
    m = merged[bought]
    assert np.allclose(m.log_orders, np.log1p(m["count"]), atol=1e-6)
    assert np.allclose(m.order_share, m["count"] / buyer_orders[m.b].to_numpy(), atol=1e-6)
    assert np.allclose(m.log_days_since, np.log1p((as_of - m["max"]) / DAY), atol=1e-5)
    interval = np.where(m["count"] > 1, (m["max"] - m["min"]) / DAY / (m["count"] - 1).clip(lower=1), 0)
    assert np.allclose(m.log_interval, np.log1p(interval), atol=1e-5)
    assert np.allclose(m.log_decay_long, np.log1p(m.decay), atol=1e-5)
    assert np.allclose(m.log_orders_in_horizon, np.log1p(m.recent), atol=1e-6)
    unseen = merged[~bought]
    assert (unseen.log_orders == 0).all() and (unseen.has_interval == 0).all()
    start = orders.t.min()
    assert np.allclose(unseen.log_days_since, np.log1p((as_of - start) / DAY), atol=1e-5)
    expected_cat = [
        cat_share.get((b, category[p]), 0.0) if category[p] >= 0 else 0.0
        for b, p in zip(merged.b, merged.p, strict=True)
    ]
    assert np.allclose(merged.category_share, expected_cat, atol=1e-6)
    per_product = pairs.groupby("p").agg(buyers=("b", "size"), repeat=("count", lambda c: (c > 1).sum()))
    per_product = per_product.reindex(range(n_products), fill_value=0)
    active = orders.b.nunique()
    assert np.allclose(
        merged.product_repeat_rate,
        (per_product.repeat[merged.p].to_numpy() + 1) / (per_product.buyers[merged.p].to_numpy() + 10),
        atol=1e-6,
    )
    assert np.allclose(
        merged.log_popularity, np.log(per_product.buyers[merged.p].to_numpy() / active + 1e-5), atol=1e-5
    )
    assert np.allclose(
        merged.buyer_log_orders, np.log1p(buyer_orders.reindex(merged.b).fillna(0).to_numpy()), atol=1e-6
    )
    assert (merged[merged.b >= 12].buyer_log_orders == 0).all()  # buyers without orders
