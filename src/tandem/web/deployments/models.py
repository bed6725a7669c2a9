"""A deployment: a model server (`tandem serve`) started by the platform for one experiment's bundle.

Status moves starting → running (the server answered its health check) → stopped (by the platform), or to failed
(it exited, or never came up). At most one deployment of an experiment is live (starting or running) at a time,
which the database enforces, so two simultaneous "Deploy" clicks cannot start two servers.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tandem.web.accounts.models import Organisation, OwnedQuerySet
from tandem.web.experiments.models import Experiment


class Status(models.TextChoices):
    """Where a deployment's server is in its life."""

    STARTING = "starting", _("Starting")
    RUNNING = "running", _("Running")
    STOPPED = "stopped", _("Stopped")
    FAILED = "failed", _("Failed")


LIVE = (Status.STARTING, Status.RUNNING)


class Deployment(models.Model):
    """One model server process: the bundle it serves, where it listens, its PID and its state."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="deployments")
    bundle = models.CharField(_("bundle"), max_length=1000, help_text=_("The bundle folder the server reads."))
    host = models.CharField(_("host"), max_length=100)
    port = models.PositiveIntegerField(_("port"))
    pid = models.PositiveIntegerField(_("process id"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.STARTING, db_index=True
    )
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    stopped_at = models.DateTimeField(_("stopped"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        db_table = "tandem_deployment"
        verbose_name = _("deployment")
        verbose_name_plural = _("deployments")
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment"], condition=models.Q(status__in=LIVE), name="one_live_deployment_per_experiment"
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment} on {self.url}"

    @property
    def url(self) -> str:
        """The server's base address (reachable from the platform's machine only: it binds to loopback)."""
        return f"http://{self.host}:{self.port}"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE
