"""Interactions encoded for the model: distinct query rows, the product catalog, and each split's rows.

Query rows are deduplicated (same buyer, same encoded buyer features → one row), so the query tower runs
once per distinct row and the retrieval loss can work over distinct rows. The catalog holds one row per
product: product features are product attributes, and when a column varies across a product's rows the
value of its latest training row is used (of its earliest row when it has no training rows), so nothing
after the cutoff leaks into training. Buyer features are each row's own values (what a client sends with
a query), so training rows never see a later one either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from tandem.data.history import PurchaseHistory, purchase_history
from tandem.data.prepare import BUYER, PRODUCT, TARGET, TS, Interactions
from tandem.features.pipeline import TowerFeatures


@dataclass
class SplitRows:
    """One split: each row's distinct query row, product index and (for ranking) label.

    own: for training rows, each history bag's (table row [n] int64, weight [n] float32) that the row's own
    product put into its buyer's bag, which training takes out again (`Tower.forward`'s leave_out).
    """

    query: torch.Tensor  # [n] int64
    product: torch.Tensor  # [n] int64
    labels: torch.Tensor | None  # [n] float32
    own: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.query)


@dataclass
class EncodedData:
    """Everything the training loop and the evaluation need, as tensors."""

    query_table: dict[str, torch.Tensor]  # distinct query rows [Uq, ...]
    query_buyer: np.ndarray  # [Uq] buyer code of each query row
    buyer_ids: np.ndarray  # [n_buyers] raw buyer id of each code
    catalog: dict[str, torch.Tensor]  # one encoded row per product [Nc, ...]
    product_ids: np.ndarray  # [Nc] raw product id of each catalog row
    catalog_frame: pd.DataFrame  # raw product feature values per catalog row (for export)
    train_counts: np.ndarray  # [Nc] training interactions per product
    history: PurchaseHistory  # each buyer's training purchases (order counts, latest order)
    train: SplitRows
    validation: SplitRows
    test: SplitRows

    @property
    def log_q(self) -> torch.Tensor:
        """Log of each product's share of training rows (products never trained on get the smallest share)."""
        counts = np.maximum(self.train_counts, 1).astype(np.float64)
        return torch.from_numpy(np.log(counts / counts.sum()).astype(np.float32))

    def to(self, device: str | torch.device) -> EncodedData:
        """Move the query table and the catalog (what the towers read) to `device`; indices stay on the CPU."""
        self.query_table = {k: v.to(device) for k, v in self.query_table.items()}
        self.catalog = {k: v.to(device) for k, v in self.catalog.items()}
        return self

    def seen(self) -> tuple[np.ndarray, np.ndarray]:
        """Each query row's training products as CSR (indptr [Uq + 1], indices)."""
        train_query = self.train.query.numpy()
        buyers_of_rows = self.query_buyer[train_query]
        pairs = np.unique(np.stack([buyers_of_rows, self.train.product.numpy()], axis=1), axis=0)
        n_buyers = len(self.buyer_ids)
        b_indptr = np.zeros(n_buyers + 1, dtype=np.int64)
        np.add.at(b_indptr, pairs[:, 0] + 1, 1)
        b_indptr = np.cumsum(b_indptr)
        counts = np.diff(b_indptr)[self.query_buyer]
        indptr = np.concatenate([[0], np.cumsum(counts)])
        indices = (
            np.concatenate([pairs[b_indptr[b] : b_indptr[b + 1], 1] for b in self.query_buyer])
            if len(pairs)
            else np.zeros(0, np.int64)
        )
        return indptr, indices.astype(np.int64)


