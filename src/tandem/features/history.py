"""A buyer's purchase history as a weighted bag over the product tower's embedding table (YouTube DNN's
watch-history tower): the values of one product column (the product id, or an attribute such as a category) that
the buyer bought in the training split, each weighted by its orders or by their recency.

The bag is stored per buyer in the product pipeline's index space, so serving builds it with numpy from the fitted
state alone, and the query tower pools the very rows the candidate tower embeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tandem.features.transforms import Transform, Vocabulary, _factorize

SECONDS_PER_DAY = 86_400.0
# Name suffix of a bag's weights beside its indices, in encoded dicts and in the query tower graph's inputs.
WEIGHTS_SUFFIX = "_weights"


class HistoryBag(Transform):
    """Each buyer's training purchases of `column` values as (shared table row, weight) pairs, heaviest first.

    fit(rows, vocabulary) reads the training rows' `buyer`, `value`, `orders` and `time` (Unix seconds); values
    the product vocabulary does not know are dropped (they have no row of their own). transform(buyer ids) returns
    int64 ``[n, length_]`` table rows and float32 ``[n, length_]`` weights, 0 padding; an unknown buyer's bag is
    empty. Weights: orders (``count``), or orders × 0.5 ** (age / half life) with age measured from the latest
    training time (``recency``).

    Attributes: buyers_ (canonical ids), indptr_, indices_, weights_ (the bags as CSR), cardinality_ (rows of the
    shared table), length_ (the longest bag), reference_time_ (Unix seconds recency is measured from).
    """

    kind = "history"
    output = "weighted_bag"
    params = ("column", "count_column", "weighting", "half_life_days", "max_items", "leave_out_target")
    state = ("buyers_", "indptr_", "indices_", "weights_", "cardinality_", "length_", "reference_time_")

    def __init__(
        self,
        name: str,
        *,
        column: str,
        count_column: str | None = None,
        weighting: str = "count",
        half_life_days: float = 30.0,
        max_items: int = 200,
        leave_out_target: str = "pair",
    ) -> None:
        super().__init__(name)
        self.column = column
        self.count_column = count_column
        self.weighting = weighting
        self.half_life_days = half_life_days
        self.max_items = max_items
        self.leave_out_target = leave_out_target

    def fit(self, rows: pd.DataFrame, vocabulary: Vocabulary) -> HistoryBag:  # type: ignore[override]
        """Learn every buyer's bag from the training rows; `vocabulary` is the shared product column's."""
        for attr in self.state:
            self.__dict__.pop(attr, None)
        times = rows["time"].to_numpy(np.float64)
        self.reference_time_ = float(np.nanmax(times)) if np.isfinite(times).any() else 0.0
        weights = self.row_weights(rows)
        index = vocabulary.transform(rows["value"])
        known = index >= vocabulary.oov_buckets
        codes, canonical = _factorize(rows["buyer"].reset_index(drop=True)[known])
        # Spellings of one id (42, 42.0, "42") share a canonical form, hence one bag.
        codes, buyers = pd.factorize(canonical[codes])
        pairs = (
            pd.DataFrame({"buyer": codes, "index": index[known], "weight": weights[known]})
            .groupby(["buyer", "index"], sort=True)["weight"]
            .sum()
            .reset_index()
            .sort_values(["buyer", "weight", "index"], ascending=[True, False, True], kind="stable")
        )
        pairs = pairs[pairs.groupby("buyer").cumcount() < self.max_items]
        counts = np.bincount(pairs["buyer"].to_numpy(), minlength=len(buyers))
        self.buyers_ = [str(b) for b in buyers]
        self.indptr_ = np.concatenate([[0], np.cumsum(counts)]).tolist()
        self.indices_ = pairs["index"].to_numpy(np.int64).tolist()
        self.weights_ = pairs["weight"].to_numpy(np.float32).tolist()
        self.cardinality_ = vocabulary.cardinality_
        self.length_ = int(counts.max()) if len(counts) else 0
        self._restore()
        return self

    def row_weights(self, rows: pd.DataFrame) -> np.ndarray:
        """Each row's weight: its orders, decayed by age under recency weighting. [n] float64."""
        orders = rows["orders"].to_numpy(np.float64)
        if self.weighting != "recency":
            return orders
        age_days = (self.reference_time_ - rows["time"].to_numpy(np.float64)) / SECONDS_PER_DAY
        return orders * np.power(0.5, np.clip(np.nan_to_num(age_days, nan=0.0), 0, None) / self.half_life_days)

    def own_contributions(self, rows: pd.DataFrame, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What each row's own purchase put into its buyer's bag, so training can take it out: the table row
        `index` [n] of the row's value and a weight [n] float32, the whole (buyer, product) pair's (`leave_out_target`
        'pair') or one order's, decayed at the row's time ('order').

        rows: as for `fit`, plus `product`, the row's product id.
        """
        if self.leave_out_target == "order":
            return np.asarray(index, dtype=np.int64), self.row_weights(rows.assign(orders=1.0)).astype(np.float32)
        weights = pd.Series(self.row_weights(rows))
        keys = [rows["buyer"].reset_index(drop=True), rows["product"].reset_index(drop=True)]
        pair_weights = weights.groupby(keys, sort=True).transform("sum")
        return np.asarray(index, dtype=np.int64), pair_weights.to_numpy(np.float32)

    def _restore(self) -> None:
        self._index = pd.Index(self.buyers_)
        n, length = len(self.buyers_), max(self.length_, 1)
        indptr = np.asarray(self.indptr_, dtype=np.int64)
        sizes = np.diff(indptr)
        # One padded row per buyer plus an empty last row for buyers the training split never saw.
        self._rows = np.zeros((n + 1, length), dtype=np.int64)
        self._weights = np.zeros((n + 1, length), dtype=np.float32)
        owner = np.repeat(np.arange(n), sizes)
        slot = np.arange(len(self.indices_)) - np.repeat(indptr[:-1], sizes)
        self._rows[owner, slot] = self.indices_
        self._weights[owner, slot] = self.weights_

    def _transform(self, values: np.ndarray | pd.Series) -> Any:
        codes, canonical = _factorize(values)
        row = self._index.get_indexer(canonical)
        row[row < 0] = len(self.buyers_)
        return self._rows[row][codes], self._weights[row][codes]
