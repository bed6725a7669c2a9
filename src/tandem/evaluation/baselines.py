"""Strong baselines, scored as per-buyer ranked lists from the training split alone.

- popularity: every buyer gets the products most bought in training (ties by catalog index);
- buy_again: the buyer's own past products, most orders first, then the latest order first, then popularity;
- ease: EASE (Steck, 2019), a closed-form item–item model B = I − P / diag(P), P = (XᵀX + λI)⁻¹, over the
  most bought products (X: binary buyer × product purchases in training), then popularity;
- buy_again_ease: the buyer's past products as in buy_again, then EASE scores of the products not bought yet,
  then popularity.

An explore list removes the buyer's past products (for buy_again that leaves popularity). The pieces are
usable on their own as candidate sources: `history_lists`, `ease_scores`, `popularity_order` and
`merge_lists`. Everything here is numpy, so serving builds the same lists; fitting EASE (torch) is
:mod:`tandem.evaluation.ease_fit`.

EASE size: inverting the N × N Gram matrix costs about N³ and N² × 8 bytes a few times over; 6,000 products
take about 10 s and under 1 GiB on two cores, so `ease_products` defaults to that, and products outside the
N most bought get EASE scores of nothing (popularity fills after them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tandem.data.history import PurchaseHistory

# Elements of the [buyers, candidates] working arrays held at once (16 M int64 = 128 MiB).
LIST_BLOCK_ELEMENTS = 1 << 24


def popularity_order(counts: np.ndarray) -> np.ndarray:
    """[Nc] product indices, most bought first; ties by product index."""
    return np.argsort(-np.asarray(counts), kind="stable").astype(np.int64)


def history_lists(history: PurchaseHistory, buyers: np.ndarray, k: int) -> np.ndarray:
    """[len(buyers), k] each buyer's past products, most orders first, then the latest order first, then by
    product index; -1 after the last one."""
    indptr, ranked = history.ranked()
    buyers = np.asarray(buyers, dtype=np.int64)
    lengths = np.minimum(np.diff(indptr)[buyers], k)
    out = np.full((len(buyers), k), -1, dtype=np.int64)
    rows = np.repeat(np.arange(len(buyers)), lengths)
    columns = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, columns] = ranked[indptr[buyers][rows] + columns]
    return out


@dataclass(frozen=True)
class Ease:
    """EASE item–item weights over the most bought products."""

    products: np.ndarray  # [N] product index of each column, most bought first
    weights: np.ndarray  # [N, N] float32, zero diagonal: score of column j = sum of weights[i, j] over bought i


def ease_scores(ease: Ease, history: PurchaseHistory, buyers: np.ndarray, *, explore: bool = False) -> np.ndarray:
    """[len(buyers), N] EASE scores of the columns `ease.products` (float32; 0 for buyers without history).

    explore: the buyer's past products score -inf."""
    buyers = np.asarray(buyers, dtype=np.int64)
    rows, cols = purchases(history, ease.products, buyers)
    x = np.zeros((len(buyers), len(ease.products)), dtype=np.float32)
    x[rows, cols] = 1.0
    scores = x @ ease.weights
    if explore:
        scores[rows, cols] = -np.inf
    return scores


def purchases(history: PurchaseHistory, columns: np.ndarray, buyers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each purchase of `buyers` (rows in their order) among `columns`' products."""
    position = np.full(history.n_products, -1, dtype=np.int64)
    position[columns] = np.arange(len(columns))
    starts = history.indptr[buyers]
    lengths = history.indptr[buyers + 1] - starts
    rows = np.repeat(np.arange(len(buyers)), lengths)
    entries = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())
    cols = position[history.product[entries]]
    kept = cols >= 0
    return rows[kept], cols[kept]


