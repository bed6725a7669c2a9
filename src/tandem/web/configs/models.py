"""FeatureConfig (what feeds each tower) and ModelConfig (how the model is built and trained).

Both are stored as rows with JSON fields and turned into the engine's spec sections by `features_section()`,
`model_section()` and `training_section()`. Validation is the engine's own (:mod:`tandem.web.engine`): a
config that can never be valid is refused when it is saved, with each problem keyed by the field to fix.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from tandem.spec import FeaturesSpec, ModelSpec, TrainingSpec
from tandem.web import engine
from tandem.web.accounts.models import OwnedModel
from tandem.web.validators import no_nul_characters

MAX_LAYER_SIZE = 8192
MAX_LAYERS = 8


def _layers_validator(value: Any) -> None:
    """Platform limits on a layer list (the engine checks the values are positive integers)."""
    if not isinstance(value, list):
        raise ValidationError(_("Enter a list of layer sizes, e.g. [128, 64]."), code="not_a_list")
    if len(value) > MAX_LAYERS:
        raise ValidationError(
            _("At most %(max)d layers, got %(n)d."), code="too_many_layers", params={"max": MAX_LAYERS, "n": len(value)}
        )
    if any(isinstance(v, int) and not isinstance(v, bool) and v > MAX_LAYER_SIZE for v in value):
        raise ValidationError(
            _("A layer has at most %(max)d units."), code="layer_too_large", params={"max": MAX_LAYER_SIZE}
        )


class FeatureConfig(OwnedModel):
    """Which columns feed the buyer (query) and product (candidate) towers, with their transforms, and the target."""

    buyer_features = models.JSONField(
        _("buyer features"),
        default=list,
        validators=[no_nul_characters],
        help_text=_('Feature specs, e.g. [{"column": "household_id", "transform": "id", "embedding_dim": 32}].'),
    )
    product_features = models.JSONField(
        _("product features"),
        default=list,
        validators=[no_nul_characters],
        help_text=_('Feature specs, e.g. [{"column": "product_id", "transform": "id"}].'),
    )
    target_column = models.CharField(
        _("target column"), max_length=200, blank=True, help_text=_("Numeric column the ranking task predicts.")
    )
    target_transform = models.CharField(
        _("target transform"),
        max_length=20,
        choices=engine.choices_of(FeaturesSpec, "target_transform"),
        default="none",
    )

    class Meta(OwnedModel.Meta):
        db_table = "tandem_feature_config"
        verbose_name = _("feature config")
        verbose_name_plural = _("feature configs")
        constraints = [
            models.UniqueConstraint(fields=["organisation", "name"], name="unique_feature_config_name_per_org")
        ]

    def features_section(self) -> dict[str, Any]:
        """The spec's `features` section."""
        return {
            "buyer": self.buyer_features,
            "product": self.product_features,
            "target": self.target_column or None,
            "target_transform": self.target_transform,
        }

    def columns(self) -> list[tuple[str, str]]:
        """(field, column) of every column this config reads, the target included."""
        out = [("buyer_features", f.get("column")) for f in self.buyer_features if isinstance(f, dict)]
        out += [("product_features", f.get("column")) for f in self.product_features if isinstance(f, dict)]
        if self.target_column:
            out.append(("target_column", self.target_column))
        return out

    def clean(self) -> None:
        try:
            normalised = engine.check_features(self.features_section())
        except engine.SpecError as e:
            raise engine.problems_to_error(e.problems, _feature_field) from None
        self.buyer_features, self.product_features = normalised["buyer"], normalised["product"]

    @property
    def is_in_use(self) -> bool:
        return self.experiments.exists()


def _feature_field(path: str) -> str:
    part = path.split(".")[1] if "." in path else ""
    return {
        "buyer": "buyer_features",
        "product": "product_features",
        "target": "target_column",
        "target_transform": "target_transform",
    }.get(part, NON_FIELD_ERRORS)


