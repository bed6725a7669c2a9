"""Two-stage recommendation: candidates from the buyer's history, item–item neighbours and popularity,
ordered by the learned ranker. `TwoStage.lists` is the one code path for evaluation and serving; fitting one
(torch) is :func:`tandem.recommend.build.train_two_stage`, so that serving loads this module without torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tandem.evaluation.baselines import merge_lists, popularity_order
from tandem.recommend.candidates import CANDIDATE_FEATURES, Neighbours, candidates
from tandem.recommend.orders import OrderLog
from tandem.recommend.pair_features import HISTORY_FEATURES, PairStats
from tandem.recommend.ranker_graph import Ranker
from tandem.spec import RecommendSpec

FEATURES = (*HISTORY_FEATURES, *CANDIDATE_FEATURES)
# Buyers whose candidates are built and scored at once (bounds the candidate table's memory).
BUYER_BLOCK = 2048


def candidate_table(
    log: OrderLog, neighbours: Neighbours, stats: PairStats, buyers: np.ndarray, settings: RecommendSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row into buyers, product, [n, len(FEATURES)] features) of every candidate of `buyers`; stats: the
    log's `PairStats` (as of the time the lists are for)."""
    rows, products, source_features = candidates(
        log, neighbours, buyers, n_history=settings.history, n_ease=settings.ease, n_popularity=settings.popularity
    )
    history = stats.features(buyers[rows], products)
    return rows, products, np.concatenate([history, source_features], axis=1)


@dataclass
class TwoStage:
    """A fitted two-stage recommender as of `as_of`: the orders before it, the neighbours and the ranker."""

    settings: RecommendSpec
    log: OrderLog
    as_of: int
    horizon: float
    category: np.ndarray  # [n_products] category code, -1 when unknown
    neighbours: Neighbours
    ranker: Ranker
    explore_ranker: Ranker  # orders the candidates the buyer never bought, for the lists without its history
    report: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def stats(self) -> PairStats:
        """The log's aggregates as of `as_of`, computed once: a request only looks its pairs up."""
        return PairStats.of(self.log, self.as_of, self.horizon, self.category)

    def lists(self, buyers: np.ndarray, k: int, *, explore: bool = False) -> np.ndarray:
        """[len(buyers), k] product indices, best first, filled with popular products after the candidates;
        explore leaves out each buyer's past products."""
        return self.ranked(buyers, k, explore=explore)[0]

    def ranked(self, buyers: np.ndarray, k: int, *, explore: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The lists, and beside them [len(buyers), k] float32 ranker scores (NaN for the popular fill)."""
        buyers = np.asarray(buyers, np.int64)
        history = self.log.history()
        popular = popularity_order(np.bincount(history.product, minlength=self.log.n_products))
        out = np.full((len(buyers), k), -1, np.int64)
        scores = np.full((len(buyers), k), np.nan, np.float32)
        for s in range(0, len(buyers), BUYER_BLOCK):
            block = buyers[s : s + BUYER_BLOCK]
            rows, products, features = candidate_table(self.log, self.neighbours, self.stats, block, self.settings)
            if explore:
                kept = ~history.bought(block[rows], products)
                rows, products, features = rows[kept], products[kept], features[kept]
            score = (self.explore_ranker if explore else self.ranker).score(features)
            order = np.lexsort((products, -score, rows))
            rows, products, score = rows[order], products[order], score[order]
            position = np.arange(len(rows)) - np.searchsorted(rows, rows)
            top = position < k
            ranked = np.full((len(block), k), -1, np.int64)
            ranked[rows[top], position[top]] = products[top]
            ranked_score = np.full((len(block), k), np.nan, np.float32)
            ranked_score[rows[top], position[top]] = score[top]
            seen = int(np.diff(history.indptr)[block].max()) if explore and len(block) else 0
            fill = np.broadcast_to(popular[: 2 * k + seen], (len(block), min(len(popular), 2 * k + seen)))
            wide = np.concatenate([ranked, fill], axis=1)
            excluded = None
            if explore:
                flat = np.repeat(block, wide.shape[1])
                excluded = history.bought(flat, np.maximum(wide.ravel(), 0)).reshape(wide.shape) & (wide >= 0)
            merged = merge_lists([wide], k, excluded)
            out[s : s + BUYER_BLOCK] = merged
            # The candidates come first, in order, and the fill after them: a position keeps its ranker score
            # where the merged list still holds the candidate.
            scores[s : s + BUYER_BLOCK] = np.where((merged == ranked) & (ranked >= 0), ranked_score, np.nan)
        return out, scores

    def save(self, folder: str | Path) -> None:
        """Write everything `load` needs: the orders, categories, neighbours (npz), the rankers (ONNX), settings."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        w = self.neighbours.weights
        np.savez_compressed(
            folder / "two_stage.npz",
            buyer=self.log.buyer,
            product=self.log.product,
            time=self.log.time,
            category=self.category,
            indptr=w.indptr,
            indices=w.indices,
            weights=w.data,
        )
        (folder / "ranker.onnx").write_bytes(self.ranker.graph)
        (folder / "explore_ranker.onnx").write_bytes(self.explore_ranker.graph)
        meta = {
            "settings": self.settings.model_dump(mode="json"),
            "as_of": self.as_of,
            "horizon": self.horizon,
            "n_buyers": self.log.n_buyers,
            "n_products": self.log.n_products,
            "features": list(FEATURES),
            "report": self.report,
        }
        (folder / "two_stage.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> TwoStage:
        folder = Path(folder)
        meta = json.loads((folder / "two_stage.json").read_text(encoding="utf-8"))
        z = np.load(folder / "two_stage.npz")
        n_b, n_p = meta["n_buyers"], meta["n_products"]
        log = OrderLog(z["buyer"], z["product"], z["time"], n_b, n_p)
        weights = sp.csr_matrix((z["weights"], z["indices"], z["indptr"]), shape=(n_p, n_p))
        ranker = Ranker((folder / "ranker.onnx").read_bytes())
        # A bundle written before the second ranker existed orders new products with its one ranker.
        explore = folder / "explore_ranker.onnx"
        explore_ranker = Ranker(explore.read_bytes()) if explore.exists() else ranker
        return cls(
            RecommendSpec.model_validate(meta["settings"]),
            log,
            meta["as_of"],
            meta["horizon"],
            z["category"],
            Neighbours(weights),
            ranker,
            explore_ranker,
            meta["report"],
        )
