"""A study: a base experiment, a search space over its spec fields, objectives, a budget and a parallelism.

Its trials are ordinary experiments (`StudyTrial.experiment`); Optuna keeps the search itself (the sampler's
state, every trial's parameters and values) in its RDB storage on the platform's own database, under
`optuna_name`. A trial whose spec breaks the rules at its values never becomes an experiment: it is failed
with the reason.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from tandem.study.search import PRUNERS, SAMPLERS
from tandem.web.accounts.models import OwnedModel
from tandem.web.experiments.models import Experiment

# The most trials and parallel trials one study may ask for (the organisation's queue budget applies too).
MAX_TRIALS = 500
MAX_PARALLELISM = 16


class StudyStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


class TrialState(models.TextChoices):
    RUNNING = "running", _("Running")
    COMPLETE = "complete", _("Complete")
    PRUNED = "pruned", _("Pruned")
    FAILED = "failed", _("Failed")


class Study(OwnedModel):
    """A search whose trials are experiments built from `base` with the searched fields set."""

    base = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="studies")
    params = models.JSONField(_("parameters"), default=list, help_text=_("path=values, one per searched field"))
    objectives = models.JSONField(_("objectives"), default=list, help_text=_("metric:max or metric:min"))
    sampler = models.CharField(_("sampler"), max_length=10, choices=[(s, s) for s in SAMPLERS], default="tpe")
    pruner = models.CharField(_("pruner"), max_length=10, choices=[(p, p) for p in PRUNERS], default="none")
    n_trials = models.PositiveIntegerField(
        _("trials"), default=20, validators=[MinValueValidator(1), MaxValueValidator(MAX_TRIALS)]
    )
    parallelism = models.PositiveIntegerField(
        _("parallel trials"), default=2, validators=[MinValueValidator(1), MaxValueValidator(MAX_PARALLELISM)]
    )
    status = models.CharField(
        _("status"), max_length=20, choices=StudyStatus.choices, default=StudyStatus.RUNNING, editable=False
    )
    optuna_name = models.CharField(_("Optuna study"), max_length=100, unique=True, editable=False)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True, editable=False)
    mlflow_run_id = models.CharField(
        _("MLflow parent run id"), max_length=64, blank=True, editable=False, help_text=_("Its trials' runs' parent.")
    )

    class Meta(OwnedModel.Meta):
        db_table = "tandem_study"
        verbose_name = _("study")
        verbose_name_plural = _("studies")


class StudyTrial(models.Model):
    """One trial: its Optuna number, its parameters, its experiment (none when its spec was refused), its end."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField(_("number"))
    optuna_trial_id = models.PositiveIntegerField(_("Optuna trial id"))
    params = models.JSONField(_("parameters"), default=dict)
    experiment = models.OneToOneField(
        Experiment, on_delete=models.SET_NULL, null=True, blank=True, related_name="study_trial"
    )
    state = models.CharField(_("state"), max_length=10, choices=TrialState.choices, default=TrialState.RUNNING)
    reason = models.TextField(_("reason"), blank=True, help_text=_("Why it was pruned or failed."))
    values = models.JSONField(_("objective values"), default=list)

    class Meta:
        db_table = "tandem_study_trial"
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["study", "number"], name="unique_trial_number_per_study")]
