"""Organisations own every record; a user belongs to one organisation; API tokens authenticate a user.

A token is shown once, when it is made; only its SHA-256 digest is stored, so a leaked database does not
leak working tokens.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

TOKEN_PREFIX = "tdm_"


class Organisation(models.Model):
    """A team's workspace: its datasets, configs and experiments are visible to its members only."""

    name = models.CharField(_("name"), max_length=100, unique=True, help_text=_("For example: “Acme Wholesale”."))
    budgets = models.JSONField(
        _("budgets"),
        default=dict,
        blank=True,
        help_text=_('Limits that differ from the platform\'s (tandem.web.budgets), e.g. {"running_servers": 8}.'),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        db_table = "tandem_organisation"
        ordering = ["name"]
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """Ties a user to the one organisation whose records they see."""

    class Role(models.TextChoices):
        OWNER = "owner", _("Owner")
        MEMBER = "member", _("Member")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        db_table = "tandem_membership"
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} in {self.organisation} ({self.role})"


def hash_token(token: str) -> str:
    """The digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ApiTokenManager(models.Manager["ApiToken"]):
    """Issues tokens."""

    def issue(self, user: models.Model, name: str = "") -> tuple[ApiToken, str]:
        """Create a token for `user`; returns the record and the plain token (shown once, never stored)."""
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = self.create(user=user, name=name, prefix=plain[:10], digest=hash_token(plain))
        return token, plain


class ApiToken(models.Model):
    """A bearer token for the API (`Authorization: Bearer tdm_…`)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100, blank=True, help_text=_("What it is for, e.g. “CI”."))
    prefix = models.CharField(_("prefix"), max_length=10, help_text=_("The first characters, to recognise it."))
    digest = models.CharField(_("digest"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    objects = ApiTokenManager()

    class Meta:
        db_table = "tandem_api_token"
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    def touch(self) -> None:
        """Record use, at most once a minute (a write per request would be waste)."""
        now = timezone.now()
        if self.last_used_at is None or (now - self.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)


class OwnedQuerySet(models.QuerySet):
    """Queries scoped to an organisation."""

    def of(self, organisation: Organisation) -> OwnedQuerySet:
        """Only `organisation`'s records: every lookup made for a user goes through this."""
        return self.filter(organisation=organisation)


class OwnedModel(models.Model):
    """A named record that belongs to an organisation (datasets, configs, experiments)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    def name_problem(self) -> ValidationError | None:
        """Why this record's name cannot be saved (empty, or taken in its organisation), or None."""
        if not self.name.strip():
            return ValidationError(_("This field is required."), code="required")
        if "\x00" in self.name:
            return ValidationError(_("Null characters are not allowed."), code="null_characters_not_allowed")
        limit = self._meta.get_field("name").max_length
        if len(self.name) > limit:
            return ValidationError(
                _("At most %(limit)d characters, got %(n)d."),
                code="max_length",
                params={"limit": limit, "n": len(self.name)},
            )
        taken = type(self).objects.of(self.organisation).filter(name=self.name).exclude(pk=self.pk)
        if taken.exists():
            return ValidationError(
                _("“%(name)s” is already taken in your organisation."),
                code="duplicate_name",
                params={"name": self.name},
            )
        return None
