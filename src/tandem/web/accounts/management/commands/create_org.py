"""`manage.py create_org NAME --owner USERNAME`: an organisation with its owner (created when missing)."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from tandem.web.accounts.models import Membership, Organisation


class Command(BaseCommand):
    """create_org NAME --owner USERNAME [--email E]"""

    help = "Create an organisation and make USERNAME its owner; prints a password only when it creates the user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the organisation's name")
        parser.add_argument("--owner", required=True, metavar="USERNAME", help="owner; created when missing")
        parser.add_argument("--email", default="", help="e-mail of a newly created owner")

    @transaction.atomic
    def handle(self, *args: Any, name: str, owner: str, email: str, **options: Any) -> None:
        name = name.strip()
        if not name:
            raise CommandError("the organisation's name is empty")
        User = get_user_model()
        org, org_created = Organisation.objects.get_or_create(name=name)
        user = User.objects.filter(username=owner).first()
        password = None
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user(username=owner, email=email, password=password)
        membership = Membership.objects.filter(user=user).select_related("organisation").first()
        if membership is not None and membership.organisation_id != org.pk:
            raise CommandError(f"user '{owner}' already belongs to organisation '{membership.organisation}'")
        Membership.objects.update_or_create(user=user, defaults={"organisation": org, "role": Membership.Role.OWNER})
        self.stdout.write(f"organisation '{org}' {'created' if org_created else 'exists'}; owner '{owner}'")
        if password is not None:
            self.stdout.write(f"password for '{owner}': {password}")
