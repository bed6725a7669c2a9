"""Feature transforms with scikit-learn's contract: `__init__` stores parameters, `fit` learns state
(attributes ending in `_`) from the training split only, `transform` applies it, and the state saves and
loads as plain JSON so serving runs exactly the training code.

Every transform produces one of three kinds of output:

- ``index``: int64 ``[n]`` indices into an embedding table of ``cardinality_`` rows;
- ``bag``: int64 ``[n, max_length]`` token indices, 0 meaning padding;
- ``dense``: float32 ``[n, width_]`` values fed to the tower as they are.
"""

from __future__ import annotations

import re
import zlib
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tandem.errors import NotFittedError

_MISSING = "\x00missing"


def _factorize(values: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes [n], canonical strings of the distinct values): transforms then work once per distinct value.

    Canonical form: 42, 42.0 from an int column and "42" all become "42"; missing values become one marker.
    """
    series = (
        values if isinstance(values, pd.Series) else pd.Series(values, dtype=object if values.dtype == object else None)
    )
    codes, uniques = pd.factorize(series)
    canonical = np.array([_canonical(u) for u in uniques] + [_MISSING], dtype=object)
    return np.where(codes < 0, len(canonical) - 1, codes), canonical


def _canonical(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return _MISSING
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _as_input(values: np.ndarray | pd.Series | list) -> np.ndarray | pd.Series:
    """Series pass through (pandas' string arrays are fast to factorise); anything else becomes an array."""
    return values.reset_index(drop=True) if isinstance(values, pd.Series) else np.asarray(values)


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (Python's own `hash` of a str is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def _as_float(values: np.ndarray, name: str) -> np.ndarray:
    try:
        return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"feature '{name}' expects numbers") from None


class Transform:
    """Base class: subclasses set `output`, implement `_fit` and `_transform`, and list `params`."""

    output: ClassVar[str]
    params: ClassVar[tuple[str, ...]] = ()
    state: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str) -> None:
        self.name = name

    def fit(self, values: np.ndarray) -> Transform:
        """Learn state from training values; returns self."""
        for attr in self.state:
            self.__dict__.pop(attr, None)
        self._fit(_as_input(values))
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Apply the fitted state; raises NotFittedError before `fit`."""
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} for feature '{self.name}' is not fitted yet; call 'fit' first")
        return self._transform(_as_input(values))

    def fit_transform(self, values: np.ndarray) -> np.ndarray:
        return self.fit(values).transform(values)

    @property
    def is_fitted(self) -> bool:
        return all(hasattr(self, attr) for attr in self.state)

    def get_feature_names_out(self) -> list[str]:
        width = getattr(self, "width_", 1)
        return [self.name] if width == 1 else [f"{self.name}_{i}" for i in range(width)]

    def get_state(self) -> dict[str, Any]:
        """Parameters and fitted state as JSON-ready data."""
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} for feature '{self.name}' is not fitted yet; call 'fit' first")
        return {
            "kind": type(self).kind,
            "name": self.name,
            "params": {p: getattr(self, p) for p in self.params},
            "state": {s: _jsonable(getattr(self, s)) for s in self.state},
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Transform:
        obj = cls(data["name"], **data["params"])
        for key, value in data["state"].items():
            setattr(obj, key, value)
        obj._restore()
        return obj

    def _restore(self) -> None:
        """Rebuild derived lookup structures after `from_state`."""

    kind: ClassVar[str]

    def _fit(self, values: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _fit")

    def _transform(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement _transform")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class Vocabulary(Transform):
    """Ids and categories: a vocabulary of values seen at least `min_count` times (at most `max_vocab`, most
    frequent first), plus `oov_buckets` rows that unseen values hash into.

    Index layout: ``[0, oov_buckets)`` out-of-vocabulary buckets, then the vocabulary.
    """

    kind = "vocabulary"
    output = "index"
    params = ("min_count", "oov_buckets", "max_vocab")
    state = ("vocabulary_",)

    def __init__(self, name: str, *, min_count: int = 1, oov_buckets: int = 1, max_vocab: int | None = None) -> None:
        super().__init__(name)
        self.min_count = min_count
        self.oov_buckets = oov_buckets
        self.max_vocab = max_vocab

    def _fit(self, values: np.ndarray) -> None:
        codes, canonical = _factorize(values)
        counts = pd.Series(np.bincount(codes, minlength=len(canonical)), index=canonical).groupby(level=0).sum()
        counts = counts[(counts >= self.min_count) & (counts.index != _MISSING)]
        # Most frequent first, ties by value, so the vocabulary is the same whatever the row order.
        frame = counts.rename("n").reset_index().sort_values(["n", "index"], ascending=[False, True], kind="stable")
        vocab = frame["index"].tolist()
        self.vocabulary_ = vocab[: self.max_vocab] if self.max_vocab else vocab
        self._restore()

    def _restore(self) -> None:
        self._index = pd.Index(self.vocabulary_)

    @property
    def cardinality_(self) -> int:
        return self.oov_buckets + len(self.vocabulary_)

    def _transform(self, values: np.ndarray) -> np.ndarray:
        codes, canonical = _factorize(values)
        idx = self._index.get_indexer(canonical).astype(np.int64)
        unseen = idx < 0
        idx[~unseen] += self.oov_buckets
        idx[unseen] = [stable_hash(u) % self.oov_buckets for u in canonical[unseen]]
        return idx[codes]


class Hashing(Transform):
    """Values hashed into `num_bins` rows: no vocabulary, so nothing grows with the data."""

    kind = "hashing"
    output = "index"
    params = ("num_bins",)
    state = ("num_bins_",)

    def __init__(self, name: str, *, num_bins: int = 1024) -> None:
        super().__init__(name)
        self.num_bins = num_bins

    def _fit(self, values: np.ndarray) -> None:
        self.num_bins_ = self.num_bins

    @property
    def cardinality_(self) -> int:
        return self.num_bins_

    def _transform(self, values: np.ndarray) -> np.ndarray:
        codes, canonical = _factorize(values)
        hashed = np.array([stable_hash(u) % self.num_bins_ for u in canonical], dtype=np.int64)
        return hashed[codes]


def _numbers(values: np.ndarray, name: str, log: bool) -> np.ndarray:
    """Values as floats (unparseable → NaN), as log1p of their non-negative part when `log`."""
    x = _as_float(values, name)
    return np.log1p(np.clip(x, 0, None)) if log else x


def _mean_and_scale(x: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the finite values; a scale of 1 where they do not vary."""
    x = x[np.isfinite(x)]
    mean = float(x.mean()) if len(x) else 0.0
    std = float(x.std()) if len(x) else 0.0
    return mean, (std if std > 0 else 1.0)


