"""FeatureConfig and ModelConfig: the spec's own sections, stored whole.

A FeatureConfig holds the spec's `features` section; a ModelConfig its `model` and `training` sections and the
optional `recommend` (the second stage; null when the lists are the model's own). Each is JSON validated by
the engine's own classes (:data:`SECTIONS`), so the spec is the only list of a config's fields, defaults and
bounds. What a list page filters or sorts on (the name, the model type, the
timestamps) is a real column; `model_type` is copied from the `model` section whenever it is cleaned.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from pydantic import BaseModel

from tandem.spec import FeaturesSpec, ModelSpec, RecommendSpec, TrainingSpec
from tandem.web import engine
from tandem.web.accounts.models import OwnedModel
from tandem.web.validators import no_nul_characters


def default_model() -> dict[str, Any]:
    """The `model` section with every default: a valid multitask model."""
    return ModelSpec().model_dump(mode="json")


def default_training() -> dict[str, Any]:
    """The `training` section with every default."""
    return TrainingSpec().model_dump(mode="json")


def unique_name_per_org(kind: str) -> models.UniqueConstraint:
    """Names are unique within an organisation."""
    return models.UniqueConstraint(fields=["organisation", "name"], name=f"unique_{kind}_name_per_org")


class SpecSections(OwnedModel):
    """A record made of spec sections: `SECTIONS` names them and their classes; `clean` runs their rules."""

    SECTIONS: ClassVar[dict[str, type[BaseModel]]] = {}

    class Meta(OwnedModel.Meta):
        abstract = True

    def sections(self) -> dict[str, Any]:
        """The stored sections by name, as the engine reads them."""
        return {name: getattr(self, name) for name in self.SECTIONS}

    def clean(self) -> None:
        """Validate the sections (fields and the rules among them); store them as the engine normalised them.

        Raises ValidationError keyed by each problem's spec path (`model.epochs`, `features.buyer.0.column`).
        """
        super().clean()
        # PostgreSQL cannot store NUL characters, and nothing useful nests this deep: refused before the engine.
        errors = {}
        for name, value in self.sections().items():
            try:
                no_nul_characters(value)
            except ValidationError as e:
                errors[name] = e.error_list
        if errors:
            raise ValidationError(errors)
        parsed = engine.check_sections(self.sections())
        for name, section in parsed.items():
            setattr(self, name, None if section is None else section.model_dump(mode="json"))

    @property
    def is_in_use(self) -> bool:
        return self.experiments.exists()


class FeatureConfig(SpecSections):
    """Which columns feed the buyer (query) and product (candidate) towers, with their transforms, and the target."""

    SECTIONS = {"features": FeaturesSpec}

    features = models.JSONField(_("features"), blank=True, help_text=_("The spec's features section."))

    class Meta(OwnedModel.Meta):
        db_table = "tandem_feature_config"
        verbose_name = _("feature config")
        verbose_name_plural = _("feature configs")
        constraints = [unique_name_per_org("feature_config")]

    def columns(self) -> list[tuple[str, str]]:
        """(spec path, column) of every column this config reads, the target included."""
        out = []
        for side in ("buyer", "product"):
            for i, feature in enumerate(self.features.get(side) or []):
                out.append((f"features.{side}.{i}.column", feature.get("column")))
        if self.features.get("target"):
            out.append(("features.target", self.features["target"]))
        return out


class ModelConfig(SpecSections):
    """The model type, towers, rating head, loss weights, serving index and training settings."""

    SECTIONS = {"model": ModelSpec, "training": TrainingSpec, "recommend": RecommendSpec}

    model_type = models.CharField(
        _("model type"), max_length=20, choices=engine.choices_of(ModelSpec, "type"), editable=False, db_index=True
    )
    # blank: an empty section is the engine's to judge (its defaults, or the problems of its required keys).
    model = models.JSONField(_("model"), default=default_model, blank=True, help_text=_("The spec's model section."))
    training = models.JSONField(
        _("training"), default=default_training, blank=True, help_text=_("The spec's training section.")
    )
    recommend = models.JSONField(
        _("recommend"), null=True, blank=True, default=None, help_text=_("The spec's recommend section, or null.")
    )

    class Meta(OwnedModel.Meta):
        db_table = "tandem_model_config"
        verbose_name = _("model config")
        verbose_name_plural = _("model configs")
        constraints = [unique_name_per_org("model_config")]

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.model_type = self.model.get("type", ModelSpec.model_fields["type"].default)
        super().save(*args, **kwargs)
