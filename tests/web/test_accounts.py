"""Organisations, users and tokens: the management commands and the API's authentication."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from tandem.web.accounts.models import ApiToken, Membership, Organisation, hash_token

pytestmark = pytest.mark.django_db


def _call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_org_creates_the_owner_and_prints_a_password_that_works() -> None:
    """A new owner is created with a random password, printed once."""
    out = _call("create_org", "Acme", "--owner", "ann")
    password = out.split("password for 'ann': ")[1].strip()
    user = get_user_model().objects.get(username="ann")
    assert user.check_password(password)
    assert Membership.objects.get(user=user).organisation.name == "Acme"
    assert Membership.objects.get(user=user).role == "owner"


def test_create_org_with_an_existing_user_prints_no_password() -> None:
    """An existing user keeps their password, and none is printed."""
    get_user_model().objects.create_user(username="bob", password="secret-1")
    out = _call("create_org", "Acme", "--owner", "bob")
    assert "password" not in out
    assert get_user_model().objects.get(username="bob").check_password("secret-1")


def test_create_org_refuses_a_user_of_another_organisation() -> None:
    """A user belongs to one organisation; moving them silently would hand them another's records."""
    _call("create_org", "Acme", "--owner", "carl")
    with pytest.raises(CommandError, match="already belongs to organisation 'Acme'"):
        _call("create_org", "Globex", "--owner", "carl")


def test_create_token_prints_a_token_that_authenticates_and_is_stored_hashed() -> None:
    """The printed token works as a bearer token; the database holds only its digest."""
    _call("create_org", "Acme", "--owner", "dana")
    token = _call("create_token", "dana").strip()
    assert token.startswith("tdm_")
    assert not ApiToken.objects.filter(digest=token).exists()
    assert ApiToken.objects.filter(digest=hash_token(token)).exists()
    response = Client(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/me")
    assert response.status_code == 200
    assert response.json() == {
        "username": "dana",
        "organisation": "Acme",
        "organisation_id": Organisation.objects.get().pk,
    }


def test_create_token_for_an_unknown_user_fails() -> None:
    with pytest.raises(CommandError, match="no user 'nobody'"):
        _call("create_token", "nobody")


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer nope", "Token tdm_x", "Bearer " + "x" * 5000, "Basic YWxpY2U6cHc="],
)
def test_requests_without_a_valid_token_get_401_in_the_error_shape(header: str | None) -> None:
    """Missing, malformed and unknown credentials all get a 401 with the API's error shape."""
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    response = client.get("/api/me")
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == 401 and body["code"] == "unauthorized" and body["errors"] == {}


def test_a_token_of_an_inactive_user_is_refused() -> None:
    _call("create_org", "Acme", "--owner", "eve")
    token = _call("create_token", "eve").strip()
    get_user_model().objects.filter(username="eve").update(is_active=False)
    assert Client(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/me").status_code == 401


def test_a_signed_in_session_reaches_the_api_and_needs_csrf_to_change_things() -> None:
    """Pages' sessions work for reads; writes need Django's CSRF token like any form post."""
    _call("create_org", "Acme", "--owner", "fay")
    user = get_user_model().objects.get(username="fay")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/me").json()["username"] == "fay"
    response = client.post("/api/feature-configs", {}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_the_login_page_signs_in_and_the_home_page_shows_the_organisation() -> None:
    _call("create_org", "Acme", "--owner", "gus")
    user = get_user_model().objects.get(username="gus")
    user.set_password("pw-12345678")
    user.save()
    client = Client()
    assert client.get("/").status_code == 302
    response = client.post("/accounts/login/", {"username": "gus", "password": "pw-12345678"}, follow=True)
    assert response.status_code == 200
    assert b"Acme" in response.content
