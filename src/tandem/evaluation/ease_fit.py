"""Fitting EASE (Steck, 2019) on the training purchases: the one part of the baselines that needs torch (a
dense Cholesky inverse of the Gram matrix; its cost is in :mod:`tandem.evaluation.baselines`). Scoring a fitted
`Ease` is numpy there, so that serving and the second stage's candidates never import torch.
"""

from __future__ import annotations

import numpy as np
import torch

from tandem.data.history import PurchaseHistory
from tandem.evaluation.baselines import LIST_BLOCK_ELEMENTS, Ease, popularity_order, purchases


def fit_ease(history: PurchaseHistory, counts: np.ndarray, lam: float, max_products: int) -> Ease:
    """EASE over the `max_products` most bought products (by `counts`, those bought at all)."""
    order = popularity_order(counts)
    columns = order[: min(max_products, int((np.asarray(counts) > 0).sum()))]
    rows, cols = purchases(history, columns, np.arange(history.n_buyers))
    index = torch.from_numpy(np.stack([rows, cols]))
    ones = torch.ones(index.shape[1], dtype=torch.float64)
    shape = (history.n_buyers, len(columns))
    x = torch.sparse_coo_tensor(index, ones, shape, check_invariants=False).coalesce()
    gram = torch.zeros((len(columns), len(columns)), dtype=torch.float64)
    width = max(1, LIST_BLOCK_ELEMENTS // max(1, history.n_buyers))
    for first in range(0, len(columns), width):  # XᵀX a block of dense columns at a time: nnz × N work
        here = (cols >= first) & (cols < first + width)
        dense = torch.zeros((history.n_buyers, min(width, len(columns) - first)), dtype=torch.float64)
        dense[torch.from_numpy(rows[here]), torch.from_numpy(cols[here] - first)] = 1.0
        gram[:, first : first + width] = torch.sparse.mm(x.t(), dense)
    gram.diagonal().add_(lam)
    p = torch.cholesky_inverse(torch.linalg.cholesky(gram))
    weights = -p / p.diagonal().unsqueeze(0)
    weights.diagonal().zero_()
    return Ease(products=columns, weights=weights.to(torch.float32).numpy())
