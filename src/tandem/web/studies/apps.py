"""The app's configuration: it listens to experiments' runs (pruning callbacks, MLflow parent tags, their ends)."""

from django.apps import AppConfig


class StudiesConfig(AppConfig):
    """Studies and their trials."""

    name = "tandem.web.studies"
    label = "studies"
    verbose_name = "Studies"

    def ready(self) -> None:
        from tandem.web.experiments.signals import run_callbacks, run_ended, run_tags
        from tandem.web.studies import services

        run_callbacks.connect(services.pruning_callbacks, dispatch_uid="studies.pruning")
        run_tags.connect(services.parent_run_tags, dispatch_uid="studies.parent_run")
        run_ended.connect(services.trial_ended, dispatch_uid="studies.trial_ended")
