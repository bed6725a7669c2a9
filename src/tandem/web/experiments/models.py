"""An experiment: a dataset, a FeatureConfig and a ModelConfig with sampling and a split, run once on a worker.

The spec it runs is stored at creation (`spec`), so later edits elsewhere can never change what it ran.
Status moves pending → running → completed / failed / cancelled. While running, the worker writes the
current epoch, the per-epoch history and weight statistics, and a heartbeat; `attempt` numbers the runs,
so a worker that lost its run (cancelled, declared dead, re-run) can tell and stop writing.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from tandem.metric_names import HEADLINE
from tandem.spec import ModelSpec, SplitSpec
from tandem.web import engine
from tandem.web.accounts.models import OwnedModel
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.models import Dataset

# The seed's eight metrics, each stored in its own column; every other metric goes to `other_metrics`.
METRIC_FIELDS = HEADLINE
# Whether a larger value is better, for comparisons.
HIGHER_IS_BETTER = {m: m.startswith("recall") for m in METRIC_FIELDS}


class Status(models.TextChoices):
    """Where an experiment is in its life."""

    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


ACTIVE = (Status.PENDING, Status.RUNNING)
FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


class Experiment(OwnedModel):
    """One training run of a spec built from the organisation's dataset and configs."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="experiments")
    feature_config = models.ForeignKey(FeatureConfig, on_delete=models.PROTECT, related_name="experiments")
    model_config = models.ForeignKey(ModelConfig, on_delete=models.PROTECT, related_name="experiments")
    model_type = models.CharField(_("model type"), max_length=20, editable=False, db_index=True)

    sample_fraction = models.FloatField(
        _("sample fraction"),
        default=1.0,
        validators=[MinValueValidator(1e-6), MaxValueValidator(1.0)],
        help_text=_("Share of the clean rows to use, e.g. 0.1 for a quick test."),
    )
    split_kind = models.CharField(
        _("split"), max_length=20, choices=engine.choices_of(SplitSpec, "kind"), default="random"
    )
    test_fraction = models.FloatField(
        _("test fraction"), default=0.2, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    validation_fraction = models.FloatField(
        _("validation fraction"), default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    split_cutoff = models.CharField(
        _("time split cutoff"), max_length=40, blank=True, help_text=_("Time split: test rows are at or after it.")
    )
    seed = models.IntegerField(_("seed"), default=42, validators=[MinValueValidator(0), MaxValueValidator(2**31 - 1)])

    spec = models.JSONField(_("spec"), default=dict, editable=False, help_text=_("The exact spec that runs."))
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True, editable=False
    )
    attempt = models.PositiveIntegerField(_("attempt"), default=0, editable=False)
    task_id = models.CharField(_("task id"), max_length=64, blank=True, editable=False)
    worker = models.CharField(_("worker"), max_length=200, blank=True, editable=False, help_text=_("host:pid"))
    queued_at = models.DateTimeField(_("queued"), null=True, blank=True, editable=False)
    started_at = models.DateTimeField(_("started"), null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True, editable=False)

    current_epoch = models.PositiveIntegerField(_("current epoch"), default=0, editable=False)
    total_epochs = models.PositiveIntegerField(_("epochs"), default=0, editable=False)
    progress = models.JSONField(_("progress"), default=dict, editable=False, help_text=_("step and steps"))
    history = models.JSONField(_("history"), default=list, editable=False)
    weight_stats = models.JSONField(_("weight statistics"), default=list, editable=False)
    data_report = models.JSONField(_("data report"), default=dict, editable=False)
    notes = models.JSONField(_("notes"), default=list, editable=False)

    recall_at_5 = models.FloatField(null=True, blank=True, editable=False)
    recall_at_10 = models.FloatField(null=True, blank=True, editable=False)
    recall_at_50 = models.FloatField(null=True, blank=True, editable=False)
    recall_at_100 = models.FloatField(null=True, blank=True, editable=False)
    rmse = models.FloatField(null=True, blank=True, editable=False)
    mae = models.FloatField(null=True, blank=True, editable=False)
    test_rmse = models.FloatField(null=True, blank=True, editable=False)
    test_mae = models.FloatField(null=True, blank=True, editable=False)
    other_metrics = models.JSONField(_("other metrics"), default=dict, editable=False)

    error = models.TextField(_("error"), blank=True, editable=False)
    artifacts_dir = models.CharField(
        _("artifacts"), max_length=500, blank=True, editable=False, help_text=_("Folder under MEDIA_ROOT.")
    )
    mlflow_run_id = models.CharField(_("MLflow run id"), max_length=64, blank=True, editable=False)

    class Meta(OwnedModel.Meta):
        db_table = "tandem_experiment"
        verbose_name = _("experiment")
        verbose_name_plural = _("experiments")
        indexes = [models.Index(fields=["organisation", "status"], name="experiment_org_status_idx")]

    @property
    def metrics(self) -> dict[str, float | None]:
        """The eight metrics by name."""
        return {m: getattr(self, m) for m in METRIC_FIELDS}

    @property
    def all_metrics(self) -> dict[str, Any]:
        return {**self.other_metrics, **{k: v for k, v in self.metrics.items() if v is not None}}

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_two_stage(self) -> bool:
        """Whether its lists come from a second stage (the spec's `recommend`), whatever the model type."""
        return (self.spec or {}).get("recommend") is not None

    @property
    def makes_lists(self) -> bool:
        """Whether it is measured on top-K lists (recall, NDCG): a retrieval model's, or a second stage's."""
        return self.model_section.has_retrieval or self.is_two_stage

    @property
    def model_section(self) -> ModelSpec:
        """The model section of the spec it runs: what it learns (`has_retrieval`, `has_ranking`); the type's
        defaults while it has no spec."""
        return ModelSpec.model_validate((self.spec or {}).get("model") or {"type": self.model_type})
