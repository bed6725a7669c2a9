"""The app's configuration."""

from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """Experiments, their worker task and the demo."""

    name = "tandem.web.experiments"
    label = "experiments"
    verbose_name = "Experiments"
