"""Feature transforms: the scikit-learn contract for every transform, then each transform's own behaviour."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest

from tandem.errors import NotFittedError
from tandem.features.transforms import (
    Bucketize,
    Hashing,
    Standardize,
    TextTokens,
    TimeFeatures,
    Vocabulary,
    transform_from_state,
)

# ------------------------------------------------------------------------------------ contract checks
# Each case: a fresh unfitted transform, training values, other training values, and values with unseen
# or missing entries to transform.

CASES = {
    "vocabulary": (
        lambda: Vocabulary("shop", oov_buckets=3),
        np.array(["a", "b", "b", "c", 7, None], dtype=object),
        np.array(["x", "y"], dtype=object),
        np.array(["b", "zz", None, 7.0, "unseen"], dtype=object),
    ),
    "hashing": (
        lambda: Hashing("zip", num_bins=16),
        np.array(["10115", "75001", "10115"], dtype=object),
        np.array(["99999"], dtype=object),
        np.array(["10115", "new", None], dtype=object),
    ),
    "standardize": (
        lambda: Standardize("price", log=True),
        np.array([1.0, 10.0, 100.0, np.nan, 3.0]),
        np.array([-5.0, 5.0]),
        np.array([2.0, np.nan, 1000.0, -1.0]),
    ),
    "bucketize": (
        lambda: Bucketize("age", num_buckets=4),
        np.array([18, 25, 33, 41, 52, 60, 71, np.nan]),
        np.array([1.0, 2.0, 3.0]),
        np.array([10, 33, 90, np.nan]),
    ),
    "text": (
        lambda: TextTokens("title", max_length=4),
        np.array(["Red Shoes", "blue shoes, size 9", None], dtype=object),
        np.array(["other words"], dtype=object),
        np.array(["red SHOES unknown", "", None, "a b c d e f"], dtype=object),
    ),
    "timestamp": (
        lambda: TimeFeatures("when"),
        np.array([1_700_000_000, 1_700_086_400, 1_700_200_000]),
        np.array([0, 10]),
        np.array([1_700_050_000, np.nan]),
    ),
}
IDS = list(CASES)


def _fitted(case: str):
    make, train, _, _ = CASES[case]
    return make().fit(train)


@pytest.mark.parametrize("case", IDS)
def test_unfitted_transform_raises_not_fitted_error(case):
    """Transforming or saving before `fit` raises NotFittedError, which is also a ValueError."""
    make, _, _, values = CASES[case]
    transform = make()
    with pytest.raises(NotFittedError, match="not fitted yet"):
        transform.transform(values)
    with pytest.raises(NotFittedError):
        transform.get_state()
    assert issubclass(NotFittedError, ValueError)


@pytest.mark.parametrize("case", IDS)
def test_init_sets_no_fitted_state(case):
    """A new transform has no attribute ending in an underscore (state comes only from `fit`)."""
    transform = CASES[case][0]()
    assert not [k for k in vars(transform) if k.endswith("_") and not k.startswith("_")]


@pytest.mark.parametrize("case", IDS)
def test_fit_returns_self(case):
    """`fit` returns the transform itself, so calls chain."""
    make, train, _, _ = CASES[case]
    transform = make()
    assert transform.fit(train) is transform


@pytest.mark.parametrize("case", IDS)
def test_fit_is_idempotent_and_starts_clean(case):
    """Fitting twice, or after fitting other data, gives the same output as one fit."""
    make, train, other, values = CASES[case]
    once = make().fit(train).transform(values)
    twice = make().fit(train).fit(train).transform(values)
    refit = make().fit(other).fit(train).transform(values)
    np.testing.assert_array_equal(once, twice)
    np.testing.assert_array_equal(once, refit)


@pytest.mark.parametrize("case", IDS)
def test_state_round_trips_through_json_with_identical_output(case):
    """A transform rebuilt from its JSON-serialised state transforms exactly as the original does."""
    values = CASES[case][3]
    original = _fitted(case)
    restored = transform_from_state(json.loads(json.dumps(original.get_state())))
    assert type(restored) is type(original)
    np.testing.assert_array_equal(restored.transform(values), original.transform(values))


@pytest.mark.parametrize("case", IDS)
def test_output_matches_the_declared_kind_and_size(case):
    """Index outputs are int64 within the table size, bags are [n, max_length], dense outputs are float32 [n, width]."""
    transform = _fitted(case)
    values = CASES[case][3]
    out = transform.transform(values)
    if transform.output == "dense":
        assert out.dtype == np.float32
        assert out.shape == (len(values), transform.width_)
        assert len(transform.get_feature_names_out()) == transform.width_
    else:
        assert out.dtype == np.int64
        assert out.min() >= 0
        assert out.max() < transform.cardinality_
        assert transform.get_feature_names_out() == [transform.name]
        if transform.output == "bag":
            assert out.shape == (len(values), transform.max_length)
        else:
            assert out.shape == (len(values),)


# --------------------------------------------------------------------------------------- vocabulary


def test_vocabulary_orders_values_by_frequency_then_value():
    """The vocabulary lists the most frequent values first, ties in value order, after the OOV buckets."""
    train = np.array(["pear", "apple", "fig", "apple", "fig", "kiwi", "fig"], dtype=object)
    vocab = Vocabulary("fruit", oov_buckets=2).fit(train)
    assert vocab.vocabulary_ == ["fig", "apple", "kiwi", "pear"]
    assert vocab.transform(np.array(["fig", "apple", "kiwi", "pear"], dtype=object)).tolist() == [2, 3, 4, 5]
    assert vocab.cardinality_ == 6


def test_vocabulary_does_not_depend_on_row_order():
    """Shuffled training rows give the same vocabulary."""
    train = np.array(list("aabbbcddddeef"), dtype=object)
    shuffled = np.random.default_rng(0).permutation(train)
    assert Vocabulary("v").fit(train).vocabulary_ == Vocabulary("v").fit(shuffled).vocabulary_


def test_min_count_sends_rare_values_to_oov_buckets():
    """Values seen fewer than min_count times stay out of the vocabulary."""
    train = np.array(["a", "a", "a", "b", "b", "c"], dtype=object)
    vocab = Vocabulary("v", min_count=2, oov_buckets=1).fit(train)
    assert vocab.vocabulary_ == ["a", "b"]
    assert vocab.transform(np.array(["c"], dtype=object)).tolist() == [0]


def test_max_vocab_keeps_the_most_frequent_values():
    """max_vocab keeps only that many values, the most frequent."""
    train = np.array(["a", "b", "b", "c", "c", "c"], dtype=object)
    assert Vocabulary("v", max_vocab=2).fit(train).vocabulary_ == ["c", "b"]


def test_missing_values_never_enter_the_vocabulary():
    """None and NaN are not vocabulary entries; they are encoded in an OOV bucket."""
    train = np.array(["a", None, np.nan, None], dtype=object)
    vocab = Vocabulary("v", oov_buckets=4).fit(train)
    assert vocab.vocabulary_ == ["a"]
    assert vocab.transform(np.array([None, np.nan], dtype=object)).max() < 4


def test_numeric_and_string_forms_of_an_id_share_one_entry():
    """The ids 42, 42.0 and "42" are one vocabulary entry, so int, float and string columns agree."""
    vocab = Vocabulary("id").fit(np.array([42, 7]))
    out = vocab.transform(np.array([42, 42.0, "42", np.float32(42.0)], dtype=object))
    assert len(set(out.tolist())) == 1
    assert out[0] >= vocab.oov_buckets


def test_unseen_values_hash_into_oov_buckets_deterministically():
    """Unseen values land in [0, oov_buckets), the same bucket in every fit and call, and they spread out."""
    unseen = np.array([f"new{i}" for i in range(200)], dtype=object)
    a = Vocabulary("v", oov_buckets=8).fit(np.array(["x", "y"], dtype=object)).transform(unseen)
    b = Vocabulary("v", oov_buckets=8).fit(np.array(["y", "z", "z"], dtype=object)).transform(unseen[::-1])[::-1]
    assert a.min() >= 0
    assert a.max() < 8
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 8


def test_oov_buckets_are_the_same_in_another_process():
    """A fresh interpreter with a different hash seed puts unseen values in the same buckets (needed by serving)."""
    unseen = [f"new{i}" for i in range(50)]
    here = Vocabulary("v", oov_buckets=7).fit(np.array(["x"], dtype=object)).transform(np.array(unseen, dtype=object))
    code = (
        "import json, sys, numpy as np\n"
        "from tandem.features.transforms import Vocabulary\n"
        "v = Vocabulary('v', oov_buckets=7).fit(np.array(['x'], dtype=object))\n"
        "print(json.dumps(v.transform(np.array(json.loads(sys.argv[1]), dtype=object)).tolist()))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(unseen)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout) == here.tolist()


# ------------------------------------------------------------------------------------------ hashing


def test_hashing_puts_equal_values_in_equal_bins_within_range():
    """Hashing maps each value to one bin below num_bins, the same bin wherever it appears."""
    values = np.array([f"v{i % 30}" for i in range(300)], dtype=object)
    out = Hashing("h", num_bins=11).fit(values[:5]).transform(values)
    assert out.min() >= 0
    assert out.max() < 11
    for i in range(300):
        assert out[i] == out[i % 30]
    assert len(set(out.tolist())) > 5


# --------------------------------------------------------------------------------------- standardize


def test_standardize_uses_the_training_mean_and_population_deviation():
    """Values are standardised with the mean and deviation of the finite training values."""
    train = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]  # mean 5, population deviation 2
    transform = Standardize("x").fit(np.array([*train, np.nan]))
    assert transform.transform(np.array([5.0, 9.0, 1.0])).ravel().tolist() == [0.0, 2.0, -2.0]


def test_standardize_with_log_standardises_log1p():
    """With log, the standardised value is that of log1p(x), and negatives are clipped to 0 first."""
    train = [0.0, math.e - 1, math.e**2 - 1]  # log1p: 0, 1, 2
    transform = Standardize("x", log=True).fit(np.array(train))
    std = math.sqrt(2 / 3)
    got = transform.transform(np.array([math.e**2 - 1, -3.0])).ravel()
    np.testing.assert_allclose(got, [1 / std, -1 / std], rtol=1e-6)


def test_standardize_sends_missing_values_to_zero():
    """Missing or non-numeric values become 0 (the training mean)."""
    transform = Standardize("x").fit(np.array([1.0, 3.0]))
    assert transform.transform(np.array([np.nan, None, "n/a"], dtype=object)).ravel().tolist() == [0.0, 0.0, 0.0]


def test_standardize_of_a_constant_column_uses_scale_one():
    """A constant training column gives scale 1 instead of a division by zero."""
    transform = Standardize("x").fit(np.array([3.0, 3.0]))
    assert transform.scale_ == 1.0
    assert transform.transform(np.array([5.0])).ravel().tolist() == [2.0]


# ---------------------------------------------------------------------------------------- bucketize


def _linear_quantile(sorted_values: list[float], p: float) -> float:
    h = (len(sorted_values) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def test_bucket_boundaries_are_training_quantiles():
    """Boundaries are the training values' quantiles at 1/n, 2/n, … (n − 1)/n, missing values left out."""
    rng = np.random.default_rng(0)
    train = rng.exponential(10, size=101)
    values = sorted(train.tolist())
    transform = Bucketize("x", num_buckets=5).fit(np.concatenate([train, [np.nan]]))
    expected = [_linear_quantile(values, p) for p in (0.2, 0.4, 0.6, 0.8)]
    np.testing.assert_allclose(transform.boundaries_, expected, rtol=1e-12)
    assert transform.cardinality_ == 6


