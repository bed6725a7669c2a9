"""How big a spec's model will be, worked out before any data is read: parameters and training memory.

The figures are upper bounds from the spec and the number of distinct values of each column (a dataset's
profile knows them): an id or categorical table has at most min(distinct, max_vocab) + oov_buckets rows, a
hashed one num_bins, a bucketised one num_buckets + 2, a text one max_tokens + 2. A platform refuses a spec
whose bounds pass its budget, so a config cannot make a worker allocate what the machine does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tandem.spec import DENSE_WIDTHS, ExperimentSpec, Feature

FLOAT_BYTES = 4
# Weights, their gradients and up to two optimiser states (Adam's moments; Adagrad keeps one, SGD none).
_COPIES = {"adam": 4, "adagrad": 3, "sgd": 2}


@dataclass(frozen=True)
class ModelSize:
    """`parameters`: trainable numbers; `training_bytes`: estimated memory of one training step."""

    parameters: int
    training_bytes: int


def table_rows(feature: Feature, distinct: int | None) -> int:
    """The embedding rows a feature can need; `distinct` is its column's distinct count (None: unknown)."""
    kind = feature.transform
    if kind in ("id", "categorical"):
        vocab = distinct if distinct is not None else (feature.max_vocab or 0)
        if feature.max_vocab is not None:
            vocab = min(vocab, feature.max_vocab)
        return vocab + feature.oov_buckets
    if kind == "hashing":
        return feature.num_bins
    if kind == "bucketize":
        return feature.num_buckets + 2
    if kind == "text":
        return feature.max_tokens + 2
    return 0


def _mlp(in_dim: int, layers: list[int]) -> tuple[int, int]:
    """(parameters, activations per example) of dense layers on an `in_dim` input."""
    params = activations = 0
    for size in layers:
        params += in_dim * size + size
        activations += size
        in_dim = size
    return params, activations


def _tower(
    features: list[Feature], layers: list[int], distinct: Mapping[str, int], product: list[Feature]
) -> tuple[int, int, int]:
    """(parameters, activations per example, output width) of one tower; `product` is the product tower's
    features, whose tables a history bag shares (it adds their width, not a table of its own)."""
    params = width = 0
    for f in features:
        if f.transform in DENSE_WIDTHS:
            width += DENSE_WIDTHS[f.transform]
            continue
        if f.transform == "history":
            width += next((p.embedding_dim for p in product if p.column == f.column and hasattr(p, "embedding_dim")), 0)
            continue
        params += table_rows(f, distinct.get(f.column)) * f.embedding_dim
        width += f.embedding_dim
    dense, activations = _mlp(width, layers)
    return params + dense, width + activations, layers[-1] if layers else width


def estimate(spec: ExperimentSpec, distinct: Mapping[str, int]) -> ModelSize:
    """Parameters and training memory of `spec`'s model; `distinct` maps a column to its distinct values.

    Memory counts the weights with their gradients and optimiser states, each tower's activations for a batch
    (forward and backward), and the in-batch retrieval scores (batch × batch, forward and backward).
    """
    m, batch = spec.model, spec.training.batch_size
    if m.is_baseline:
        return _baseline_size(spec, distinct)
    product = spec.features.product
    bp, ba, dim = _tower(spec.features.buyer, m.buyer_tower_layers, distinct, product)
    pp, pa, _ = _tower(product, m.product_tower_layers, distinct, product)
    params, per_example = bp + pp, ba + pa
    if m.measures_ranking:
        head_in = 2 * dim if m.rating_head_input == "concat" else 3 * dim
        hp, ha = _mlp(head_in, m.rating_head_layers)
        params, per_example = params + hp, per_example + head_in + ha
    scores = batch * batch if m.has_retrieval else 0
    activations = 2 * (batch * per_example + scores)
    memory = FLOAT_BYTES * (_COPIES[spec.training.optimizer] * params + activations)
    return ModelSize(parameters=params, training_bytes=memory)


def _baseline_size(spec: ExperimentSpec, distinct: Mapping[str, int]) -> ModelSize:
    """A baseline model trains no towers: buy_again fits nothing; ease keeps `model.ease_neighbours` weights per
    product of an N × N fit over the N most bought products (the Gram matrix, its factor and inverse, float64)."""
    if spec.model.type != "ease":
        return ModelSize(parameters=0, training_bytes=0)
    ev = spec.evaluation
    n = min(ev.ease_products, distinct.get(spec.data.product_id, ev.ease_products))
    return ModelSize(parameters=n * min(spec.model.ease_neighbours, n), training_bytes=3 * 8 * n * n)
