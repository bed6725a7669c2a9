"""Each buyer's orders of each product, with their times: what pair features and candidate sources read.

Pair features need more than aggregated pairs (when a product was first bought, how often, how recently), so
the log keeps one entry per distinct (buyer, product, time) order. `as_of(t)` gives the log a buyer had at
time t, which is how the ranker is trained on the training period alone. A log never changes, so its pair keys
and purchase history are computed once (a served recommender reads them on every request).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from tandem.data.history import PurchaseHistory


@dataclass(frozen=True)
class OrderLog:
    """Distinct orders sorted by (buyer, product, time); codes index the encoded buyers and the catalog."""

    buyer: np.ndarray  # [n] int64
    product: np.ndarray  # [n] int64
    time: np.ndarray  # [n] int64 seconds
    n_buyers: int
    n_products: int

    @classmethod
    def of(cls, buyer: np.ndarray, product: np.ndarray, time: np.ndarray, n_buyers: int, n_products: int) -> OrderLog:
        """A log from aligned arrays in any order; repeated (buyer, product, time) entries count once."""
        rows = np.stack([np.asarray(buyer, np.int64), np.asarray(product, np.int64), np.asarray(time, np.int64)], 1)
        rows = np.unique(rows, axis=0) if len(rows) else rows.reshape(0, 3)
        return cls(rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy(), n_buyers, n_products)

    def as_of(self, t: int) -> OrderLog:
        """The orders placed before time t."""
        kept = self.time < t
        return OrderLog(self.buyer[kept], self.product[kept], self.time[kept], self.n_buyers, self.n_products)

    @property
    def start(self) -> int:
        return int(self.time.min()) if len(self.time) else 0

    @property
    def end(self) -> int:
        """One second after the latest order."""
        return int(self.time.max()) + 1 if len(self.time) else 0

    def pair_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted distinct buyer * n_products + product keys, each order's position among them)."""
        return self._pair_keys

    @cached_property
    def _pair_keys(self) -> tuple[np.ndarray, np.ndarray]:
        keys = self.buyer * self.n_products + self.product
        return np.unique(keys, return_inverse=True)

    def history(self) -> PurchaseHistory:
        """The log as a purchase history: order counts and the latest order of every pair."""
        return self._history

    @cached_property
    def _history(self) -> PurchaseHistory:
        keys, inverse = self.pair_keys()
        orders = np.bincount(inverse, minlength=len(keys)).astype(np.int64)
        last = np.zeros(len(keys), np.int64)
        np.maximum.at(last, inverse, self.time)
        indptr = np.zeros(self.n_buyers + 1, dtype=np.int64)
        np.add.at(indptr, keys // self.n_products + 1, 1)
        return PurchaseHistory(
            indptr=np.cumsum(indptr),
            product=keys % self.n_products,
            orders=orders,
            last=last,
            n_products=self.n_products,
        )