def test_bucket_index_counts_boundaries_at_or_below_the_value():
    """A value's bucket is 1 + the number of boundaries ≤ it; missing values go to bucket 0."""
    transform = Bucketize("x", num_buckets=4).fit(np.arange(1, 10, dtype=float))  # boundaries 3, 5, 7
    assert transform.boundaries_ == [3.0, 5.0, 7.0]
    values = [0.0, 3.0, 4.9, 5.0, 7.0, 100.0, np.nan]
    expected = [0 if math.isnan(v) else 1 + sum(1 for b in [3.0, 5.0, 7.0] if b <= v) for v in values]
    assert transform.transform(np.array(values)).tolist() == expected


def test_repeated_quantiles_merge_into_one_boundary():
    """When quantiles coincide (many equal values) each boundary appears once, so there are fewer buckets."""
    train = [1.0] * 90 + [2.0] * 10
    transform = Bucketize("x", num_buckets=10).fit(np.array(train))
    distinct = sorted({_linear_quantile(train, i / 10) for i in range(1, 10)})
    assert transform.boundaries_ == pytest.approx(distinct)
    assert len(transform.boundaries_) == 2
    assert transform.cardinality_ == 4


def test_bucketize_with_log_cuts_log1p_values():
    """With log, boundaries are quantiles of log1p of the training values."""
    train = np.array([0.0, 1.0, 3.0, 7.0, 15.0])  # log1p: 0, log 2, log 4, log 8, log 16
    transform = Bucketize("x", num_buckets=2, log=True).fit(train)
    assert transform.boundaries_ == pytest.approx([math.log(4)])


