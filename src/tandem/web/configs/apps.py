"""The app's configuration."""

from django.apps import AppConfig


class ConfigsConfig(AppConfig):
    """Feature and model configs."""

    name = "tandem.web.configs"
    label = "configs"
    verbose_name = "Feature and model configs"
