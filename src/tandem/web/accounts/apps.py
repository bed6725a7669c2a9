"""The app's configuration."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Organisations, memberships and API tokens."""

    name = "tandem.web.accounts"
    label = "accounts"
    verbose_name = "Organisations and API tokens"
