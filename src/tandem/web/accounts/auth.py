"""Who is calling the API: a bearer token or a signed-in session, resolved to a user and their organisation.

Both authenticators return an :class:`Actor`, so every endpoint reads `request.auth.organisation` and
never has to know how the caller signed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from ninja.security import HttpBearer
from ninja.security.apikey import APIKeyCookie

from tandem.web.accounts.models import ApiToken, Organisation, hash_token


@dataclass(frozen=True)
class Actor:
    """The caller of a request: the user and the organisation whose records they may see."""

    user: AbstractBaseUser
    organisation: Organisation


def actor_for(user: AbstractBaseUser) -> Actor | None:
    """The user's Actor, or None for an inactive user or one who belongs to no organisation."""
    if not user.is_active:
        return None
    membership = getattr(user, "membership", None)
    return Actor(user, membership.organisation) if membership is not None else None


class TokenAuth(HttpBearer):
    """`Authorization: Bearer tdm_…`: a token issued by `manage.py create_token`."""

    def authenticate(self, request: HttpRequest, token: str) -> Actor | None:
        if not token or len(token) > 200:
            return None
        record = (
            ApiToken.objects.select_related("user__membership__organisation").filter(digest=hash_token(token)).first()
        )
        if record is None:
            return None
        actor = actor_for(record.user)
        if actor is not None:
            record.touch()
        return actor


class SessionActorAuth(APIKeyCookie):
    """The pages' signed-in session, with Django's CSRF check for unsafe methods.

    Unlike ninja's SessionAuth it checks CSRF only when a session cookie is sent, so a request with no
    credentials at all gets a 401, not a confusing CSRF 403.
    """

    param_name: str = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        if self.param_name not in request.COOKIES:
            return None
        return super()._get_key(request)

    def authenticate(self, request: HttpRequest, key: Any) -> Actor | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return actor_for(user)
