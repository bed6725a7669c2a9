"""The app's configuration."""

from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    """Uploaded datasets and their profiles."""

    name = "tandem.web.datasets"
    label = "datasets"
    verbose_name = "Datasets"
