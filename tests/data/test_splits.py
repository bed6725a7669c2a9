"""Random, time and leave-last-out splits, checked against independent Python computations."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tandem.data.splits import split_rows
from tandem.errors import SpecError
from tandem.spec import SplitSpec


def _frame(n: int = 50, n_buyers: int = 7, seed: int = 0, ts_range: int = 40) -> pd.DataFrame:
    """Rows with buyers and timestamps that repeat, so ties in time occur."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"__buyer": rng.integers(0, n_buyers, size=n).astype(str), "__ts": rng.integers(0, ts_range, size=n)}
    )


def _split(frame: pd.DataFrame, **split) -> tuple[list[int], list[int], list[int]]:
    train, val, test = split_rows(frame, SplitSpec(**split), {})
    return train.tolist(), val.tolist(), test.tolist()


def _assert_partition(n: int, *parts: list[int]) -> None:
    rows = [r for part in parts for r in part]
    assert sorted(rows) == list(range(n)), "the splits must hold every row exactly once"


# -------------------------------------------------------------------------------------------- random


@pytest.mark.parametrize(
    ("n", "test_fraction", "validation_fraction"), [(50, 0.2, 0.0), (37, 0.3, 0.25), (10, 0.5, 0.2)]
)
def test_random_split_partitions_rows_with_rounded_sizes(n, test_fraction, validation_fraction):
    """Test holds round(n × test_fraction) rows, validation round(rest × validation_fraction), train the others."""
    train, val, test = _split(
        _frame(n), kind="random", test_fraction=test_fraction, validation_fraction=validation_fraction, seed=3
    )
    _assert_partition(n, train, val, test)
    n_test = round(n * test_fraction)
    assert len(test) == n_test
    assert len(val) == round((n - n_test) * validation_fraction)


def test_random_split_is_reproducible_for_a_seed_and_changes_with_it():
    """The same seed gives the same split; another seed gives another split."""
    frame = _frame(60)
    first = _split(frame, kind="random", seed=11, validation_fraction=0.2)
    assert _split(frame, kind="random", seed=11, validation_fraction=0.2) == first
    assert _split(frame, kind="random", seed=12, validation_fraction=0.2) != first


def test_random_split_does_not_depend_on_row_contents():
    """The random split picks row positions: frames of the same length split alike."""
    assert _split(_frame(40, seed=1), kind="random", seed=5) == _split(_frame(40, seed=2), kind="random", seed=5)


# ---------------------------------------------------------------------------------------------- time


def _higher_quantile(values: list[int], p: float) -> int:
    """numpy's 'higher' quantile method written out: the value at index ceil((n − 1) p) of the sorted values."""
    ordered = sorted(values)
    return ordered[math.ceil((len(ordered) - 1) * p)]


@pytest.mark.parametrize("test_fraction", [0.2, 0.35])
def test_time_split_tests_rows_at_or_after_the_quantile_cutoff(test_fraction):
    """Without a cutoff, rows at or after the (1 − test_fraction) time quantile are tested, the rest trained."""
    frame = _frame(80, seed=4)
    ts = frame["__ts"].tolist()
    cutoff = _higher_quantile(ts, 1 - test_fraction)

    train, val, test = _split(frame, kind="time", test_fraction=test_fraction)

    assert test == [i for i, t in enumerate(ts) if t >= cutoff]
    assert train == [i for i, t in enumerate(ts) if t < cutoff]
    assert val == []


def test_time_split_validates_the_latest_training_rows():
    """With validation on, the latest round(fit × fraction) rows before the cutoff validate."""
    frame = pd.DataFrame({"__buyer": ["a"] * 10, "__ts": [5, 1, 9, 3, 7, 2, 8, 4, 6, 10]})
    train, val, test = _split(frame, kind="time", cutoff="9", validation_fraction=0.25)
    fit = sorted((t, i) for i, t in enumerate(frame["__ts"]) if t < 9)  # 8 rows, so 2 validate
    assert test == sorted(i for i, t in enumerate(frame["__ts"]) if t >= 9)
    assert val == sorted(i for _, i in fit[-2:])
    assert train == sorted(i for _, i in fit[:-2])


