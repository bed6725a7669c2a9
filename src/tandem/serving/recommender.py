"""Retrieve, rank and recommend for raw buyer features: the serving logic as plain functions over a `Bundle`.

A request's buyer features go through the fitted training pipeline (`TowerFeatures.transform`), then the query
tower graph. Buyers whose id the model never saw follow one stated policy:

- when the request also carries any of the buyer's other features, the model serves them: the unknown id takes
  its out-of-vocabulary row and the other features carry the signal (`"fallback": "other_features"`);
- when it carries nothing else, the buyer is cold: retrieval answers with the most popular products
  (`"fallback": "popularity"`, scores are training counts) and ranking scores the products for the average training
  buyer (`"fallback": "average_buyer"`).

Every result names the id columns it did not know (`"unknown_features"`) whenever a fallback was used.

A bundle with a second stage recommends to the buyers it knows (by the buyer id) with `TwoStage.ranked`, the
lists the evaluation scored (`"stage": "two_stage"`, with the ranker's scores; null for the popular products
that fill a short list); every other buyer gets the first stage's answer above
(`"stage": "first_stage"`). A baseline model's bundle (buy_again, ease) retrieves and recommends its lists to the
buyers it knows (no scores) and the most popular products to the others (`"fallback": "popularity"`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tandem.bundle_format import RANKING, RETRIEVAL, TWO_STAGE
from tandem.serving.bundle import Bundle
from tandem.serving.errors import RequestError
from tandem.serving.index import Hits


@dataclass
class EncodedBuyers:
    """Buyers as the model sees them: query embeddings [n, d], the id columns each did not know, who is cold."""

    queries: np.ndarray
    unknown: list[list[str]]
    cold: np.ndarray  # [n] bool: an unknown id and no other feature to serve from

    def fallback(self, i: int, cold_label: str) -> str | None:
        if not self.unknown[i]:
            return None
        return cold_label if self.cold[i] else "other_features"

    def ranking_queries(self, average: np.ndarray) -> np.ndarray:
        """Query embeddings with each cold buyer's replaced by the average training buyer's."""
        if not self.cold.any():
            return self.queries
        queries = self.queries.copy()
        queries[self.cold] = average
        return queries


def _require(bundle: Bundle, signature: str) -> None:
    if signature not in bundle.manifest.signatures:
        have = ", ".join(bundle.manifest.signatures) or "none"
        raise RequestError(
            404,
            "no_signature",
            f"this {bundle.manifest.model_type} bundle has no '{signature}' signature (it has: {have})",
        )


def buyers_to_columns(bundle: Bundle, buyers: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Request buyers (dicts of source column → raw value) as columns; a key the model does not read is a 422.

    Missing keys are missing values. Each column gets the dtype pandas infers, as when training read its files,
    so that e.g. integer timestamps are seconds in both places.
    """
    known = set(bundle.buyer_columns)
    extra = sorted({key for buyer in buyers for key in buyer} - known)
    if extra:
        raise RequestError(
            422,
            "unknown_buyer_feature",
            f"unknown buyer feature(s) {', '.join(map(repr, extra))}; this model reads: {', '.join(sorted(known))}",
            {"buyer": f"unknown keys: {', '.join(extra)}"},
        )
    return {c: pd.Series([buyer.get(c) for buyer in buyers]).to_numpy() for c in bundle.buyer_columns}


