"""Each buyer's purchases in the training split, one entry per buyer–product pair: how many distinct orders
and when the latest one was.

An order is a buyer's lines at one timestamp (an invoice or a basket is written at one time). Aggregated
data carries the count of distinct timestamps of each pair's lines (`__orders`, counted before aggregation);
data without timestamps counts each row as an order, and the row position stands in for time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from tandem.data.prepare import ORDERS, TS

# Cells of the largest buyer × product grid looked up as one bool array (16 MiB).
DENSE_PAIRS = 1 << 24


@dataclass(frozen=True)
class PurchaseHistory:
    """Training purchases grouped by buyer (CSR): buyer b's pairs are entries indptr[b]:indptr[b + 1],
    ordered by product index. Never changed: the pair keys and the ranking are computed once."""

    indptr: np.ndarray  # [n_buyers + 1] int64
    product: np.ndarray  # [P] int64 product index of each pair
    orders: np.ndarray  # [P] int64 distinct orders of each pair
    last: np.ndarray  # [P] int64 time of each pair's latest order (seconds, or row position)
    n_products: int

    @property
    def n_buyers(self) -> int:
        return len(self.indptr) - 1

    @property
    def buyer(self) -> np.ndarray:
        """[P] buyer code of each pair."""
        return np.repeat(np.arange(self.n_buyers), np.diff(self.indptr))

    def bought(self, buyers: np.ndarray, products: np.ndarray) -> np.ndarray:
        """[n] bool: whether each (buyer, product) pair was bought in training.

        A small buyer × product grid (up to DENSE_PAIRS cells) is looked up directly, which is several times
        faster than the binary search over the pair keys that larger ones use."""
        keys = self._keys
        wanted = np.asarray(buyers, np.int64) * self.n_products + np.asarray(products, np.int64)
        if self.n_buyers * self.n_products <= DENSE_PAIRS:
            inside = (wanted >= 0) & (wanted < self.n_buyers * self.n_products)
            return self._grid[np.where(inside, wanted, 0)] & inside
        at = np.searchsorted(keys, wanted)
        return (at < len(keys)) & (keys[np.minimum(at, len(keys) - 1)] == wanted) if len(keys) else at < 0

    @cached_property
    def _grid(self) -> np.ndarray:
        """[n_buyers * n_products] bool, True at each pair key."""
        grid = np.zeros(self.n_buyers * self.n_products, dtype=bool)
        grid[self._keys] = True
        return grid

    @cached_property
    def _keys(self) -> np.ndarray:
        """[P] buyer * n_products + product, sorted: grouped by buyer, products ascending."""
        return self.buyer * self.n_products + self.product

    def ranked(self) -> tuple[np.ndarray, np.ndarray]:
        """Each buyer's products, most orders first, then the latest order first, then by product index:
        CSR (indptr, products) with the same indptr."""
        return self.indptr, self._ranked

    @cached_property
    def _ranked(self) -> np.ndarray:
        return self.product[np.lexsort((self.product, -self.last, -self.orders, self.buyer))]


def purchase_history(
    frame: pd.DataFrame,
    rows: np.ndarray,
    buyer_codes: np.ndarray,
    product_codes: np.ndarray,
    n_buyers: int,
    n_products: int,
) -> PurchaseHistory:
    """The purchase history of `rows` (the training rows) of an interactions frame.

    buyer_codes, product_codes: [len(frame)] each row's buyer code and product index.
    The [rows]-long arrays are computed in place and dropped once used: at 10M rows each is 80 MB.
    """
    rows = np.asarray(rows, dtype=np.int64)
    pair = np.asarray(buyer_codes, np.int64)[rows]
    pair *= n_products
    pair += np.asarray(product_codes, np.int64)[rows]
    time = frame[TS].to_numpy(np.int64)[rows] if TS in frame else rows
    # Sorted by pair, then time: each pair's rows are one run, its latest order last.
    order = np.lexsort((time, pair))
    pair = pair[order]
    time = time[order]
    weight = frame[ORDERS].to_numpy(np.int64)[rows[order]] if ORDERS in frame else None
    del order
    if weight is None:  # one order per distinct (pair, time); without timestamps each row is its own time
        weight = np.diff(pair, prepend=-1) != 0  # pair keys are never negative
        weight |= np.diff(time, prepend=0) != 0
    last_of_pair = np.diff(pair, append=-1) != 0
    keys = pair[last_of_pair]
    del pair
    orders = np.cumsum(weight, dtype=np.int64)[last_of_pair]
    del weight
    n_per_buyer = np.bincount(keys // n_products, minlength=n_buyers)
    return PurchaseHistory(
        indptr=np.concatenate([[0], np.cumsum(n_per_buyer)]),
        product=keys % n_products,
        orders=np.diff(orders, prepend=0),
        last=time[last_of_pair],
        n_products=n_products,
    )
