"""The experiment form: every rule, the engine's and the platform's, checked before anything is queued.

The engine's rules come from parsing the spec the experiment would run; the platform's are those the
engine cannot know: the records belong to the caller's organisation (other organisations' records are not
choices at all), and the columns the configs name exist in the dataset's files with suitable types.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.translation import gettext_lazy as _

from tandem.data.splits import cutoff_seconds
from tandem.web import engine
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.models import Dataset
from tandem.web.experiments.models import Experiment
from tandem.web.experiments.specs import spec_dict
from tandem.web.forms import OwnedModelForm

_DATA_FIELDS = {
    "sample_fraction": "sample_fraction",
    "sample_seed": "seed",
    "timestamp": "split_kind",
    "split": "split_kind",
}
_SPLIT_FIELDS = {
    "kind": "split_kind",
    "test_fraction": "test_fraction",
    "validation_fraction": "validation_fraction",
    "cutoff": "split_cutoff",
    "seed": "seed",
}


def _field_for(path: str) -> str:
    """The form field that a spec path's problem belongs to."""
    parts = path.split(".")
    if parts[0] == "features":
        return "feature_config"
    if parts[0] in ("model", "training"):
        return "model_config"
    if parts[0] == "data":
        if len(parts) > 2 and parts[1] == "split":
            return _SPLIT_FIELDS.get(parts[2], "split_kind")
        return _DATA_FIELDS.get(parts[1] if len(parts) > 1 else "", "dataset")
    return NON_FIELD_ERRORS


class ExperimentForm(OwnedModelForm):
    """Create an experiment: pick the organisation's records, sampling and split; builds the spec."""

    class Meta:
        model = Experiment
        fields = [
            "name",
            "description",
            "dataset",
            "feature_config",
            "model_config",
            "sample_fraction",
            "split_kind",
            "test_fraction",
            "validation_fraction",
            "split_cutoff",
            "seed",
        ]
        error_messages = {
            field: {"invalid_choice": _("No such %(kind)s in your organisation.") % {"kind": kind}}
            for field, kind in (
                ("dataset", "dataset"),
                ("feature_config", "feature config"),
                ("model_config", "model config"),
            )
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        # Only the organisation's own records are choices, so another organisation's id is "no such record".
        self.fields["dataset"].queryset = Dataset.objects.of(self.organisation)
        self.fields["feature_config"].queryset = FeatureConfig.objects.of(self.organisation)
        self.fields["model_config"].queryset = ModelConfig.objects.of(self.organisation)

    def clean_name(self) -> str:
        return (self.cleaned_data.get("name") or "").strip()  # names of experiments may repeat

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        dataset, fc, mc = (cleaned.get(k) for k in ("dataset", "feature_config", "model_config"))
        if dataset is None or fc is None or mc is None:
            return cleaned  # the missing choice is already reported
        if not cleaned.get("name"):
            cleaned["name"] = f"{mc.name} on {dataset.name}"
        split = {k: cleaned.get(k) for k in ("split_kind", "test_fraction", "validation_fraction", "split_cutoff")}
        raw = spec_dict(
            dataset, fc, mc, name=cleaned["name"], sample_fraction=cleaned.get("sample_fraction"), seed=cleaned.get("seed"), **split
        )  # fmt: skip
        errors: list[ValidationError] = []
        try:
            spec = engine.parse(raw)
        except engine.SpecError as e:
            errors.append(engine.problems_to_error(e.problems, _field_for))
            spec = None
        platform = self._platform_rules(dataset, fc, mc)
        if platform:
            errors.append(ValidationError(platform))
        if errors:
            merged: dict[str, list[ValidationError]] = {}
            for err in errors:
                for field, messages in err.error_dict.items():
                    merged.setdefault(field, []).extend(messages)
            raise ValidationError(merged)
        self.instance.spec = spec.to_dict()
        self.instance.model_type = spec.model.type
        self.instance.total_epochs = spec.training.epochs
        return cleaned

    def _platform_rules(self, dataset: Dataset, fc: FeatureConfig, mc: ModelConfig) -> dict[str, list[ValidationError]]:
        errors: dict[str, list[ValidationError]] = {}
        columns = dataset.available_columns()
        for field, column in fc.columns():
            if column not in columns:
                errors.setdefault("feature_config", []).append(
                    ValidationError(
                        _("%(field)s: no column “%(column)s” in dataset “%(dataset)s” (it has: %(columns)s)."),
                        code="unknown_column",
                        params={
                            "field": field,
                            "column": column,
                            "dataset": dataset,
                            "columns": ", ".join(list(columns)[:30]),
                        },
                    )
                )
        target = fc.target_column
        if target and target in columns and mc.model_type != "retrieval" and not dataset.is_numeric_column(target):
            errors.setdefault("feature_config", []).append(
                ValidationError(
                    _("target_column: “%(column)s” is %(type)s, not a number; the ranking target must be numeric."),
                    code="non_numeric_target",
                    params={"column": target, "type": columns[target]},
                )
            )
        cutoff = self.cleaned_data.get("split_cutoff")
        if cutoff:
            try:
                cutoff_seconds(cutoff)
            except engine.SpecError as e:
                errors.setdefault("split_cutoff", []).extend(
                    ValidationError(p.message, code="invalid_cutoff") for p in e.problems
                )
        catalog = dataset.distinct_products()
        if mc.model_type != "ranking" and catalog is not None and mc.top_k > catalog:
            errors.setdefault("model_config", []).append(
                ValidationError(
                    _("top_k: %(k)d is more than the %(n)d products in dataset “%(dataset)s”."),
                    code="top_k_too_large",
                    params={"k": mc.top_k, "n": catalog, "dataset": dataset},
                )
            )
        return errors