class ModelConfig(OwnedModel):
    """The model type, towers, rating head, loss weights, retrieval index and training settings (the seed's fields).

    `buyer_tower_layers` and `product_tower_layers` are the hidden layers; `output_embedding_dim`, when set,
    is appended to both as their shared output layer. `options` holds any other key of the engine's
    `model` and `training` sections (e.g. {"model": {"dropout": 0.1}, "training": {"seed": 7}}).
    """

    model_type = models.CharField(
        _("model type"), max_length=20, choices=engine.choices_of(ModelSpec, "type"), default="multitask"
    )
    buyer_tower_layers = models.JSONField(
        _("buyer tower layers"), default=list, blank=True, validators=[_layers_validator], help_text=_("e.g. [128, 64]")
    )
    product_tower_layers = models.JSONField(
        _("product tower layers"),
        default=list,
        blank=True,
        validators=[_layers_validator],
        help_text=_("e.g. [128, 64]"),
    )
    rating_head_layers = models.JSONField(
        _("rating head layers"),
        default=list,
        blank=True,
        validators=[_layers_validator],
        help_text=_("Ends in 1, e.g. [64, 32, 1]; needed by ranking and multitask models."),
    )
    output_embedding_dim = models.PositiveIntegerField(
        _("output embedding dim"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_LAYER_SIZE)],
        help_text=_("Size of both towers' output; empty: the last tower layer (or the concatenated embeddings)."),
    )
    retrieval_weight = models.FloatField(
        _("retrieval weight"), default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    ranking_weight = models.FloatField(
        _("ranking weight"), default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    loss_function = models.CharField(
        _("ranking loss"), max_length=20, choices=engine.choices_of(ModelSpec, "ranking_loss"), default="mse"
    )
    retrieval_algorithm = models.CharField(
        _("retrieval algorithm"),
        max_length=20,
        choices=engine.choices_of(ModelSpec, "retrieval_algorithm"),
        default="brute_force",
    )
    top_k = models.PositiveIntegerField(
        _("top K"), default=100, validators=[MinValueValidator(1), MaxValueValidator(10_000)]
    )
    optimizer = models.CharField(
        _("optimizer"), max_length=20, choices=engine.choices_of(TrainingSpec, "optimizer"), default="adagrad"
    )
    learning_rate = models.FloatField(
        _("learning rate"), default=0.1, validators=[MinValueValidator(1e-7), MaxValueValidator(100.0)]
    )
    batch_size = models.PositiveIntegerField(
        _("batch size"), default=4096, validators=[MinValueValidator(2), MaxValueValidator(1_048_576)]
    )
    epochs = models.PositiveIntegerField(
        _("epochs"), default=3, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    options = models.JSONField(
        _("other engine options"),
        default=dict,
        blank=True,
        validators=[no_nul_characters],
        help_text=_('Other keys of the engine\'s model and training sections, e.g. {"model": {"dropout": 0.1}}.'),
    )

    class Meta(OwnedModel.Meta):
        db_table = "tandem_model_config"
        verbose_name = _("model config")
        verbose_name_plural = _("model configs")
        constraints = [
            models.UniqueConstraint(fields=["organisation", "name"], name="unique_model_config_name_per_org")
        ]

    # Fields stated in their own columns, and the spec key each becomes.
    MODEL_FIELDS = {
        "model_type": "type",
        "rating_head_layers": "rating_head_layers",
        "retrieval_weight": "retrieval_weight",
        "ranking_weight": "ranking_weight",
        "loss_function": "ranking_loss",
        "retrieval_algorithm": "retrieval_algorithm",
        "top_k": "top_k",
    }
    TRAINING_FIELDS = ("optimizer", "learning_rate", "batch_size", "epochs")

    def _tower(self, layers: Any) -> Any:
        if not isinstance(layers, list):
            return layers  # the field's own validator reports it
        return [*layers, self.output_embedding_dim] if self.output_embedding_dim else list(layers)

    def model_section(self) -> dict[str, Any]:
        """The spec's `model` section."""
        options = self.options.get("model", {}) if isinstance(self.options, dict) else {}
        section = dict(options) if isinstance(options, dict) else {}
        section.update({key: getattr(self, field) for field, key in self.MODEL_FIELDS.items()})
        section["buyer_tower_layers"] = self._tower(self.buyer_tower_layers)
        section["product_tower_layers"] = self._tower(self.product_tower_layers)
        return section

    def training_section(self) -> dict[str, Any]:
        """The spec's `training` section."""
        options = self.options.get("training", {}) if isinstance(self.options, dict) else {}
        section = dict(options) if isinstance(options, dict) else {}
        section.update({field: getattr(self, field) for field in self.TRAINING_FIELDS})
        return section

    def clean(self) -> None:
        self._check_options()
        try:
            engine.check_model(self.model_section(), self.training_section())
        except engine.SpecError as e:
            raise engine.problems_to_error(e.problems, self._field_for) from None

    def _check_options(self) -> None:
        """`options` holds only the two sections, and no key that has its own field here."""
        if not isinstance(self.options, dict):
            raise ValidationError({"options": ValidationError(_("Enter an object."), code="invalid")})
        unknown = sorted(set(self.options) - {"model", "training"})
        if unknown:
            raise ValidationError(
                {
                    "options": ValidationError(
                        _("Only 'model' and 'training' keys are allowed, got %(keys)s."),
                        code="unknown_section",
                        params={"keys": ", ".join(unknown)},
                    )
                }
            )
        own = {"model": {*self.MODEL_FIELDS.values(), "buyer_tower_layers", "product_tower_layers"},
               "training": set(self.TRAINING_FIELDS)}  # fmt: skip
        for section, keys in own.items():
            value = self.options.get(section, {})
            if not isinstance(value, dict):
                raise ValidationError({"options": ValidationError(_("'%(s)s' must be an object."), code="invalid",
                                                                  params={"s": section})})  # fmt: skip
            clash = sorted(keys & set(value))
            if clash:
                raise ValidationError(
                    {"options": ValidationError(_("Set %(keys)s with their own fields, not in options."),
                                                code="duplicate_option", params={"keys": ", ".join(clash)})}
                )  # fmt: skip

    def _field_for(self, path: str) -> str:
        section, _, rest = path.partition(".")
        key = rest.split(".")[0]
        if section == "training":
            return key if key in self.TRAINING_FIELDS else "options"
        if key in ("buyer_tower_layers", "product_tower_layers"):
            return key
        field = {v: k for k, v in self.MODEL_FIELDS.items()}.get(key)
        return field or ("options" if key else NON_FIELD_ERRORS)

    @property
    def is_in_use(self) -> bool:
        return self.experiments.exists()