def encode_columns(bundle: Bundle, columns: dict[str, np.ndarray], n: int) -> EncodedBuyers:
    """Encode n buyers given as raw columns (absent columns are missing values) and run the query tower."""
    features = bundle.buyer_features
    frame = {c: columns[c] if c in columns else np.full(n, None, dtype=object) for c in bundle.buyer_columns}
    try:
        encoded = features.transform(frame)
    except (TypeError, ValueError) as e:
        raise RequestError(422, "invalid_feature_value", f"the buyer features could not be encoded: {e}") from None
    queries = bundle.embed_queries(encoded)
    transforms = {t.name: t for t in features.transforms}
    id_features = bundle.manifest.id_features
    unknown_masks = {name: encoded[name] < transforms[name].oov_buckets for name in id_features}
    # A history bag is looked up by the buyer id, so it is no other feature to serve an unknown id from.
    others = {
        features.columns[name] for name, t in transforms.items() if name not in id_features and t.kind != "history"
    }
    present = np.zeros(n, dtype=bool)
    for column in others:
        present |= ~pd.isna(frame[column])
    unknown = [[features.columns[name] for name in id_features if unknown_masks[name][i]] for i in range(n)]
    cold = np.array([bool(u) for u in unknown], dtype=bool) & ~present
    return EncodedBuyers(queries=queries, unknown=unknown, cold=cold)


def encode_buyers(bundle: Bundle, buyers: list[dict[str, Any]]) -> EncodedBuyers:
    """Encode request buyers (dicts of raw values) and run the query tower."""
    return encode_columns(bundle, buyers_to_columns(bundle, buyers), len(buyers))


def exclusion_rows(bundle: Bundle, exclude: list[list[Any]]) -> list[np.ndarray]:
    """Catalog rows to exclude per buyer; ids not in the catalog cannot be retrieved anyway and are ignored."""
    out = []
    for ids in exclude:
        rows = bundle.products.rows(ids)
        out.append(np.unique(rows[rows >= 0]))
    return out


