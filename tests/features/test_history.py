"""Purchase-history bags: weights worked out by hand, the heaviest kept, the shared index space, round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tandem.errors import NotFittedError
from tandem.features.history import SECONDS_PER_DAY, HistoryBag
from tandem.features.transforms import Vocabulary

DAY = SECONDS_PER_DAY
T0 = 1_700_000_000.0


def _rows() -> pd.DataFrame:
    """Buyer a bought x twice (3 orders in all), y once and z (unknown to the vocabulary); b bought y."""
    return pd.DataFrame(
        {
            "buyer": ["a", "a", "a", "a", "b"],
            "value": ["x", "x", "y", "z", "y"],
            "product": ["x", "x", "y", "z", "y"],
            "orders": [1.0, 2.0, 1.0, 5.0, 4.0],
            "time": [T0, T0 + 30 * DAY, T0 + 60 * DAY, T0, T0 + 60 * DAY],
        }
    )


def _vocabulary() -> Vocabulary:
    return Vocabulary("product", oov_buckets=2).fit(np.array(["x", "y", "y", "w"]))  # rows: y=2, w=3, x=4


def _bag(bag: HistoryBag, buyer: str) -> dict[int, float]:
    rows, weights = bag.transform(np.array([buyer]))
    return {int(r): float(w) for r, w in zip(rows[0], weights[0], strict=True) if w > 0}


def test_count_weights_sum_orders_per_value_in_the_shared_index_space() -> None:
    """x weighs 1 + 2 orders, y 1; z is not in the product vocabulary and has no row to pool."""
    bag = HistoryBag("h", column="product").fit(_rows(), _vocabulary())
    assert _bag(bag, "a") == {4: 3.0, 2: 1.0}
    assert _bag(bag, "b") == {2: 4.0}
    rows, weights = bag.transform(np.array(["a", "b"]))
    assert rows.shape == weights.shape == (2, 2) and bag.cardinality_ == 5
    assert list(rows[0]) == [4, 2]  # heaviest first


def test_recency_halves_an_order_per_half_life_before_the_latest_training_time() -> None:
    """The latest time is T0 + 60 days: x's orders are 60 and 30 days old, y's is fresh."""
    bag = HistoryBag("h", column="product", weighting="recency", half_life_days=30).fit(_rows(), _vocabulary())
    assert bag.reference_time_ == T0 + 60 * DAY
    got = _bag(bag, "a")
    assert got[4] == pytest.approx(1 * 0.25 + 2 * 0.5)
    assert got[2] == pytest.approx(1.0)


def test_max_items_keeps_the_heaviest_and_unknown_buyers_get_an_empty_bag() -> None:
    bag = HistoryBag("h", column="product", max_items=1).fit(_rows(), _vocabulary())
    assert _bag(bag, "a") == {4: 3.0}
    rows, weights = bag.transform(np.array(["nobody", None]))
    assert not weights.any() and not rows.any()


def test_spellings_of_one_buyer_id_share_one_bag() -> None:
    rows = pd.DataFrame({"buyer": [7, 7.0, "7"], "value": ["x", "y", "x"], "orders": 1.0, "time": T0})
    bag = HistoryBag("h", column="product").fit(rows, _vocabulary())
    assert bag.buyers_ == ["7"]
    assert _bag(bag, 7) == {4: 2.0, 2: 1.0}


def test_own_contributions_are_the_pair_totals_the_bag_holds() -> None:
    """Each row's own product, with the whole (buyer, product) pair's weight: taking it out empties that entry."""
    rows, vocabulary = _rows(), _vocabulary()
    bag = HistoryBag("h", column="product").fit(rows, vocabulary)
    index, weight = bag.own_contributions(rows, vocabulary.transform(rows["value"]))
    assert list(index) == [4, 4, 2, 1, 2]  # z is out of vocabulary (a bucket below 2): it matches nothing
    assert list(weight) == [3.0, 3.0, 1.0, 5.0, 4.0]


def test_leaving_out_one_order_keeps_re_orders_in_the_bag() -> None:
    """'order' takes one order (decayed at the row's time) out of the row's pair: x's other orders stay."""
    rows, vocabulary = _rows(), _vocabulary()
    bag = HistoryBag("h", column="product", weighting="recency", leave_out_target="order").fit(rows, vocabulary)
    _, weight = bag.own_contributions(rows, vocabulary.transform(rows["value"]))
    np.testing.assert_allclose(weight, [0.25, 0.5, 1.0, 0.25, 1.0])


def test_state_round_trips_and_unfitted_transform_refuses() -> None:
    bag = HistoryBag("h", column="product", weighting="recency", max_items=3).fit(_rows(), _vocabulary())
    again = HistoryBag.from_state(bag.get_state())
    ids = np.array(["b", "a", "x"])
    for got, expected in zip(again.transform(ids), bag.transform(ids), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert again.max_items == 3 and again.weighting == "recency"
    with pytest.raises(NotFittedError, match="'h' is not fitted"):
        HistoryBag("h", column="product").transform(ids)
