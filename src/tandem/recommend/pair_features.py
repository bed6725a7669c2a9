"""Buyer–product pair features for the ranker, from the order log alone (numpy, no torch: serving runs the
same code as training).

Times are in days and every scale is relative to the horizon (the span the lists are for): decays use
horizon / 4 and the horizon itself, and recent popularity counts the last horizon. Counts enter as logs
and popularity as the share of active buyers, so a model trained on a shorter log reads a longer one the
same way.

`PairStats.of` computes everything the features read from the whole log once (pair, buyer, category and
product tables); `PairStats.features` only looks the requested pairs up, so a served recommender answers one
buyer without passing over the log again, with the very numbers a whole evaluation computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tandem.recommend.orders import OrderLog

DAY = 86_400.0
HISTORY_FEATURES = (
    "log_orders",
    "order_share",
    "log_days_since",
    "log_days_since_first",
    "has_interval",
    "log_interval",
    "log_since_over_interval",
    "log_expected_in_horizon",
    "log_decay_short",
    "log_decay_long",
    "log_orders_in_horizon",
    "share_in_horizon",
    "category_share",
    "product_repeat_rate",
    "log_popularity",
    "log_popularity_recent",
    "product_has_interval",
    "log_product_interval",
    "buyer_log_orders",
    "buyer_log_products",
    "buyer_log_days_since",
    "buyer_log_orders_in_horizon",
    "buyer_log_rate",
)


def _lookup(keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in sorted `keys`, found) of each wanted key."""
    at = np.searchsorted(keys, wanted)
    at = np.minimum(at, max(len(keys) - 1, 0))
    found = (keys[at] == wanted) if len(keys) else np.zeros(len(wanted), bool)
    return at, found


