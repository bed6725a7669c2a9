"""The app's configuration."""

from django.apps import AppConfig
from django.db.models.signals import pre_delete


class DeploymentsConfig(AppConfig):
    """Model servers started for experiments' bundles."""

    name = "tandem.web.deployments"
    label = "deployments"
    verbose_name = "Deployments"

    def ready(self) -> None:
        from tandem.web.deployments.services import stop_servers_of
        from tandem.web.experiments.models import Experiment

        # A deleted experiment takes its bundle folder with it: its servers are stopped first, not left orphaned.
        pre_delete.connect(stop_servers_of, sender=Experiment, dispatch_uid="deployments.stop_servers_of")
