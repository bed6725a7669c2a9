"""The feature pipeline of one tower: one fitted transform per configured feature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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
from tandem.spec import Feature


@dataclass(frozen=True)
class InputSpec:
    """What a tower needs to know about one encoded input: its kind and size."""

    name: str
    output: str  # "index", "bag" or "dense"
    size: int  # embedding rows (index, bag) or width (dense)
    embedding_dim: int  # 0 for dense inputs


def make_transform(feature: Feature) -> Transform:
    """The unfitted transform a feature spec asks for."""
    name = feature.feature_name
    match feature.transform:
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


def _column(frame: pd.DataFrame | dict[str, Any], name: str) -> pd.Series | np.ndarray:
    # A frame's column stays a Series: pandas' own string arrays factorise several times faster than
    # the object arrays that converting them to numpy would make.
    column = frame[name]
    return column if isinstance(column, pd.Series) else np.asarray(column)


class TowerFeatures:
    """The transforms of one tower's features, fitted together on the training split."""

    def __init__(self, columns: dict[str, str], transforms: list[Transform], dims: dict[str, int]) -> None:
        self.columns = columns  # feature name -> source column
        self.transforms = transforms
        self.dims = dims  # feature name -> embedding dim (embedded inputs only)

    @classmethod
    def from_spec(cls, features: list[Feature]) -> TowerFeatures:
        return cls(
            columns={f.feature_name: f.column for f in features},
            transforms=[make_transform(f) for f in features],
            dims={f.feature_name: getattr(f, "embedding_dim", 0) for f in features},
        )

    def fit(self, frame: pd.DataFrame) -> TowerFeatures:
        for t in self.transforms:
            t.fit(_column(frame, self.columns[t.name]))
        return self

    def transform(self, frame: pd.DataFrame | dict[str, Any]) -> dict[str, np.ndarray]:
        """Encode raw values (a frame of source columns) into arrays keyed by feature name."""
        return {t.name: t.transform(_column(frame, self.columns[t.name])) for t in self.transforms}

    def inputs(self) -> list[InputSpec]:
        specs = []
        for t in self.transforms:
            if t.output == "dense":
                specs.append(InputSpec(t.name, "dense", t.width_, 0))
            else:
                specs.append(InputSpec(t.name, t.output, t.cardinality_, self.dims[t.name]))
        return specs

    def get_state(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "dims": self.dims,
            "transforms": [t.get_state() for t in self.transforms],
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> TowerFeatures:
        return cls(data["columns"], [transform_from_state(t) for t in data["transforms"]], data["dims"])


__all__ = [
    "Bucketize",
    "Hashing",
    "InputSpec",
    "Standardize",
    "TextTokens",
    "TimeFeatures",
    "TowerFeatures",
    "Vocabulary",
    "make_transform",
]
