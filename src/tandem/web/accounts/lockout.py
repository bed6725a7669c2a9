"""What a locked-out sign-in sees: the sign-in page, status 429, and a sentence that says nothing about the user.

django-axes counts failed sign-ins per user name and address, whether or not the user exists, and refuses
further attempts for a while once AXES_FAILURE_LIMIT is reached; the password is then not even checked.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

MESSAGE = "Too many failed sign-ins from your address for this user name. Try again in {minutes} minutes."


class LockedOutForm(AuthenticationForm):
    """The sign-in form, refused without checking the password."""

    def clean(self) -> dict[str, Any]:
        minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
        raise ValidationError(MESSAGE.format(minutes=minutes), code="locked_out")


def locked_out(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the sign-in page with the refusal beside the form."""
    form = LockedOutForm(request, data=request.POST or None)
    form.is_valid()
    return render(request, "pages/login.html", {"form": form, "next": request.POST.get("next", "")}, status=429)