# --------------------------------------------------------------------------------------------- text


def test_text_vocabulary_counts_lower_cased_word_tokens():
    """Tokens are lower-cased runs of letters and digits, ranked by count then alphabetically."""
    train = np.array(["Red shoes", "red SHOES, size 9!", "blue hat"], dtype=object)
    transform = TextTokens("t").fit(train)
    assert transform.vocabulary_ == ["red", "shoes", "9", "blue", "hat", "size"]


def test_text_min_count_and_max_tokens_limit_the_vocabulary():
    """Tokens seen fewer than min_count times are dropped, and at most max_tokens are kept."""
    train = np.array(["a a a b b c", "b d d"], dtype=object)
    assert TextTokens("t", min_count=2).fit(train).vocabulary_ == ["a", "b", "d"]
    assert TextTokens("t", max_tokens=2).fit(train).vocabulary_ == ["a", "b"]


def test_text_rows_are_token_ids_padded_with_zero_and_unknown_tokens_are_one():
    """Known tokens map to 2 + their vocabulary position, unknown ones to 1, and rows pad with 0."""
    transform = TextTokens("t", max_length=4).fit(np.array(["red shoes", "red"], dtype=object))
    out = transform.transform(np.array(["Shoes RED", "red purple", "", None], dtype=object))
    assert out.tolist() == [[3, 2, 0, 0], [2, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_text_rows_are_cut_at_max_length():
    """Texts longer than max_length keep their first max_length tokens."""
    transform = TextTokens("t", max_length=3).fit(np.array(["a b c d e"], dtype=object))
    assert transform.transform(np.array(["e d c b a"], dtype=object)).tolist() == [[6, 5, 4]]


# ---------------------------------------------------------------------------------------- timestamp


def _naive_time_row(seconds: float, mean: float, scale: float) -> list[float]:
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    hour = 2 * math.pi * (moment.hour * 3600 + moment.minute * 60 + moment.second) / 86_400
    dow = 2 * math.pi * moment.weekday() / 7  # Monday is 0
    return [math.sin(hour), math.cos(hour), math.sin(dow), math.cos(dow), (seconds - mean) / scale]


def test_timestamp_features_are_hour_and_weekday_cycles_plus_standardised_time():
    """Each timestamp gives sin/cos of its hour of day, sin/cos of its weekday, and its standardised seconds."""
    rng = np.random.default_rng(0)
    train = rng.integers(0, 2_000_000_000, size=20).astype(float)
    mean = sum(train) / len(train)
    scale = math.sqrt(sum((t - mean) ** 2 for t in train) / len(train))
    values = [1_704_088_800.0, 0.0, 1_234_567_890.0, 1_700_000_000.0]  # 2024-01-01 06:00 UTC is a Monday
    out = TimeFeatures("t").fit(train).transform(np.array(values))
    expected = [_naive_time_row(s, mean, scale) for s in values]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[0, :4], [1.0, 0.0, 0.0, 1.0], atol=1e-6)


def test_timestamp_strings_and_epoch_seconds_give_the_same_features():
    """Date-time strings (read as UTC) are encoded exactly like the same moments given as epoch seconds."""
    strings = np.array(["2024-01-01 06:00:00", "2023-11-14 22:13:20", "2009-02-13 23:31:30"], dtype=object)
    seconds = np.array([1_704_088_800, 1_700_000_000, 1_234_567_890])
    from_strings = TimeFeatures("t").fit(strings)
    from_seconds = TimeFeatures("t").fit(seconds)
    assert from_strings.mean_ == pytest.approx(from_seconds.mean_)
    assert from_strings.scale_ == pytest.approx(from_seconds.scale_)
    np.testing.assert_allclose(from_strings.transform(strings), from_seconds.transform(seconds), atol=1e-6)


def test_datetime_values_give_the_same_features_as_epoch_seconds():
    """Datetime values (as DuckDB returns TIMESTAMP columns) are encoded like the same epoch seconds."""
    seconds = np.array([1_704_088_800, 1_700_000_000, 1_234_567_890])
    for unit in ("s", "ms", "us", "ns"):
        moments = seconds.astype("datetime64[s]").astype(f"datetime64[{unit}]")
        got = TimeFeatures("t").fit(moments).transform(moments)
        expected = TimeFeatures("t").fit(seconds).transform(seconds)
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=unit)


def test_missing_or_unreadable_timestamps_encode_as_zeros():
    """A missing or unparseable timestamp gives an all-zero row."""
    transform = TimeFeatures("t").fit(np.array(["2024-01-01 00:00:00", "2024-02-01 00:00:00"], dtype=object))
    out = transform.transform(np.array([None, "not a date"], dtype=object))
    assert out.tolist() == [[0.0] * 5, [0.0] * 5]
