"""The serving bundle's format, shared by the exporter and the server: its version, file names, signature
names, routes and the typed manifest. Nothing here imports torch or ONNX Runtime.

Layout of a bundle folder:
  manifest.json       signatures, model type, request columns, graph inputs, index, the spec and versions
  query_tower.onnx    encoded buyer features → query embeddings [n, d]
  rating_head.onnx    query and candidate embeddings [n, d] → predictions [n]   (ranking signature only)
  candidates.npy      the candidate embeddings of the whole catalog [Nc, d] float32
  products.parquet    product_id and train_count of each catalog row, in the rows' order of candidates.npy
  features.json       the fitted buyer and product pipelines (TowerFeatures.get_state), applied by serving to raw
                      values with the training code itself
  average_query.npy   the mean query embedding of the training rows [d]: the ranking fallback for unknown buyers
  index.faiss         the HNSW or IVF index over candidates.npy (ANN retrieval only)
  buyers.parquet      buyer_id of each buyer code the second stage knows, in code order (two-stage only)
  two_stage/          the second stage (spec section `recommend`): two_stage.npz (the training order log as
                      buyer/product/time arrays, product category codes, the kept EASE neighbour weights as CSR
                      arrays), ranker.onnx, explore_ranker.onnx (the ranker of the lists without the buyer's past
                      products), two_stage.json (settings, cutoff, horizon)

A baseline model's bundle (`model.type: buy_again | ease`) has no towers: manifest.json, products.parquet,
buyers.parquet and baseline/baseline.npz (see :mod:`tandem.evaluation.baseline_model`); it serves
/v1/retrieve and /v1/recommend (the same lists) by buyer id.

Signatures follow the spec's `has_retrieval` / `has_ranking`: `serving_default` (retrieval) and
`serve_ranking` (ranking). A ranking-only bundle still holds the candidate embeddings, which its rating head reads.
A bundle with a second stage also has `two_stage` (/v1/recommend for the buyers it knows, by buyer id).

Versions: 1 had no second stage; 2 adds `buyers.parquet`, `two_stage/`, `baseline/` and the manifest's
`second_stage` and `baseline`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from tandem.spec import ModelSpec

FORMAT = "tandem-bundle"
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
FILES = {
    "query_tower": "query_tower.onnx",
    "rating_head": "rating_head.onnx",
    "candidates": "candidates.npy",
    "products": "products.parquet",
    "features": "features.json",
    "average_query": "average_query.npy",
    "buyers": "buyers.parquet",
    "two_stage": "two_stage",
    "baseline": "baseline",
}
RETRIEVAL, RANKING, TWO_STAGE = "serving_default", "serve_ranking", "two_stage"
ROUTES = {
    "health": "/v1/health",
    "metadata": "/v1/metadata",
    "retrieve": "/v1/retrieve",
    "rank": "/v1/rank",
    "recommend": "/v1/recommend",
}


class Signature(BaseModel):
    """One way to call the served model: its task, route, and what goes in and comes out."""

    task: str
    route: str
    inputs: dict[str, str]
    outputs: dict[str, str]


class RankingInfo(BaseModel):
    """What the ranking signature predicts and on which scale."""

    target: str | None
    target_transform: str
    loss: str


class SecondStage(BaseModel):
    """What the bundle's second stage holds, and its size on disk (the order log dominates it)."""

    model_config = ConfigDict(extra="forbid")

    folder: str
    buyers: int
    products: int
    orders: int
    neighbours: int  # item–item weights kept (at most recommend.ease_neighbours per product)
    features: list[str]
    bytes: int


class BaselineEntry(BaseModel):
    """What a baseline model's bundle holds, and its size on disk."""

    model_config = ConfigDict(extra="forbid")

    folder: str
    buyers: int
    pairs: int  # distinct training (buyer, product) pairs
    ease_products: int  # EASE columns (0 for buy_again)
    ease_weights: int  # kept EASE weights
    bytes: int


class Manifest(BaseModel):
    """manifest.json: everything a server needs to know about a bundle besides its arrays and graphs."""

    model_config = ConfigDict(extra="forbid")

    format: str
    format_version: int
    name: str
    model_type: str
    signatures: dict[str, Signature]
    buyer_columns: list[str]
    id_features: list[str]
    query_inputs: list[dict[str, Any]]
    embedding_dim: int
    num_products: int
    candidate_pool: int
    ranking: RankingInfo | None
    index: dict[str, Any] | None
    second_stage: SecondStage | None = None
    baseline: BaselineEntry | None = None
    files: dict[str, str]
    spec: dict[str, Any]
    versions: dict[str, Any]
    created: str


def signatures(model: ModelSpec, two_stage: bool = False) -> dict[str, Signature]:
    """The bundle's signatures for a model: retrieval (`serving_default`), ranking (`serve_ranking`), and the
    second stage (`two_stage`) when the bundle has one."""
    out: dict[str, Signature] = {}
    if model.has_retrieval:
        out[RETRIEVAL] = Signature(
            task="retrieval",
            route=ROUTES["retrieve"],
            inputs={"buyer": "raw buyer features", "k": "int", "exclude": "product ids"},
            outputs={"product_ids": "[k]", "scores": "[k] float"},
        )
    if model.has_ranking:
        out[RANKING] = Signature(
            task="ranking",
            route=ROUTES["rank"],
            inputs={"buyer": "raw buyer features", "product_ids": "product ids"},
            outputs={"predictions": "[len(product_ids)] float, in request order"},
        )
    if two_stage:
        out[TWO_STAGE] = Signature(
            task="recommend",
            route=ROUTES["recommend"],
            inputs={"buyer": "the buyer id (other buyers: the first stage)", "k": "int", "exclude": "product ids"},
            outputs={"product_ids": "[k], the second stage's order"},
        )
    return out