def _distinct_rows(codes: np.ndarray, encoded: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct (code, encoded inputs) combination, each row's distinct index).

    Distinct rows are numbered in the order of their bytes (each value as a little-endian int64, float32 inputs
    by their bits): sorting the byte-swapped values column by column gives that order without an [n, k] copy
    of the rows."""
    keys = [_byte_order(codes)]
    for arr in encoded.values():
        a = arr.reshape(len(arr), -1)
        keys += [_byte_order(a[:, j].view(np.int32) if a.dtype == np.float32 else a[:, j]) for j in range(a.shape[1])]
    order = np.lexsort(keys[::-1])
    new_row = np.zeros(len(order), dtype=bool)
    new_row[:1] = True
    while keys:
        key = keys.pop()[order]
        new_row[1:] |= key[1:] != key[:-1]
    # Each sorted row's distinct index, in 4 bytes where they fit: it is held beside `order` and `inverse`.
    distinct = np.cumsum(new_row, dtype=np.int32 if len(new_row) < 2**31 else np.int64)
    distinct -= 1
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = distinct
    return order[new_row], inverse


def _byte_order(values: np.ndarray) -> np.ndarray:
    """`values` as int64, byte-swapped: their unsigned order is the order of their little-endian bytes.

    Values in [0, 2^32) are kept in 4 bytes (half the memory of a [rows]-long key): the other 4 are zeros, so the
    order is the same."""
    if len(values) and values.min() >= 0 and values.max() < 2**32:
        return values.astype(np.uint32).byteswap(inplace=True)
    return values.astype(np.int64).view(np.uint64).byteswap(inplace=True)


def _row_as_of_cutoff(codes: np.ndarray, n: int, time: np.ndarray | None, train: np.ndarray) -> np.ndarray:
    """[n] for each code, its latest training row, or its earliest row when it has none.

    time: [rows] each row's time (None: rows are in time order); train: the training rows.
    """
    order = np.argsort(time, kind="stable") if time is not None else np.arange(len(codes))
    in_train = np.zeros(len(codes), dtype=bool)
    in_train[train] = True
    row = np.zeros(n, dtype=np.int64)
    backwards = order[::-1]
    row[codes[backwards]] = backwards  # earlier rows overwrite later ones: the earliest row wins
    trained = order[in_train[order]]
    row[codes[trained]] = trained  # later training rows overwrite earlier ones: the latest wins
    return row


def _query_rows(
    codes: np.ndarray, encoded: dict[str, np.ndarray]
) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    """(the distinct query rows' table, each distinct row's buyer code, each row's distinct index)."""
    first, query_of_row = _distinct_rows(codes, encoded)
    return _tensors(encoded, first), codes[first].astype(np.int64), query_of_row


def _tensors(encoded: dict[str, np.ndarray], rows: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v if rows is None else v[rows])) for k, v in encoded.items()}


def encode(data: Interactions, buyer: TowerFeatures, product: TowerFeatures) -> EncodedData:
    """Encode all rows with fitted pipelines and build the query table, catalog and split rows.

    Each step's [rows]-long temporaries are freed before the next one (the purchase history is built before
    the split rows), so that the peak holds the frame and few more copies of it."""
    frame = data.frame
    buyer_codes, buyer_ids = pd.factorize(frame[BUYER])
    product_codes, product_ids = pd.factorize(frame[PRODUCT])
    history = purchase_history(frame, data.train, buyer_codes, product_codes, len(buyer_ids), len(product_ids))
    query_table, query_buyer, query_of_row = _query_rows(buyer_codes, buyer.transform(frame))

    time = frame[TS].to_numpy() if TS in frame else None
    product_row = _row_as_of_cutoff(product_codes, len(product_ids), time, data.train)
    product_columns = [PRODUCT, *sorted(set(product.columns.values()) - {PRODUCT})]
    catalog_frame = frame.iloc[product_row][product_columns].reset_index(drop=True)
    catalog = _tensors(product.transform(catalog_frame))

    labels = frame[TARGET].to_numpy(np.float32) if TARGET in frame else None
    query_t = torch.from_numpy(query_of_row)
    product_t = torch.from_numpy(np.asarray(product_codes, dtype=np.int64))
    labels_t = torch.from_numpy(labels) if labels is not None else None

    def rows(idx: np.ndarray) -> SplitRows:
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        return SplitRows(query_t[i], product_t[i], labels_t[i] if labels_t is not None else None)

    train = rows(data.train)
    own = buyer.own_history(frame, data.train, PRODUCT, product)
    train.own = {name: (torch.from_numpy(r), torch.from_numpy(w)) for name, (r, w) in own.items()}

    return EncodedData(
        query_table=query_table,
        query_buyer=query_buyer,
        buyer_ids=np.asarray(buyer_ids),
        catalog=catalog,
        product_ids=np.asarray(product_ids),
        catalog_frame=catalog_frame,
        train_counts=np.bincount(product_codes[data.train], minlength=len(product_ids)),
        history=history,
        train=train,
        validation=rows(data.validation),
        test=rows(data.test),
    )