@dataclass(frozen=True)
class PairStats:
    """The log's aggregates as of `as_of` for a horizon: per pair (sorted keys), per buyer, per buyer and
    category, and per product."""

    t: float  # as_of, seconds
    start: float  # the first order's time (as_of for an empty log)
    h: float  # the horizon in days
    n_products: int
    keys: np.ndarray  # [P] sorted buyer * n_products + product
    n: np.ndarray  # [P] orders of each pair
    first: np.ndarray
    last: np.ndarray
    n_h: np.ndarray  # [P] orders in the last horizon
    decay_short: np.ndarray
    decay_long: np.ndarray
    interval: np.ndarray  # [P] mean days between a pair's orders (0 for one order)
    b_orders: np.ndarray  # [n_buyers] distinct order times
    b_recent: np.ndarray
    b_last: np.ndarray
    b_first: np.ndarray
    b_products: np.ndarray
    buyer_lines: np.ndarray
    category: np.ndarray  # [n_products] int64 code, -1 when unknown
    n_cat: int
    cat_keys: np.ndarray  # sorted buyer * n_cat + category + 1
    cat_orders: np.ndarray  # orders of the buyer in the category
    active: int
    active_recent: int
    p_buyers: np.ndarray  # [n_products]
    p_repeat: np.ndarray
    p_recent: np.ndarray
    p_typical: np.ndarray  # median re-order interval, nan without re-orders

    @classmethod
    def of(cls, log: OrderLog, as_of: int, horizon: float, category: np.ndarray) -> PairStats:
        """The aggregates of the orders in `log` (all placed before `as_of`). horizon: seconds; category:
        [n_products] int code per product, -1 when unknown."""
        t = float(as_of)
        start = float(log.start) if len(log.time) else t
        age = (t - log.time) / DAY
        h = horizon / DAY

        keys, inverse = log.pair_keys()
        n = np.bincount(inverse, minlength=len(keys)).astype(np.float64)
        bounds = np.flatnonzero(np.diff(inverse, prepend=-1))  # the log is sorted by pair, then time
        first = log.time[bounds].astype(np.float64)
        last = log.time[np.r_[bounds[1:] - 1, len(inverse) - 1]].astype(np.float64) if len(keys) else first
        recent = age < h
        n_h = np.bincount(inverse, weights=recent, minlength=len(keys))
        decay_short = np.bincount(inverse, weights=np.exp(-age / (h / 4)), minlength=len(keys))
        decay_long = np.bincount(inverse, weights=np.exp(-age / h), minlength=len(keys))
        interval = np.where(n > 1, (last - first) / DAY / np.maximum(n - 1, 1), 0.0)
        pair_buyer, pair_product = keys // log.n_products, keys % log.n_products

        # Buyers: distinct order times, products, the latest order and the recent ones.
        order_keys = np.unique(log.buyer * (2**31) + (log.time - log.start if len(log.time) else log.time))
        order_buyer = order_keys // (2**31)
        order_time = order_keys % (2**31) + (log.start if len(log.time) else 0)
        b_orders = np.bincount(order_buyer, minlength=log.n_buyers).astype(np.float64)
        b_recent = np.bincount(order_buyer, weights=(t - order_time) / DAY < h, minlength=log.n_buyers)
        b_last = np.full(log.n_buyers, start)
        b_first = np.full(log.n_buyers, t)
        np.maximum.at(b_last, order_buyer, order_time)
        np.minimum.at(b_first, order_buyer, order_time)
        b_products = np.bincount(pair_buyer, minlength=log.n_buyers).astype(np.float64)

        # The buyer's orders in each category.
        cat = np.asarray(category, np.int64)
        n_cat = int(cat.max()) + 2 if len(cat) else 1
        cat_orders = pd.Series(n).groupby(pair_buyer * n_cat + (cat[pair_product] + 1)).sum()
        buyer_lines = np.bincount(pair_buyer, weights=n, minlength=log.n_buyers)

        # Products: buyers, repeat buyers, recent buyers, the typical re-order interval.
        typical = pd.Series(interval[n > 1]).groupby(pair_product[n > 1]).median()
        p_typical = np.full(log.n_products, np.nan)
        p_typical[typical.index.to_numpy()] = typical.to_numpy()
        return cls(
            t=t,
            start=start,
            h=h,
            n_products=log.n_products,
            keys=keys,
            n=n,
            first=first,
            last=last,
            n_h=n_h,
            decay_short=decay_short,
            decay_long=decay_long,
            interval=interval,
            b_orders=b_orders,
            b_recent=b_recent,
            b_last=b_last,
            b_first=b_first,
            b_products=b_products,
            buyer_lines=buyer_lines,
            category=cat,
            n_cat=n_cat,
            cat_keys=cat_orders.index.to_numpy(),
            cat_orders=cat_orders.to_numpy(),
            active=max(1, int((b_orders > 0).sum())),
            active_recent=max(1, int((b_recent > 0).sum())),
            p_buyers=np.bincount(pair_product, minlength=log.n_products).astype(np.float64),
            p_repeat=np.bincount(pair_product, weights=n > 1, minlength=log.n_products),
            p_recent=np.bincount(pair_product, weights=n_h > 0, minlength=log.n_products),
            p_typical=p_typical,
        )

    def features(self, buyers: np.ndarray, products: np.ndarray) -> np.ndarray:
        """[n, len(HISTORY_FEATURES)] float32 features of the pairs (buyers[i], products[i])."""
        buyers, products = np.asarray(buyers, np.int64), np.asarray(products, np.int64)
        out = np.zeros((len(buyers), len(HISTORY_FEATURES)), np.float32)
        col = {name: i for i, name in enumerate(HISTORY_FEATURES)}
        t, start, h = self.t, self.start, self.h

        at, found = _lookup(self.keys, buyers * self.n_products + products)
        pn = np.where(found, self.n[at], 0.0)
        since = np.where(found, (t - self.last[at]) / DAY, (t - start) / DAY)
        p_interval = np.where(found & (pn > 1), self.interval[at], 0.0)
        out[:, col["log_orders"]] = np.log1p(pn)
        out[:, col["log_days_since"]] = np.log1p(since)
        out[:, col["log_days_since_first"]] = np.log1p(np.where(found, (t - self.first[at]) / DAY, 0.0))
        out[:, col["has_interval"]] = pn > 1
        out[:, col["log_interval"]] = np.log1p(p_interval)
        out[:, col["log_since_over_interval"]] = np.where(pn > 1, np.log((since + 1) / (p_interval + 1)), 0.0)
        out[:, col["log_expected_in_horizon"]] = np.where(pn > 1, np.log1p(h / (p_interval + 1)), 0.0)
        out[:, col["log_decay_short"]] = np.log1p(np.where(found, self.decay_short[at], 0.0))
        out[:, col["log_decay_long"]] = np.log1p(np.where(found, self.decay_long[at], 0.0))
        pn_h = np.where(found, self.n_h[at], 0.0)
        out[:, col["log_orders_in_horizon"]] = np.log1p(pn_h)

        b_orders = self.b_orders
        out[:, col["order_share"]] = pn / np.maximum(b_orders[buyers], 1)
        out[:, col["share_in_horizon"]] = pn_h / np.maximum(self.b_recent[buyers], 1)
        out[:, col["buyer_log_orders"]] = np.log1p(b_orders[buyers])
        out[:, col["buyer_log_products"]] = np.log1p(self.b_products[buyers])
        out[:, col["buyer_log_days_since"]] = np.log1p((t - self.b_last[buyers]) / DAY)
        out[:, col["buyer_log_orders_in_horizon"]] = np.log1p(self.b_recent[buyers])
        out[:, col["buyer_log_rate"]] = np.log1p(b_orders[buyers] / np.maximum((t - self.b_first[buyers]) / DAY, 1))

        # The buyer's share of orders in the product's category.
        cat = self.category
        pos, hit = _lookup(self.cat_keys, buyers * self.n_cat + (cat[products] + 1))
        known = hit & (cat[products] >= 0)
        out[:, col["category_share"]] = np.where(
            known, self.cat_orders[pos] / np.maximum(self.buyer_lines[buyers], 1), 0.0
        )

        p_buyers = self.p_buyers
        out[:, col["product_repeat_rate"]] = (self.p_repeat[products] + 1) / (p_buyers[products] + 10)
        out[:, col["log_popularity"]] = np.log(p_buyers[products] / self.active + 1e-5)
        out[:, col["log_popularity_recent"]] = np.log(self.p_recent[products] / self.active_recent + 1e-5)
        out[:, col["product_has_interval"]] = ~np.isnan(self.p_typical[products])
        out[:, col["log_product_interval"]] = np.log1p(np.nan_to_num(self.p_typical[products], nan=0.0))
        return out


def pair_features(
    log: OrderLog, as_of: int, horizon: float, buyers: np.ndarray, products: np.ndarray, category: np.ndarray
) -> np.ndarray:
    """[n, len(HISTORY_FEATURES)] float32 features of the pairs (buyers[i], products[i]) from the orders in
    `log` (all placed before `as_of`). horizon: seconds; category: [n_products] int code per product, -1 when
    unknown."""
    return PairStats.of(log, as_of, horizon, category).features(buyers, products)