def popular(bundle: Bundle, k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(training counts, catalog rows) of the k most bought products outside `exclude`: the cold fallback."""
    rows = bundle.popular_rows[: k + len(exclude)]
    if len(exclude):
        rows = rows[~np.isin(rows, exclude)]
    rows = rows[:k]
    return bundle.train_counts[rows].astype(np.float32), rows


def search(bundle: Bundle, buyers: EncodedBuyers, k: int, exclude: list[np.ndarray]) -> Hits:
    """Top-k catalog rows per buyer through the bundle's index, or by popularity for cold buyers."""
    _require(bundle, RETRIEVAL)
    warm = np.flatnonzero(~buyers.cold)
    hits: Hits = [(np.zeros(0, np.float32), np.zeros(0, np.int64))] * len(buyers.cold)
    if len(warm):
        found = bundle.index.search(buyers.queries[warm], k, [exclude[i] for i in warm])
        for i, hit in zip(warm, found, strict=True):
            hits[i] = hit
    for i in np.flatnonzero(buyers.cold):
        hits[i] = popular(bundle, k, exclude[i])
    return hits


def predict(bundle: Bundle, queries: np.ndarray, rows: list[np.ndarray]) -> list[np.ndarray]:
    """Rating-head predictions of each buyer's catalog rows, in the given order. queries: [n, d]."""
    _require(bundle, RANKING)
    lengths = [len(r) for r in rows]
    if sum(lengths) == 0:
        return [np.zeros(0, np.float32) for _ in rows]
    pairs_query = np.repeat(np.arange(len(rows)), lengths)
    flat = np.concatenate(rows)
    predictions = bundle.rate(queries[pairs_query], bundle.candidates[flat])
    return np.split(predictions, np.cumsum(lengths)[:-1])


def _floats(values: np.ndarray) -> list[float | None]:
    """JSON-ready floats: a non-finite value (a diverged model) becomes null rather than invalid JSON."""
    if np.isfinite(values).all():
        return values.tolist()
    return [float(v) if np.isfinite(v) else None for v in values]


def _result(body: dict[str, Any], buyers: EncodedBuyers, i: int, cold_label: str) -> dict[str, Any]:
    fallback = buyers.fallback(i, cold_label)
    body["fallback"] = fallback
    if fallback is not None:
        body["unknown_features"] = buyers.unknown[i]
    return body


def retrieve(bundle: Bundle, buyers: list[dict[str, Any]], k: int, exclude: list[list[Any]]) -> list[dict[str, Any]]:
    """The `serving_default` signature: top-k product ids and scores per buyer, best first.

    exclude: one list of product ids per buyer, left out of that buyer's results.
    """
    _require(bundle, RETRIEVAL)
    if not bundle.has_towers:
        return _baseline_results(bundle, buyers, k, exclude)
    encoded = encode_buyers(bundle, buyers)
    hits = search(bundle, encoded, k, exclusion_rows(bundle, exclude))
    return [
        _result({"product_ids": bundle.product_ids[rows].tolist(), "scores": _floats(scores)}, encoded, i, "popularity")
        for i, (scores, rows) in enumerate(hits)
    ]


def catalog_rows(bundle: Bundle, product_ids: list[list[Any]]) -> list[np.ndarray]:
    """Catalog rows of each buyer's product ids; any id not in the catalog is a 422 that names it."""
    out = []
    for b, ids in enumerate(product_ids):
        rows = bundle.products.rows(ids)
        missing = [ids[j] for j in np.flatnonzero(rows < 0)]
        if missing:
            where = f"product_ids[{b}]" if len(product_ids) > 1 else "product_ids"
            shown = ", ".join(map(repr, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise RequestError(422, "unknown_product", f"unknown product id(s) in {where}: {shown}", {where: shown})
        out.append(rows)
    return out


def rank(bundle: Bundle, buyers: list[dict[str, Any]], product_ids: list[list[Any]]) -> list[dict[str, Any]]:
    """The `serve_ranking` signature: a prediction per (buyer, product id), in the request's order."""
    _require(bundle, RANKING)
    rows = catalog_rows(bundle, product_ids)
    encoded = encode_buyers(bundle, buyers)
    predictions = predict(bundle, encoded.ranking_queries(bundle.average_query), rows)
    return [_result({"predictions": _floats(p)}, encoded, i, "average_buyer") for i, p in enumerate(predictions)]


def listed_rows(
    bundle: Bundle, buyer_ids: list[Any] | np.ndarray, k: int, exclude: list[np.ndarray], new_only: bool = False
) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Each buyer's (scores, top-k catalog rows) from the bundle's lists (its second stage or baseline), best
    first, for the buyers they know by id; None for the others (all of them in a bundle without such lists).
    Scores are the second stage's ranker scores, NaN for its popular fill and for a baseline's lists.
    exclude: catalog rows to leave out per buyer; new_only: the lists of products the buyer never bought (the
    ones the explore metrics score)."""
    if bundle.lists is None or bundle.buyers is None:
        return [None] * len(buyer_ids)
    codes = bundle.buyers.rows(np.asarray(buyer_ids, dtype=object))
    known = np.flatnonzero(codes >= 0)
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(buyer_ids)
    if len(known):
        # A longer list, then the exclusions taken out: a list's first k are the same whatever its length.
        longest = k + max(len(exclude[i]) for i in known)
        lists, scores = bundle.lists.ranked(codes[known], longest, explore=new_only)
        for i, rows, score in zip(known, lists, scores, strict=True):
            kept = (rows >= 0) & ~np.isin(rows, exclude[i])
            out[i] = (score[kept][:k], rows[kept][:k])
    return out


def _listed(
    bundle: Bundle, buyers: list[dict[str, Any]], k: int, exclude: list[list[Any]], new_only: bool = False
) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """`listed_rows` of request buyers, found by the spec's buyer id column (unknown keys are refused first)."""
    columns = buyers_to_columns(bundle, buyers)
    key = bundle.manifest.spec["data"]["buyer_id"]
    ids = columns.get(key, [None] * len(buyers))
    return listed_rows(bundle, ids, k, exclusion_rows(bundle, exclude), new_only)


def _baseline_results(
    bundle: Bundle, buyers: list[dict[str, Any]], k: int, exclude: list[list[Any]], new_only: bool = False
) -> list[dict[str, Any]]:
    """A baseline model's answers: its lists for the buyers it knows, the most popular products for the others."""
    key = bundle.manifest.spec["data"]["buyer_id"]
    results = []
    listed = _listed(bundle, buyers, k, exclude, new_only)
    for hit, excluded in zip(listed, exclusion_rows(bundle, exclude), strict=True):
        if hit is not None:
            results.append({"product_ids": bundle.product_ids[hit[1]].tolist(), "scores": None, "fallback": None})
        else:
            scores, rows = popular(bundle, k, excluded)
            body = {"product_ids": bundle.product_ids[rows].tolist(), "scores": _floats(scores)}
            results.append({**body, "fallback": "popularity", "unknown_features": [key]})
    return results


def _first_stage(
    bundle: Bundle, buyers: list[dict[str, Any]], k: int, exclude: list[np.ndarray], candidates: int | None
) -> list[dict[str, Any]]:
    """Retrieve `candidates` products and keep the k the rating head predicts highest; a bundle without a rating
    head (it has a second stage) answers with its retrieval, one without retrieval with the most popular."""
    if not buyers:
        return []
    if not bundle.has_retrieval:
        hits = [popular(bundle, k, rows) for rows in exclude]
        return [
            {"product_ids": bundle.product_ids[r].tolist(), "scores": _floats(s), "fallback": "popularity"}
            for s, r in hits
        ]
    encoded = encode_buyers(bundle, buyers)
    if not bundle.has_ranking:
        hits = search(bundle, encoded, k, exclude)
        return [
            _result({"product_ids": bundle.product_ids[r].tolist(), "scores": _floats(s)}, encoded, i, "popularity")
            for i, (s, r) in enumerate(hits)
        ]
    pool = max(k, candidates or bundle.manifest.candidate_pool)
    hits = search(bundle, encoded, pool, exclude)
    predictions = predict(bundle, encoded.ranking_queries(bundle.average_query), [rows for _, rows in hits])
    results = []
    for i, ((scores, rows), p) in enumerate(zip(hits, predictions, strict=True)):
        best = np.argsort(-p, kind="stable")[:k]
        body = {
            "product_ids": bundle.product_ids[rows[best]].tolist(),
            "predictions": _floats(p[best]),
            "scores": _floats(scores[best]),
        }
        results.append(_result(body, encoded, i, "popularity"))
    return results


def recommend(
    bundle: Bundle,
    buyers: list[dict[str, Any]],
    k: int,
    exclude: list[list[Any]],
    candidates: int | None = None,
    new_only: bool = False,
) -> list[dict[str, Any]]:
    """The recommendation: the second stage's lists for the buyers it knows (a baseline model: its retrieval);
    for the others (and in a bundle without one), retrieve `candidates` products (default: the spec's candidate
    pool, at least k), then keep the k with the highest rating-head predictions, best first, with their
    retrieval scores. new_only: for the buyers the lists know, only products they never bought, in the order
    of the lists of new products (the second stage's explore ranker); the others' purchases are not known."""
    if TWO_STAGE not in bundle.manifest.signatures:
        _require(bundle, RETRIEVAL)
        if bundle.has_towers:
            _require(bundle, RANKING)
    if not bundle.has_towers:
        return _baseline_results(bundle, buyers, k, exclude, new_only)
    second = _listed(bundle, buyers, k, exclude, new_only)
    excluded = exclusion_rows(bundle, exclude)
    rest = [i for i, hit in enumerate(second) if hit is None]
    first = iter(_first_stage(bundle, [buyers[i] for i in rest], k, [excluded[i] for i in rest], candidates))
    if bundle.lists is None:
        return list(first)
    return [
        {
            "product_ids": bundle.product_ids[hit[1]].tolist(),
            "scores": _floats(hit[0]),
            "stage": TWO_STAGE,
            "fallback": None,
        }
        if hit is not None
        else {**next(first), "stage": "first_stage"}
        for hit in second
    ]