class Standardize(Transform):
    """A number standardised with the training mean and deviation (of log1p when `log`); missing → 0."""

    kind = "standardize"
    output = "dense"
    params = ("log",)
    state = ("mean_", "scale_")
    width_ = 1

    def __init__(self, name: str, *, log: bool = False) -> None:
        super().__init__(name)
        self.log = log

    def _fit(self, values: np.ndarray) -> None:
        self.mean_, self.scale_ = _mean_and_scale(_numbers(values, self.name, self.log))

    def _transform(self, values: np.ndarray) -> np.ndarray:
        z = (_numbers(values, self.name, self.log) - self.mean_) / self.scale_
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32).reshape(-1, 1)


class Bucketize(Transform):
    """A number cut at training quantiles into at most `num_buckets` buckets; index 0 holds missing values."""

    kind = "bucketize"
    output = "index"
    params = ("num_buckets", "log")
    state = ("boundaries_",)

    def __init__(self, name: str, *, num_buckets: int = 10, log: bool = False) -> None:
        super().__init__(name)
        self.num_buckets = num_buckets
        self.log = log

    def _fit(self, values: np.ndarray) -> None:
        x = _numbers(values, self.name, self.log)
        x = x[np.isfinite(x)]
        qs = np.quantile(x, np.linspace(0, 1, self.num_buckets + 1)[1:-1]) if len(x) else np.array([])
        self.boundaries_ = np.unique(qs).tolist()

    @property
    def cardinality_(self) -> int:
        return len(self.boundaries_) + 2

    def _transform(self, values: np.ndarray) -> np.ndarray:
        x = _numbers(values, self.name, self.log)
        idx = np.searchsorted(np.asarray(self.boundaries_, dtype=np.float64), x, side="right") + 1
        idx[~np.isfinite(x)] = 0
        return idx.astype(np.int64)


