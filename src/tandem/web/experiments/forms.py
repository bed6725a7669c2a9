"""The experiment form: every rule, the engine's and the platform's, checked before anything is queued.

The spec's own rules come from parsing the spec the experiment would run; the experiment rules (columns
exist, the target is numeric, top-K fits the catalog, the cutoff is inside the data) from the engine's
:func:`tandem.experiment_rules.check_experiment` with the facts of the dataset's stored profile. The
records belong to the caller's organisation: other organisations' records are not choices at all.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.translation import gettext_lazy as _

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


def _field_for(problem: engine.Problem) -> str:
    """The form field that a spec path's problem belongs to."""
    parts = [str(p) for p in problem.parts]
    if parts[0] == "features":
        return "feature_config"
    if parts[0] in ModelConfig.SECTIONS:
        return "model_config"
    if parts[0] == "data":
        if len(parts) > 2 and parts[1] == "split":
            return _SPLIT_FIELDS.get(parts[2], "split_kind")
        return _DATA_FIELDS.get(parts[1] if len(parts) > 1 else "", "dataset")
    if parts[0] == "evaluation":
        return "dataset"
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
        problem = dataset.readiness_problem()
        if problem:  # its profile (what the rules check against) is not there yet
            raise ValidationError({"dataset": ValidationError(problem, code="not_ready")})
        if not cleaned.get("name"):
            cleaned["name"] = f"{mc.name} on {dataset.name}"
        split = {k: cleaned.get(k) for k in ("split_kind", "test_fraction", "validation_fraction", "split_cutoff")}
        raw = spec_dict(
            dataset, fc, mc, name=cleaned["name"], sample_fraction=cleaned.get("sample_fraction"), seed=cleaned.get("seed"), **split
        )  # fmt: skip
        try:
            spec = engine.parse_experiment(raw, dataset.facts())
        except engine.SpecError as e:
            raise engine.problems_to_error(e.problems, _field_for) from None
        self.instance.spec = spec.to_dict()
        self.instance.model_type = spec.model.type
        self.instance.total_epochs = spec.training.epochs
        return cleaned
