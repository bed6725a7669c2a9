"""Recommended settings for a dataset: the feature and model configs `tandem init` would write for its files.

The dataset's files are profiled as `tandem init` profiles them and the recommendation is split into the two
configs (features; model, training and the two-stage recommend), created through the same services as any
config, under names that say which dataset they were made for. The time split's cutoff comes back with them
for the experiment form. Asking again for the same dataset returns the configs made the first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from tandem.web import engine, storage
from tandem.web.configs import services
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.models import Dataset


@dataclass
class Recommended:
    """The configs recommended for a dataset and the split to run them with."""

    feature_config: FeatureConfig
    model_config: ModelConfig
    split_cutoff: str

    def experiment_initial(self, dataset: Dataset) -> dict[str, Any]:
        """The new-experiment form's starting values for these settings."""
        return {
            "dataset": dataset.pk,
            "feature_config": self.feature_config.pk,
            "model_config": self.model_config.pk,
            "split_kind": "time",
            "split_cutoff": self.split_cutoff,
        }


def _aggregate_names(dataset: Dataset) -> tuple[str | None, str | None, str | None, str | None]:
    """(target column summed, its output name, order column counted, its output name) of the dataset's
    aggregation; without one, rows are lines and there is no order count."""
    target = target_name = order = orders_name = None
    for a in dataset.aggregate or []:
        if a.get("fn") == "sum" and target is None:
            target, target_name = a.get("column"), a.get("name")
        if a.get("fn") == "count_distinct" and order is None:
            order, orders_name = a.get("column"), a.get("name")
    return target, target_name, order, orders_name


def _profile_options(dataset: Dataset) -> dict[str, Any]:
    target, _, order, _ = _aggregate_names(dataset)
    options: dict[str, Any] = {
        "buyer_id": dataset.buyer_id_column,
        "product_id": dataset.product_id_column,
        "timestamp": dataset.timestamp_column,
        "target": target,
        "order_id": order if order != dataset.timestamp_column else None,
        "timestamp_format": (dataset.read_options or {}).get("timestamp_format"),
    }
    for role, key in (("buyers", dataset.buyers_key), ("products", dataset.products_key)):
        upload = getattr(dataset, f"{role}_file")
        if upload:
            options[role] = (str(storage.local_path(upload.name)), key)
    return options


def recommended_configs(dataset: Dataset, user: AbstractBaseUser | None) -> Recommended:
    """The recommended configs of `dataset` (made once, then found by name) and the cutoff.

    Raises ValidationError (under "dataset") when the dataset is not ready or cannot be profiled: no timestamp
    column, no aggregation to learn from, a column the profile cannot read, an unreadable file.
    """
    if problem := dataset.readiness_problem():
        raise ValidationError({"dataset": [problem]})
    if not dataset.timestamp_column:
        raise ValidationError({"dataset": ["recommended settings need a timestamp column (they split by time)"]})
    _, target_name, _, orders_name = _aggregate_names(dataset)
    if target_name is None and orders_name is None:
        raise ValidationError(
            {"dataset": ["recommended settings need the dataset's aggregation to sum a target or count orders"]}
        )
    try:
        sections, cutoff = engine.recommended_sections(
            str(storage.local_path(dataset.transactions_file.name)),
            target_name or "",
            orders_name,
            **_profile_options(dataset),
        )
    except engine.TandemError as e:
        raise ValidationError({"dataset": [f"the dataset's files cannot be profiled: {e}"]}) from None
    org = dataset.organisation
    about = f"Recommended by Tandem for “{dataset.name}” from its profile, as tandem init writes it."
    wanted = [
        (FeatureConfig, f"Recommended features · {dataset.name}", {"features": sections["features"]}),
        (ModelConfig, f"Recommended model · {dataset.name}", {s: sections.get(s) for s in ModelConfig.SECTIONS}),
    ]
    made = []
    for model, name, data in wanted:
        name = name[: model._meta.get_field("name").max_length]
        existing = model.objects.of(org).filter(name=name).first()
        made.append(
            existing
            or services.create(model, organisation=org, user=user, data={"name": name, "description": about, **data})
        )
    return Recommended(made[0], made[1], cutoff)