def top_columns(scores: np.ndarray, products: np.ndarray, k: int) -> np.ndarray:
    """[rows, k] products of the k highest scores per row (ties: the earlier column), -1 for -inf scores.

    scores: float32 without NaN. Sorting one distinct int64 key per entry (the score's order in the high half, the
    column in the low half) gives the stable order of a float sort at the cost of numpy's fast unstable sort."""
    bits = (scores + np.float32(0)).view(np.int32)  # + 0 makes -0.0 equal to 0.0, as the float order has it
    ascending = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))  # an int32 in the order of the float
    keys = ((~ascending).astype(np.int64) << 32) | np.arange(scores.shape[1], dtype=np.int64)
    if 0 < k < keys.shape[1]:  # the keys are distinct: the k smallest, then sorted, are the full sort's first k
        part = np.argpartition(keys, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(part, np.argsort(np.take_along_axis(keys, part, axis=1), axis=1), axis=1)
    else:
        best = np.argsort(keys, axis=1)[:, :k]
    out = products[best]
    out[np.take_along_axis(scores, best, axis=1) == -np.inf] = -1
    return out


def merge_lists(parts: list[np.ndarray], k: int, excluded: np.ndarray | None = None) -> np.ndarray:
    """[rows, k] the first k distinct products of each row across `parts` (each [rows, width]) taken in order,
    skipping -1 and products `excluded` marks; -1 where fewer are left.

    excluded: optional bool [rows, sum of widths] aligned with the concatenated parts.
    """
    candidates = np.concatenate(parts, axis=1)
    valid = candidates >= 0
    if excluded is not None:
        valid &= ~excluded
    position = np.arange(candidates.shape[1], dtype=np.int64)
    by_value = np.argsort(candidates * len(position) + position, axis=1)  # a repeat sorts after its first occurrence
    values = np.take_along_axis(candidates, by_value, axis=1)
    repeat = np.zeros_like(valid)
    np.put_along_axis(repeat, by_value[:, 1:], values[:, 1:] == values[:, :-1], axis=1)
    valid &= ~repeat
    keep = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(candidates, keep, axis=1)
    out[~np.take_along_axis(valid, keep, axis=1)] = -1
    if out.shape[1] < k:
        out = np.pad(out, ((0, 0), (0, k - out.shape[1])), constant_values=-1)
    return out


class Baselines:
    """The four baselines on one training split: `lists(name, buyers, k)` gives each buyer's top k.

    history: the training purchases; counts: [Nc] training rows per product (the popularity);
    ease: the fitted EASE weights, or a function that fits them (:func:`tandem.evaluation.ease_fit.fit_ease`),
    called on first use, so that popularity and buy-again lists need no torch; None when no EASE list is asked.
    """

    names = ("popularity", "buy_again", "ease", "buy_again_ease")
    # Without the buyer's past products, buy-again is popularity and buy-again-then-EASE is EASE.
    explore_alike = {"buy_again": "popularity", "buy_again_ease": "ease"}

    def __init__(
        self, history: PurchaseHistory, counts: np.ndarray, ease: Ease | Callable[[], Ease] | None = None
    ) -> None:
        self.history = history
        self.counts = np.asarray(counts)
        self.popular = popularity_order(self.counts)
        self._ease = ease

    @property
    def ease(self) -> Ease:
        if self._ease is None:
            raise ValueError("these baselines were made without EASE weights")
        if not isinstance(self._ease, Ease):
            self._ease = self._ease()
        return self._ease

    def lists(self, name: str, buyers: np.ndarray, k: int, *, explore: bool = False) -> np.ndarray:
        """[len(buyers), k] product indices, best first (-1 where the catalog runs out).

        explore: leave out each buyer's past products. Raises ValueError for an unknown name.
        """
        if name not in self.names:
            raise ValueError(f"unknown baseline '{name}'; expected one of {', '.join(self.names)}")
        buyers = np.asarray(buyers, dtype=np.int64)
        k = min(k, len(self.counts))
        out = np.empty((len(buyers), k), dtype=np.int64)
        seen = np.diff(self.history.indptr)[buyers] if len(buyers) else np.zeros(0, np.int64)
        width = 3 * k + (int(seen.max()) if explore and len(seen) else 0)
        step = max(1, LIST_BLOCK_ELEMENTS // max(width, len(self.ease.products) if "ease" in name else 1))
        for start in range(0, len(buyers), step):
            block = buyers[start : start + step]
            out[start : start + step] = self._block(name, block, k, explore)
        return out

    def _block(self, name: str, buyers: np.ndarray, k: int, explore: bool) -> np.ndarray:
        parts = []
        if name in ("buy_again", "buy_again_ease") and not explore:
            parts.append(history_lists(self.history, buyers, k))
        if name in ("ease", "buy_again_ease"):
            scores = ease_scores(self.ease, self.history, buyers, explore=explore)
            parts.append(top_columns(scores, self.ease.products, k))
        taken = sum(p.shape[1] for p in parts)
        seen = int(np.diff(self.history.indptr)[buyers].max()) if explore and len(buyers) else 0
        popular = self.popular[: k + taken + seen]
        parts.append(np.broadcast_to(popular, (len(buyers), len(popular))))
        candidates = np.concatenate(parts, axis=1)
        excluded = self._bought(buyers, candidates) if explore else None
        return merge_lists([candidates], k, excluded)

    def _bought(self, buyers: np.ndarray, products: np.ndarray) -> np.ndarray:
        """bool [rows, width]: whether row r's buyer bought products[r, j] in training."""
        rows = np.broadcast_to(buyers[:, None], products.shape)
        return self.history.bought(rows.ravel(), products.ravel()).reshape(products.shape) & (products >= 0)
