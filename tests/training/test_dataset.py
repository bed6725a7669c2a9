"""Encoding interactions for training: distinct query rows, the catalog, split rows and each buyer's seen products."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tandem.data.prepare import BUYER, PRODUCT
from tandem.run import prepare
from tandem.spec import load_spec, parse_spec
from tandem.training.dataset import _distinct_rows

# A buyer feature that changes over time gives each buyer several distinct query rows.
TIME_BUCKET = "features.buyer=[{column: buyer, transform: id, embedding_dim: 8}, {column: ts, transform: bucketize, num_buckets: 3, embedding_dim: 8}]"


@pytest.fixture
def encoded(synthetic_spec_path):
    """(interactions, encoded data) of the synthetic spec with a time-varying buyer feature."""
    interactions, _, data = prepare(load_spec(synthetic_spec_path, [TIME_BUCKET]))
    return interactions, data


def test_query_rows_are_the_distinct_buyer_and_feature_combinations(encoded):
    """Rows with the same buyer and the same encoded buyer features share one query row, and only those do."""
    interactions, data = encoded
    frame = interactions.frame
    query = {}
    all_rows = sorted([*interactions.train, *interactions.validation, *interactions.test])
    row_query = {}
    for split_rows, idx in (
        (data.train, interactions.train),
        (data.validation, interactions.validation),
        (data.test, interactions.test),
    ):
        for r, q in zip(idx.tolist(), split_rows.query.tolist(), strict=True):
            row_query[r] = q
    assert sorted(row_query) == all_rows
    bucket = {r: int(data.query_table["ts"][q]) for r, q in row_query.items()}
    for r, q in row_query.items():
        query.setdefault(q, set()).add((frame[BUYER].iloc[r], bucket[r]))
    assert all(len(keys) == 1 for keys in query.values())  # one (buyer, features) per query row
    keys = [next(iter(k)) for k in query.values()]
    assert len(keys) == len(set(keys))  # and one query row per (buyer, features)
    assert len(query) > frame[BUYER].nunique()  # some buyers do have several query rows
    for q, (buyer, _) in zip(query, keys, strict=True):
        assert data.buyer_ids[data.query_buyer[q]] == buyer


def test_split_rows_point_at_their_own_product_and_label(encoded):
    """Each split row's product index names its product id, and its label is its target."""
    interactions, data = encoded
    frame = interactions.frame
    for split_rows, idx in ((data.train, interactions.train), (data.test, interactions.test)):
        for r, p, y in zip(idx.tolist(), split_rows.product.tolist(), split_rows.labels.tolist(), strict=True):
            assert data.product_ids[p] == frame[PRODUCT].iloc[r]
            assert y == pytest.approx(interactions.target[r])


def test_train_counts_count_training_rows_per_product(encoded):
    """train_counts[p] is the number of training rows of product p."""
    interactions, data = encoded
    products = interactions.frame[PRODUCT].to_numpy()
    for p, product_id in enumerate(data.product_ids):
        assert data.train_counts[p] == sum(1 for r in interactions.train if products[r] == product_id)


def test_seen_lists_every_training_product_of_each_query_rows_buyer(encoded):
    """seen() gives each query row the products its buyer bought in training, across all the buyer's query rows."""
    interactions, data = encoded
    frame = interactions.frame
    bought: dict[str, set[str]] = {}
    for r in interactions.train.tolist():
        bought.setdefault(frame[BUYER].iloc[r], set()).add(frame[PRODUCT].iloc[r])
    indptr, indices = data.seen()
    assert len(indptr) == len(data.query_buyer) + 1
    for q in range(len(data.query_buyer)):
        buyer = data.buyer_ids[data.query_buyer[q]]
        got = [data.product_ids[p] for p in indices[indptr[q] : indptr[q + 1]]]
        assert len(got) == len(set(got))
        assert set(got) == bought.get(buyer, set())


def test_catalog_takes_each_products_attributes_as_of_the_cutoff(tmp_path, write_table):
    """A product's features come from its latest training row, never a later test row; a product bought only
    after the cutoff gets its earliest row."""
    lines = pd.DataFrame(
        {
            "buyer": ["a", "b", "a", "b", "a", "b"],
            "product": ["p", "p", "p", "q", "q", "r"],
            "shelf": ["old", "mid", "new", "q1", "q2", "r1"],
            "ts": [1, 2, 10, 3, 11, 12],
        }
    )
    raw = {
        "data": {
            "transactions": {"path": str(write_table(lines, "lines.csv"))},
            **{"buyer_id": "buyer", "product_id": "product", "timestamp": "ts"},
            "split": {"kind": "time", "cutoff": "5"},
        },
        "features": {
            "buyer": [{"column": "buyer", "transform": "id", "embedding_dim": 8}],
            "product": [
                {"column": "product", "transform": "id", "embedding_dim": 4},
                {"column": "shelf", "transform": "categorical", "embedding_dim": 4},
            ],
        },
        "model": {"type": "retrieval", "top_k": 2},
        "evaluation": {"ks": [1, 2]},
    }
    _, _, data = prepare(parse_spec(raw))
    shelves = dict(zip(data.catalog_frame["__product"], data.catalog_frame["shelf"], strict=True))
    assert shelves == {"p": "mid", "q": "q1", "r": "r1"}


@pytest.mark.parametrize("largest", [2**31 + 5, 2**33])
def test_distinct_rows_are_numbered_in_the_order_of_their_bytes(largest):
    """Each row's distinct index is its rank among the distinct rows' little-endian int64 bytes (float32 inputs by
    their bits), with keys below 2^32 (kept in 4 bytes), larger ones and negative floats alike."""
    rng = np.random.default_rng(3)
    codes = rng.choice([1, 255, 256, 65_537], 2_000)
    encoded = {
        "id": rng.choice([0, 2, 258, 70_000, largest], 2_000),
        "x": rng.choice(np.array([-1.5, -0.0, 0.0, 2.25, 3e-9], np.float32), size=(2_000, 2)),
    }
    first, inverse = _distinct_rows(codes, encoded)
    columns = [codes, encoded["id"], *encoded["x"].view(np.int32).T]
    row_bytes = np.stack([c.astype("<i8") for c in columns], axis=1).view(np.uint8)
    distinct, expected = np.unique(row_bytes, axis=0, return_inverse=True)
    assert np.array_equal(inverse, expected.ravel())
    assert np.array_equal(row_bytes[first], distinct)
