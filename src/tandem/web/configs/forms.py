"""Forms for configs, generated from the spec sections each config stores (:mod:`tandem.web.spec_forms`)."""

from __future__ import annotations

from django import forms

from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.forms import OwnedModelForm
from tandem.web.spec_forms import sections_form

FeatureConfigForm = sections_form(
    FeatureConfig,
    OwnedModelForm,
    ["name", "description"],
    "Create or change a feature config: its name and every field of the spec's features section.",
)
ModelConfigForm = sections_form(
    ModelConfig,
    OwnedModelForm,
    ["name", "description"],
    "Create or change a model config: its name and every field of the spec's model and training sections.",
)
FeatureConfigAdminForm = sections_form(
    FeatureConfig, forms.ModelForm, ["organisation", "name", "description"], "A feature config in the admin."
)
ModelConfigAdminForm = sections_form(
    ModelConfig, forms.ModelForm, ["organisation", "name", "description"], "A model config in the admin."
)
