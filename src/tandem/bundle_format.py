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

Signatures follow the spec's `has_retrieval` / `has_ranking`: `serving_default` (retrieval) and
`serve_ranking` (ranking). A ranking-only bundle still holds the candidate embeddings, which its rating head reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from tandem.spec import ModelSpec

FORMAT = "tandem-bundle"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MANIFEST = "manifest.json"
FILES = {
    "query_tower": "query_tower.onnx",
    "rating_head": "rating_head.onnx",
    "candidates": "candidates.npy",
    "products": "products.parquet",
    "features": "features.json",
    "average_query": "average_query.npy",
}
RETRIEVAL, RANKING = "serving_default", "serve_ranking"
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
    files: dict[str, str]
    spec: dict[str, Any]
    versions: dict[str, Any]
    created: str


def signatures(model: ModelSpec) -> dict[str, Signature]:
    """The bundle's signatures for a model: retrieval (`serving_default`), ranking (`serve_ranking`)."""
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
    return out
