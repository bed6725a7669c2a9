"""A baseline trained and served as a model of its own (`model.type: buy_again` or `ease`): the training
purchases, the popularity and, for ease, the kept EASE table. Numpy only, so that the server scores with the
very arrays the evaluation scored with.

A dense EASE table over 6,000 products is 144 MB; the model keeps each product's `model.ease_neighbours`
largest weights (the rest zero), so the bundle stores N × that many, and evaluation and serving use that table.

Saved as `baseline.npz`: indptr, product, orders, last (the purchase history), counts, and for ease the EASE
columns' products with the kept weights as CSR arrays (data, indices, indptr) over those columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from tandem.data.history import PurchaseHistory
from tandem.evaluation.baselines import Baselines, Ease

FILE = "baseline.npz"


def prune(ease: Ease, keep: int) -> Ease:
    """Each column's `keep` largest weights, the others set to zero (unchanged when keep ≥ N - 1: the diagonal
    is zero anyway)."""
    n = len(ease.products)
    if keep >= n - 1:
        return ease
    top = np.argpartition(-ease.weights, keep - 1, axis=0)[:keep]
    weights = np.zeros_like(ease.weights)
    np.put_along_axis(weights, top, np.take_along_axis(ease.weights, top, axis=0), axis=0)
    return Ease(products=ease.products, weights=weights)


@dataclass
class BaselineModel:
    """The lists of one baseline (`name`) over a training split; `lists` is the code evaluation and serving run."""

    name: str  # buy_again or ease
    history: PurchaseHistory
    counts: np.ndarray  # [Nc] training rows per product
    ease: Ease | None  # the kept table (ease only)

    def __post_init__(self) -> None:
        self._baselines = Baselines(self.history, self.counts, self.ease)

    def lists(self, buyers: np.ndarray, k: int, *, explore: bool = False) -> np.ndarray:
        """[len(buyers), k] catalog rows, best first (-1 where the catalog runs out)."""
        return self._baselines.lists(self.name, buyers, k, explore=explore)

    def ranked(self, buyers: np.ndarray, k: int, *, explore: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The lists, and beside them their scores: NaN, a baseline's order has none (as `TwoStage.ranked`)."""
        lists = self.lists(buyers, k, explore=explore)
        return lists, np.full(lists.shape, np.nan, np.float32)

    def save(self, folder: str | Path) -> Path:
        """Write `baseline.npz` into `folder`; returns its path."""
        h = self.history
        arrays = {"indptr": h.indptr, "product": h.product, "orders": h.orders, "last": h.last, "counts": self.counts}
        if self.ease is not None:
            kept = sp.csr_matrix(self.ease.weights)
            arrays |= {"ease_products": self.ease.products, "data": kept.data, "indices": kept.indices}
            arrays["ease_indptr"] = kept.indptr
        path = Path(folder) / FILE
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, name: str, folder: str | Path) -> BaselineModel:
        z = np.load(Path(folder) / FILE)
        counts = z["counts"]
        history = PurchaseHistory(
            indptr=z["indptr"], product=z["product"], orders=z["orders"], last=z["last"], n_products=len(counts)
        )
        ease = None
        if "ease_products" in z:
            n = len(z["ease_products"])
            kept = sp.csr_matrix((z["data"], z["indices"], z["ease_indptr"]), shape=(n, n))
            ease = Ease(products=z["ease_products"], weights=kept.toarray().astype(np.float32))
        return cls(name, history, counts, ease)
