"""`manage.py create_token USERNAME`: print a new API token for the user (shown once, stored hashed)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tandem.web.accounts.models import ApiToken


class Command(BaseCommand):
    """create_token USERNAME [--name N]"""

    help = "Create an API token for USERNAME and print it (use it as 'Authorization: Bearer TOKEN')."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for")

    def handle(self, *args: Any, username: str, name: str, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user '{username}'; create one with: manage.py create_org NAME --owner {username}")
        if not hasattr(user, "membership"):
            raise CommandError(f"user '{username}' belongs to no organisation, so a token would see nothing")
        _, plain = ApiToken.objects.issue(user, name=name)
        self.stdout.write(plain)
