"""What a config's numbers mean, in words, for its detail page.

Each section is read through the spec's own class, so every field is listed with its value, its default and the
spec's description of it (a field added to the spec appears here unchanged); a sentence per feature, per tower
and per task says what the numbers do ("buyer tower 64 → 32": two layers, a 32-number buyer embedding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tandem.spec import FeaturesSpec, ModelSpec, RecommendSpec, TrainingSpec


@dataclass(frozen=True)
class Fact:
    """One field of a section: its dotted name, value, default and the spec's description."""

    name: str
    value: Any
    default: Any
    description: str

    @property
    def is_default(self) -> bool:
        return self.value == self.default


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def facts(section: BaseModel, prefix: str = "") -> list[Fact]:
    """Every field of a parsed section in the class's order; a nested section's fields under "name."."""
    out = []
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        if isinstance(value, BaseModel) and field.default is None:
            value = _plain(value)  # an optional sub-section (early stopping) reads as one value
        if isinstance(value, BaseModel):
            out += facts(value, f"{prefix}{name}.")
            continue
        default = field.get_default(call_default_factory=True)
        out.append(Fact(f"{prefix}{name}", _plain(value), _plain(default), field.description or ""))
    return out


def _join(layers: list[int]) -> str:
    return " → ".join(str(n) for n in layers)


def feature_sentence(feature: BaseModel) -> str:
    """What one feature feeds its tower: "a learned vector of 32 numbers per value (embedding 32)"."""
    f: Any = feature
    dim = getattr(f, "embedding_dim", None)
    vector = f"a learned vector of {dim} numbers (embedding {dim})"
    if f.transform in ("id", "categorical"):
        rare = f"values seen fewer than {f.min_count}× and new ones share {f.oov_buckets} spare vector"
        cap = f"; at most {f.max_vocab:,} values kept" if f.max_vocab else ""
        return f"each value gets {vector}; {rare}{'s' if f.oov_buckets != 1 else ''}{cap}"
    if f.transform == "hashing":
        return f"values hashed into {f.num_bins:,} bins, each {vector}"
    if f.transform == "numeric":
        return f"the number{' after log(1 + x)' if f.log else ''}, standardised on the training split: one input"
    if f.transform == "bucketize":
        log = " of log(1 + x)" if f.log else ""
        return f"cut into {f.num_buckets} quantile buckets{log} fitted on the training split, each {vector}"
    if f.transform == "text":
        return (
            f"up to {f.max_length} lower-cased words per value (vocabulary of at most {f.max_tokens:,} words seen "
            f"{f.min_count}× or more), the mean of their vectors: {vector}"
        )
    return "hour of day and day of week as cycles, and the age, standardised: a few inputs"


def feature_rows(section: FeaturesSpec) -> list[dict[str, Any]]:
    """Each tower's features with their sentence: [{"side", "column", "transform", "sentence"}]."""
    return [
        {"side": side, "column": f.column, "transform": f.transform, "sentence": feature_sentence(f)}
        for side in ("buyer", "product")
        for f in getattr(section, side)
    ]


def _tower(name: str, layers: list[int]) -> str:
    if not layers:
        return f"no layers: the {name}'s feature vectors, side by side, are its embedding"
    n = len(layers)
    return f"{n} layer{'s' if n != 1 else ''} of {_join(layers)} units: the {name}'s embedding has {layers[-1]} numbers"


def model_sentences(model: ModelSpec, training: TrainingSpec) -> list[tuple[str, str]]:
    """(what, sentence) for the model type, both towers, the rating head, the loss weights, the index and training."""
    kinds = {
        "retrieval": "the top-K products for a buyer, scored by the dot product of the two towers' embeddings",
        "ranking": "a predicted target per buyer–product pair, from a rating head on both towers",
        "multitask": "both: top-K retrieval and a predicted target per pair, from shared towers",
    }
    out = [
        (model.type.capitalize(), kinds[model.type]),
        (f"Buyer tower {_join(model.buyer_tower_layers) or '—'}", _tower("buyer", model.buyer_tower_layers)),
        (f"Product tower {_join(model.product_tower_layers) or '—'}", _tower("product", model.product_tower_layers)),
    ]
    if model.has_ranking:
        fed = "both embeddings and their product" if model.rating_head_input == "concat_product" else "both embeddings"
        out.append(
            (
                f"Rating head {_join(model.rating_head_layers)}",
                f"{len(model.rating_head_layers)} layers on {fed}; the last, of 1 unit, is the prediction "
                f"({model.ranking_loss} loss)",
            )
        )
    if model.type == "multitask":
        out.append(
            (
                "Loss weights",
                f"total = {model.retrieval_weight:g} × retrieval loss + {model.ranking_weight:g} × ranking loss",
            )
        )
    if model.has_retrieval:
        exact = model.retrieval_algorithm == "brute_force"
        how = (
            "exactly, over the whole catalog"
            if exact
            else f"approximately, with a FAISS {model.retrieval_algorithm} index"
        )
        pool = model.index.candidate_pool
        out.append(
            (f"Candidate pool {pool}", f"products retrieval hands to ranking (and served by default), found {how}")
        )
    out.append(
        (
            "Training",
            f"{training.epochs} epoch{'s' if training.epochs != 1 else ''} of {training.batch_size:,} examples per step, "
            f"{training.optimizer} at learning rate {training.learning_rate:g}",
        )
    )
    return out


def feature_config(section: dict[str, Any]) -> dict[str, Any]:
    """A feature config's page content: the features with their sentences and the section's other fields."""
    parsed = FeaturesSpec.model_validate(section)
    return {
        "features": feature_rows(parsed),
        "facts": [f for f in facts(parsed) if f.name not in ("buyer", "product")],
    }


def recommend_sentence(recommend: RecommendSpec) -> tuple[str, str]:
    """(what, sentence) of a second stage: where its candidates come from and how they are ordered."""
    sources = [
        f"up to {recommend.history:,} of the buyer's past products" if recommend.history else "",
        f"{recommend.ease:,} unbought EASE neighbours" if recommend.ease else "",
        f"{recommend.popularity:,} unbought popular products" if recommend.popularity else "",
    ]
    windows = f"{recommend.windows} window{'s' if recommend.windows != 1 else ''}"
    n = recommend.rankers
    ranker, second = ("a ranker", "a second one") if n == 1 else (f"the mean of {n} rankers", f"{n} more")
    return (
        "Two-stage recommend",
        f"the lists are {', '.join(s for s in sources if s)}, ordered by {ranker} ({_join(recommend.ranker_layers)}, "
        f"{recommend.ranker_loss} loss; for new products {second}, {recommend.explore_ranker_loss} loss) "
        f"learned on {windows} of the training period; the model above is the retrieval stage",
    )


def model_config(model: dict[str, Any], training: dict[str, Any], recommend: dict[str, Any] | None) -> dict[str, Any]:
    """A model config's page content: what its numbers mean, then every field of its sections."""
    parsed_model, parsed_training = ModelSpec.model_validate(model), TrainingSpec.model_validate(training)
    sentences = model_sentences(parsed_model, parsed_training)
    parsed_recommend = None if recommend is None else RecommendSpec.model_validate(recommend)
    if parsed_recommend is not None:
        sentences.append(recommend_sentence(parsed_recommend))
    return {
        "sentences": sentences,
        "model_facts": facts(parsed_model),
        "training_facts": facts(parsed_training),
        "recommend_facts": [] if parsed_recommend is None else facts(parsed_recommend),
    }
