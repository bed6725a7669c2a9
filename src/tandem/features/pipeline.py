"""The feature pipeline of one tower: one fitted transform per configured feature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tandem.data.prepare import ORDERS, TS, Interactions
from tandem.features.history import WEIGHTS_SUFFIX, HistoryBag
from tandem.features.transforms import (
    Bucketize,
    Hashing,
    Standardize,
    TextTokens,
    TimeFeatures,
    Transform,
    Vocabulary,
    transform_from_state,
)
from tandem.spec import ExperimentSpec, Feature


@dataclass(frozen=True)
class InputSpec:
    """What a tower needs to know about one encoded input: its kind and size."""

    name: str
    output: str  # "index", "bag", "weighted_bag" or "dense"
    size: int  # embedding rows (index, bag, weighted_bag) or width (dense)
    embedding_dim: int  # 0 for dense inputs
    shares: str | None = None  # weighted_bag: the product feature whose embedding table it pools

    @property
    def tensors(self) -> list[str]:
        """The encoded arrays this input reads: a weighted bag reads its rows and their weights."""
        return [self.name, self.name + WEIGHTS_SUFFIX] if self.output == "weighted_bag" else [self.name]


def make_transform(feature: Feature) -> Transform:
    """The unfitted transform a feature spec asks for."""
    name = feature.feature_name
    match feature.transform:
        case "history":
            return HistoryBag(
                name,
                column=feature.column,
                count_column=feature.count_column,
                weighting=feature.weighting,
                half_life_days=feature.half_life_days,
                max_items=feature.max_items,
                leave_out_target=feature.leave_out_target,
            )
        case "id" | "categorical":
            return Vocabulary(
                name, min_count=feature.min_count, oov_buckets=feature.oov_buckets, max_vocab=feature.max_vocab
            )
        case "hashing":
            return Hashing(name, num_bins=feature.num_bins)
        case "numeric":
            return Standardize(name, log=feature.log)
        case "bucketize":
            return Bucketize(name, num_buckets=feature.num_buckets, log=feature.log)
        case "text":
            return TextTokens(
                name, max_tokens=feature.max_tokens, min_count=feature.min_count, max_length=feature.max_length
            )
        case "timestamp":
            return TimeFeatures(name)
    raise ValueError(f"unknown transform '{feature.transform}'")


def _column(frame: pd.DataFrame | dict[str, Any], name: str, rows: np.ndarray | None = None) -> pd.Series | np.ndarray:
    """A column, or only its `rows` of a frame: one column is copied at a time, never all the frame's rows.

    A frame's column stays a Series: pandas' own string arrays factorise several times faster than the object
    arrays that converting them to numpy would make."""
    column = frame[name] if rows is None else frame[name].iloc[rows]
    return column if isinstance(column, pd.Series) else np.asarray(column)


def _history_rows(frame: pd.DataFrame, rows: np.ndarray, bag: HistoryBag, key: str) -> pd.DataFrame:
    """The columns a history bag learns from, for `rows`: buyer, value, orders and time (NaN without a timestamp).

    Orders come from the bag's count column, else from the distinct orders of each aggregated pair, else 1 a row.
    """
    n = len(rows)
    orders = bag.count_column or ORDERS
    return pd.DataFrame(
        {
            "buyer": _column(frame, key, rows),
            "value": _column(frame, bag.column, rows),
            "orders": frame[orders].to_numpy(np.float64)[rows] if orders in frame else np.ones(n),
            "time": frame[TS].to_numpy(np.float64)[rows] if TS in frame else np.full(n, np.nan),
        }
    )


class TowerFeatures:
    """The transforms of one tower's features, fitted together on the training split.

    A buyer tower's history bags read the buyer id column (`columns`) and pool rows of a product feature's
    table (`shares`: feature name → product feature name), so they are fitted with the product pipeline at hand.
    """

    def __init__(
        self,
        columns: dict[str, str],
        transforms: list[Transform],
        dims: dict[str, int],
        shares: dict[str, str] | None = None,
    ) -> None:
        self.columns = columns  # feature name -> source column
        self.transforms = transforms
        self.dims = dims  # feature name -> embedding dim (embedded inputs only)
        self.shares = shares or {}

    @classmethod
    def from_spec(cls, features: list[Feature], key: str | None = None) -> TowerFeatures:
        """The unfitted pipeline; `key` is the buyer id column that history bags are looked up by."""
        return cls(
            columns={f.feature_name: key if f.transform == "history" else f.column for f in features},
            transforms=[make_transform(f) for f in features],
            dims={f.feature_name: getattr(f, "embedding_dim", 0) for f in features},
        )

    def fit(self, frame: pd.DataFrame, rows: np.ndarray, shared: TowerFeatures | None = None) -> TowerFeatures:
        """Fit every transform on the training `rows` of `frame`; history bags need the fitted product pipeline
        `shared`."""
        for t in self.transforms:
            if isinstance(t, HistoryBag):
                source = shared.transform_of_column(t.column)
                t.fit(_history_rows(frame, rows, t, self.columns[t.name]), source)
                self.shares[t.name] = source.name
                self.dims[t.name] = shared.dims[source.name]
            else:
                t.fit(_column(frame, self.columns[t.name], rows))
        return self

    def transform_of_column(self, column: str) -> Vocabulary:
        """The id or categorical transform of a source column (what a history bag shares)."""
        for t in self.transforms:
            if self.columns[t.name] == column and isinstance(t, Vocabulary):
                return t
        raise ValueError(f"no id or categorical feature reads the column '{column}'")

    def transform(self, frame: pd.DataFrame | dict[str, Any]) -> dict[str, np.ndarray]:
        """Encode raw values (a frame of source columns) into arrays keyed by feature name (a weighted bag gives
        two: its rows under its name and their weights under name + WEIGHTS_SUFFIX)."""
        out = {}
        for t in self.transforms:
            encoded = t.transform(_column(frame, self.columns[t.name]))
            if t.output == "weighted_bag":
                out[t.name], out[t.name + WEIGHTS_SUFFIX] = encoded
            else:
                out[t.name] = encoded
        return out

    def own_history(
        self, frame: pd.DataFrame, rows: np.ndarray, product_column: str, shared: TowerFeatures
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """For each history bag that leaves targets out: each of `rows`' (the training rows') own (table row,
        weight) in its buyer's bag.

        product_column: the column of each row's product id; shared: the fitted product pipeline.
        """
        out = {}
        for t in self.transforms:
            if isinstance(t, HistoryBag) and t.leave_out_target != "none":
                bag_rows = _history_rows(frame, rows, t, self.columns[t.name])
                bag_rows = bag_rows.assign(product=frame[product_column].to_numpy()[rows])
                index = shared.transform_of_column(t.column).transform(_column(frame, t.column, rows))
                out[t.name] = t.own_contributions(bag_rows, index)
        return out

    def inputs(self) -> list[InputSpec]:
        specs = []
        for t in self.transforms:
            if t.output == "dense":
                specs.append(InputSpec(t.name, "dense", t.width_, 0))
            else:
                specs.append(InputSpec(t.name, t.output, t.cardinality_, self.dims[t.name], self.shares.get(t.name)))
        return specs

    def get_state(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "dims": self.dims,
            "shares": self.shares,
            "transforms": [t.get_state() for t in self.transforms],
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> TowerFeatures:
        transforms = [
            HistoryBag.from_state(t) if t["kind"] == HistoryBag.kind else transform_from_state(t)
            for t in data["transforms"]
        ]
        return cls(data["columns"], transforms, data["dims"], data.get("shares"))


__all__ = [
    "Bucketize",
    "Hashing",
    "HistoryBag",
    "InputSpec",
    "Standardize",
    "TextTokens",
    "TimeFeatures",
    "TowerFeatures",
    "Vocabulary",
    "make_transform",
]


def fit_features(spec: ExperimentSpec, data: Interactions) -> tuple[TowerFeatures, TowerFeatures]:
    """Fit the product pipeline, then the buyer pipeline (whose history bags share product tables), on the
    training rows only."""
    frame, train = data.frame, data.train
    product = TowerFeatures.from_spec(spec.features.product).fit(frame, train)
    buyer = TowerFeatures.from_spec(spec.features.buyer, key=spec.data.buyer_id).fit(frame, train, shared=product)
    return buyer, product
