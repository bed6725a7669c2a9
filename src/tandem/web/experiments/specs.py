"""The spec an experiment runs, built from its rows: the dataset's data section, the configs' sections,
and the experiment's own sampling and split. The result is a plain dict for :func:`tandem.web.engine.parse`."""

from __future__ import annotations

from typing import Any

from tandem.metric_names import DEFAULT_KS
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.models import Dataset


def spec_dict(
    dataset: Dataset,
    feature_config: FeatureConfig,
    model_config: ModelConfig,
    *,
    name: str,
    sample_fraction: float | None,
    seed: int | None,
    split_kind: str | None,
    test_fraction: float | None,
    validation_fraction: float | None,
    split_cutoff: str | None,
) -> dict[str, Any]:
    """The raw spec of an experiment. Values left None fall back to the engine's defaults."""
    data = dataset.data_section()
    split = {
        "kind": split_kind,
        "test_fraction": test_fraction,
        "validation_fraction": validation_fraction,
        "cutoff": split_cutoff or None,
        "seed": seed,
    }
    data["split"] = {k: v for k, v in split.items() if v is not None}
    if sample_fraction is not None:
        data["sample_fraction"] = sample_fraction
    if seed is not None:
        data["sample_seed"] = seed
    training = dict(model_config.training)
    if seed is not None:
        training["seed"] = seed
    catalog = dataset.distinct_products()
    # The default cut-offs that fit in the catalog (a larger one would be refused).
    ks = [k for k in DEFAULT_KS if catalog is None or k <= catalog] or [1]
    return {
        "name": name,
        "data": data,
        "features": dict(feature_config.features),
        "model": dict(model_config.model),
        "training": training,
        "evaluation": {"ks": ks},
        "recommend": model_config.recommend,
    }
