"""Train / validation / test splits: random (seeded), time-based, and per-buyer leave-last-out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tandem.errors import Problem, SpecError
from tandem.spec import SplitSpec

_BUYER, _TS, _PERIOD = "__buyer", "__ts", "__test_period"


def _random(n: int, split: SplitSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Like TensorFlow Recommenders' tutorial: one seeded shuffle, the first part trains, the rest tests.
    perm = np.random.default_rng(split.seed).permutation(n)
    n_test = round(n * split.test_fraction)
    n_fit = n - n_test
    n_val = round(n_fit * split.validation_fraction)
    return perm[: n_fit - n_val], perm[n_fit - n_val : n_fit], perm[n_fit:]


def cutoff_seconds(cutoff: str) -> int:
    """A cutoff as Unix seconds: an integer is taken as seconds, a date or time without a zone as UTC."""
    if cutoff.lstrip("-").isdigit():
        return int(cutoff)
    try:
        ts = pd.Timestamp(cutoff)
        return int((ts if ts.tzinfo is not None else ts.tz_localize("UTC")).timestamp())
    except ValueError:
        raise SpecError([Problem("data.split.cutoff", f"'{cutoff}' is not a date or timestamp")]) from None


def _time(
    ts: np.ndarray, split: SplitSpec, period: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if period is not None:  # aggregated data carries its side of the cutoff, decided per transaction line
        order = np.argsort(ts, kind="stable")
        fit = order[~period[order]]
        n_val = round(len(fit) * split.validation_fraction)
        return np.sort(fit[: len(fit) - n_val]), np.sort(fit[len(fit) - n_val :]), np.flatnonzero(period)
    if split.cutoff is not None:
        cutoff = cutoff_seconds(split.cutoff)
    else:
        cutoff = int(np.quantile(ts, 1.0 - split.test_fraction, method="higher"))
    order = np.argsort(ts, kind="stable")
    fit = order[ts[order] < cutoff]
    test = np.sort(order[ts[order] >= cutoff])
    n_val = round(len(fit) * split.validation_fraction)
    return np.sort(fit[: len(fit) - n_val]), np.sort(fit[len(fit) - n_val :]), test


def _leave_last_out(buyers: np.ndarray, ts: np.ndarray, split: SplitSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Each buyer's latest interaction is tested (when they have at least two); with validation on, the one
    # before it is validated (when they have at least three). Ties in time are broken by row order.
    codes = pd.factorize(buyers)[0]
    order = np.lexsort((np.arange(len(ts)), ts, codes))
    sorted_codes = codes[order]
    counts = np.bincount(codes)
    pos_from_end = np.empty(len(order), dtype=np.int64)
    ends = np.cumsum(counts)
    pos_from_end[:] = ends[sorted_codes] - 1 - np.arange(len(order))
    n_rows = counts[sorted_codes]
    is_test = (pos_from_end == 0) & (n_rows >= 2)
    is_val = (pos_from_end == 1) & (n_rows >= 3) & (split.validation_fraction > 0)
    test = np.sort(order[is_test])
    val = np.sort(order[is_val])
    train = np.sort(order[~is_test & ~is_val])
    return train, val, test


def split_rows(
    frame: pd.DataFrame, split: SplitSpec, report: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train, validation and test; raises SpecError when train or test ends up empty."""
    if split.kind == "random":
        train, val, test = _random(len(frame), split)
    elif split.kind == "time":
        period = frame[_PERIOD].to_numpy(bool) if _PERIOD in frame else None
        train, val, test = _time(frame[_TS].to_numpy(np.int64), split, period)
    else:
        train, val, test = _leave_last_out(frame[_BUYER].to_numpy(), frame[_TS].to_numpy(np.int64), split)
    report.update(train_rows=len(train), validation_rows=len(val), test_rows=len(test))
    problems = []
    if len(test) == 0:
        problems.append(Problem("data.split", f"the {split.kind} split leaves no test rows out of {len(frame)}"))
    if len(train) == 0:
        problems.append(Problem("data.split", f"the {split.kind} split leaves no training rows out of {len(frame)}"))
    if split.validation_fraction > 0 and len(val) == 0:
        problems.append(
            Problem(
                "data.split.validation_fraction",
                "the split leaves no validation rows; raise the fraction or sample more data",
            )
        )
    if problems:
        raise SpecError(problems)
    return train, val, test