_TOKEN = re.compile(r"[^\W_]+")  # runs of letters and digits, accented letters included


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class TextTokens(Transform):
    """Free text as a bag of word tokens: index 0 pads, 1 is any unseen token, then the vocabulary."""

    kind = "text"
    output = "bag"
    params = ("max_tokens", "min_count", "max_length")
    state = ("vocabulary_",)

    def __init__(self, name: str, *, max_tokens: int = 20_000, min_count: int = 1, max_length: int = 16) -> None:
        super().__init__(name)
        self.max_tokens = max_tokens
        self.min_count = min_count
        self.max_length = max_length

    def _fit(self, values: np.ndarray) -> None:
        codes, canonical = _factorize(values)
        totals: dict[str, int] = {}
        for text, n in zip(canonical, np.bincount(codes, minlength=len(canonical)), strict=True):
            if text == _MISSING:
                continue
            for token in tokenize(text):
                totals[token] = totals.get(token, 0) + int(n)
        ranked = sorted((t for t, n in totals.items() if n >= self.min_count), key=lambda t: (-totals[t], t))
        self.vocabulary_ = ranked[: self.max_tokens]
        self._restore()

    def _restore(self) -> None:
        self._lookup = {t: i + 2 for i, t in enumerate(self.vocabulary_)}

    @property
    def cardinality_(self) -> int:
        return len(self.vocabulary_) + 2

    def _transform(self, values: np.ndarray) -> np.ndarray:
        codes, canonical = _factorize(values)
        table = np.zeros((len(canonical), self.max_length), dtype=np.int64)
        for row, text in enumerate(canonical):
            if text == _MISSING:
                continue
            ids = [self._lookup.get(t, 1) for t in tokenize(text)][: self.max_length]
            table[row, : len(ids)] = ids
        return table[codes]


class TimeFeatures(Transform):
    """A timestamp as hour-of-day and day-of-week cycles (sin, cos) plus its standardised position in time."""

    kind = "timestamp"
    output = "dense"
    state = ("mean_", "scale_")
    width_ = 5

    def _seconds(self, values: np.ndarray) -> np.ndarray:
        series = pd.Series(values)
        if pd.api.types.is_numeric_dtype(series):
            return series.to_numpy(dtype=np.float64)
        parsed = pd.to_datetime(series, errors="coerce", utc=True)
        # Divide by a timedelta rather than read int64 ticks: pandas 3 keeps each column's own unit (s, ms, us, ns).
        seconds = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        return seconds.to_numpy(dtype=np.float64, na_value=np.nan)

    def _fit(self, values: np.ndarray) -> None:
        self.mean_, self.scale_ = _mean_and_scale(self._seconds(values))

    def _transform(self, values: np.ndarray) -> np.ndarray:
        s = self._seconds(values)
        ok = np.isfinite(s)
        s = np.where(ok, s, self.mean_)
        hour = 2 * np.pi * ((s % 86_400) / 86_400)
        dow = 2 * np.pi * (((s // 86_400) + 3) % 7) / 7  # 1970-01-01 was a Thursday: shift so Monday is 0
        out = np.stack([np.sin(hour), np.cos(hour), np.sin(dow), np.cos(dow), (s - self.mean_) / self.scale_], axis=1)
        out[~ok] = 0.0
        return out.astype(np.float32)


TRANSFORMS: dict[str, type[Transform]] = {
    cls.kind: cls for cls in (Vocabulary, Hashing, Standardize, Bucketize, TextTokens, TimeFeatures)
}


def transform_from_state(data: dict[str, Any]) -> Transform:
    """Rebuild a fitted transform saved with `get_state`."""
    return TRANSFORMS[data["kind"]].from_state(data)
