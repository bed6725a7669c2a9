"""The spec an experiment runs, built from its rows: the dataset's data section, the configs' sections,
and the experiment's own sampling and split. The result is a plain dict for :func:`tandem.web.engine.parse`."""

from __future__ import annotations

from typing import Any

from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.models import Dataset

# The cut-offs of the seed's recall metrics; those larger than the dataset's catalog are left out.
KS = (5, 10, 50, 100)


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
    training = model_config.training_section()
    if seed is not None:
        training.setdefault("seed", seed)
    catalog = dataset.distinct_products()
    ks = [k for k in KS if catalog is None or k <= catalog] or [1]
    return {
        "name": name,
        "data": data,
        "features": feature_config.features_section(),
        "model": model_config.model_section(),
        "training": training,
        "evaluation": {"ks": ks},
    }