def test_time_split_cutoff_accepts_a_date():
    """A date cutoff is read as UTC midnight and compared with epoch seconds."""
    day = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp())
    frame = pd.DataFrame({"__buyer": ["a"] * 4, "__ts": [day - 1, day, day + 1, day - 86_400]})
    train, _, test = _split(frame, kind="time", cutoff="2024-03-01")
    assert (train, test) == ([0, 3], [1, 2])


def test_time_split_cutoff_accepts_epoch_seconds():
    """An integer cutoff is taken as epoch seconds."""
    frame = pd.DataFrame({"__buyer": ["a"] * 4, "__ts": [10, 20, 30, 40]})
    train, _, test = _split(frame, kind="time", cutoff="25")
    assert (train, test) == ([0, 1], [2, 3])


def test_unreadable_cutoff_is_reported():
    """A cutoff that is neither a date nor seconds is reported at data.split.cutoff."""
    with pytest.raises(SpecError) as info:
        _split(_frame(), kind="time", cutoff="next tuesday-ish")
    assert [p.path for p in info.value.problems] == ["data.split.cutoff"]


# ------------------------------------------------------------------------------------- leave-last-out


def _naive_leave_last_out(buyers: list[str], ts: list[int], with_validation: bool):
    """Per buyer: order rows by (time, row); the last is tested (≥ 2 rows), the one before validated (≥ 3 rows)."""
    rows_of: dict[str, list[tuple[int, int]]] = {}
    for i, (b, t) in enumerate(zip(buyers, ts, strict=True)):
        rows_of.setdefault(b, []).append((t, i))
    train, val, test = [], [], []
    for rows in rows_of.values():
        ordered = [i for _, i in sorted(rows)]
        if len(ordered) >= 2:
            test.append(ordered.pop())
        if with_validation and len(ordered) >= 2:
            val.append(ordered.pop())
        train += ordered
    return sorted(train), sorted(val), sorted(test)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("validation_fraction", [0.0, 0.1])
def test_leave_last_out_tests_each_buyers_latest_row(seed, validation_fraction):
    """Each buyer's latest row is tested and, with validation on, the one before it validated; ties go to row order."""
    frame = _frame(60, n_buyers=12, seed=seed, ts_range=5)
    expected = _naive_leave_last_out(frame["__buyer"].tolist(), frame["__ts"].tolist(), validation_fraction > 0)
    got = _split(frame, kind="leave_last_out", validation_fraction=validation_fraction)
    assert got == expected


def test_leave_last_out_keeps_single_row_buyers_in_training():
    """A buyer with one row keeps it for training; a buyer with two rows has none to validate."""
    frame = pd.DataFrame({"__buyer": ["solo", "pair", "pair", "trio", "trio", "trio"], "__ts": [5, 1, 2, 3, 1, 2]})
    train, val, test = _split(frame, kind="leave_last_out", validation_fraction=0.5)
    assert (train, val, test) == ([0, 1, 4], [5], [2, 3])


# --------------------------------------------------------------------------------------------- errors


def test_split_without_test_rows_is_an_error():
    """When every buyer has a single row, leave-last-out tests nothing and that is reported."""
    frame = pd.DataFrame({"__buyer": ["a", "b", "c"], "__ts": [1, 2, 3]})
    with pytest.raises(SpecError) as info:
        _split(frame, kind="leave_last_out")
    assert [p.path for p in info.value.problems] == ["data.split"]
    assert "no test rows" in info.value.problems[0].message


def test_split_without_training_rows_is_an_error():
    """A time cutoff before every row leaves nothing to train on and is reported."""
    frame = pd.DataFrame({"__buyer": ["a", "b"], "__ts": [10, 20]})
    with pytest.raises(SpecError) as info:
        _split(frame, kind="time", cutoff="5")
    assert [p.message for p in info.value.problems] == ["the time split leaves no training rows out of 2"]


def test_split_without_validation_rows_is_reported_when_asked_for():
    """A validation fraction too small to give one row is reported at data.split.validation_fraction."""
    with pytest.raises(SpecError) as info:
        _split(_frame(10), kind="random", test_fraction=0.2, validation_fraction=0.01)
    assert [p.path for p in info.value.problems] == ["data.split.validation_fraction"]


def test_split_sizes_are_written_to_the_report():
    """The report receives the number of rows in each split."""
    report: dict = {}
    train, val, test = split_rows(_frame(30), SplitSpec(kind="random", validation_fraction=0.2), report)
    assert report == {"train_rows": len(train), "validation_rows": len(val), "test_rows": len(test)}
