"""Candidate sources for the second stage: the buyer's history, item–item (EASE) neighbours of what the buyer
bought, and the most popular products.

EASE weights are kept as each product's strongest neighbours (a sparse matrix), so that evaluation and
serving score with the same, small table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tandem.evaluation.baselines import Ease, history_lists, merge_lists, popularity_order
from tandem.recommend.orders import OrderLog

SOURCES = ("history", "ease", "popularity")
CANDIDATE_FEATURES = ("ease_score", "log_ease_rank", *(f"from_{s}" for s in SOURCES))


@dataclass(frozen=True)
class Neighbours:
    """Item–item weights: score of product j for a buyer = sum of weights[i, j] over the buyer's products i."""

    weights: sp.csr_matrix  # [n_products, n_products]

    @classmethod
    def of(cls, ease: Ease, n_products: int, keep: int) -> Neighbours:
        """Each target's `keep` largest positive weights of a fitted EASE, over a catalog of `n_products`."""
        w = ease.weights
        keep = min(keep, max(1, w.shape[0] - 1))
        top = np.argpartition(-w, keep - 1, axis=0)[:keep]  # [keep, N] strongest sources of each target
        values = np.take_along_axis(w, top, axis=0)
        rows = ease.products[top].ravel()
        cols = np.broadcast_to(ease.products, top.shape).ravel()
        kept = values.ravel() > 0
        shape = (n_products, n_products)
        return cls(sp.csr_matrix((values.ravel()[kept], (rows[kept], cols[kept])), shape=shape, dtype=np.float32))

    def scores(self, log: OrderLog, buyers: np.ndarray) -> sp.csr_matrix:
        """[len(buyers), n_products] sparse scores of each buyer's bought products' neighbours."""
        history = log.history()
        lengths = np.diff(history.indptr)[buyers]
        rows = np.repeat(np.arange(len(buyers)), lengths)
        starts = np.repeat(history.indptr[buyers] - (np.cumsum(lengths) - lengths), lengths)
        products = history.product[starts + np.arange(lengths.sum())]
        x = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, products.astype(np.int64))), shape=(len(buyers), log.n_products)
        )
        return (x @ self.weights).tocsr()


def _top_unseen(rows: np.ndarray, products: np.ndarray, score: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, product) of each row's n best-scored entries (ties: the smaller product index)."""
    order = np.lexsort((products, -score, rows))
    rows, products = rows[order], products[order]
    position = np.arange(len(rows)) - np.searchsorted(rows, rows)
    return rows[position < n], products[position < n]


def candidates(
    log: OrderLog,
    neighbours: Neighbours,
    buyers: np.ndarray,
    *,
    n_history: int,
    n_ease: int,
    n_popularity: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each buyer's candidates: (row into `buyers`, product, [n, len(CANDIDATE_FEATURES)] float32 features),
    sorted by row then product."""
    buyers = np.asarray(buyers, np.int64)
    history = log.history()
    counts = np.bincount(history.product, minlength=log.n_products)
    past = history_lists(history, buyers, n_history)
    past_rows, past_cols = np.nonzero(past >= 0)
    past_products = past[past_rows, past_cols]
    scores = neighbours.scores(log, buyers).tocoo()
    unseen = ~history.bought(buyers[scores.row], scores.col)
    ease_rows, ease_products = _top_unseen(
        scores.row[unseen].astype(np.int64), scores.col[unseen].astype(np.int64), scores.data[unseen], n_ease
    )
    scores = scores.tocsr()
    lengths = np.diff(history.indptr)[buyers]
    popular = popularity_order(counts)[: n_popularity + (int(lengths.max()) if len(lengths) else 0)]
    wide = np.broadcast_to(popular, (len(buyers), len(popular)))
    seen = history.bought(np.repeat(buyers, len(popular)), wide.ravel()).reshape(wide.shape)
    pop = merge_lists([wide], n_popularity, excluded=seen)
    pop_rows, pop_cols = np.nonzero(pop >= 0)
    parts = [(past_rows, past_products), (ease_rows, ease_products), (pop_rows, pop[pop_rows, pop_cols])]
    rows = np.concatenate([p[0] for p in parts])
    products = np.concatenate([p[1] for p in parts]).astype(np.int64)
    source = np.concatenate([np.full(len(p[0]), i) for i, p in enumerate(parts)])
    keys, inverse = np.unique(rows * log.n_products + products, return_inverse=True)
    flags = np.zeros((len(keys), len(SOURCES)), np.float32)
    flags[inverse, source] = 1.0
    rows, products = keys // log.n_products, keys % log.n_products
    score = np.asarray(scores[rows, products]).ravel().astype(np.float32)
    rank = _rank_in_row(rows, score)
    features = np.column_stack([score, np.log1p(rank), flags]).astype(np.float32)
    return rows, products, features


def _rank_in_row(rows: np.ndarray, score: np.ndarray) -> np.ndarray:
    """0-based rank of each entry's score within its row, best first."""
    order = np.lexsort((-score, rows))
    first = np.searchsorted(rows[order], rows[order])
    rank = np.empty(len(rows), np.float64)
    rank[order] = np.arange(len(rows)) - first
    return rank
