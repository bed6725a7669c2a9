"""Sign-in throttling (django-axes): repeated wrong passwords lock the user name out from that address for a
while, the right password included, and no answer tells whether the user exists."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client

from tests.web.conftest import Tenant

pytestmark = pytest.mark.django_db


def _sign_in(client: Client, username: str, password: str):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR="10.0.0.7")


def _errors(response) -> str:
    found = re.search(r'<div class="form-errors">(.*?)</div>', response.content.decode(), re.S)
    return found.group(1).strip() if found else ""


def test_thirty_wrong_passwords_lock_the_user_out_even_with_the_right_one(acme: Tenant) -> None:
    """The old platform let the 31st attempt in; now the lock-out holds and the password is not even checked."""
    client = Client()
    name = acme.user.get_username()
    statuses = [_sign_in(client, name, f"wrong-{i}").status_code for i in range(30)]
    limit = settings.AXES_FAILURE_LIMIT
    assert statuses[: limit - 1] == [200] * (limit - 1) and set(statuses[limit:]) == {429}
    locked = _sign_in(client, name, acme.password)
    assert locked.status_code == 429 and "_auth_user_id" not in client.session
    assert "Try again in 15 minutes" in _errors(locked)
    # Another address is not locked out by this one's failures.
    fresh = Client().post("/login/", {"username": name, "password": acme.password}, REMOTE_ADDR="10.0.0.8")
    assert fresh.status_code == 302


def test_answers_do_not_tell_whether_a_user_exists(acme: Tenant) -> None:
    """A wrong password and an unknown user get the same words, before and after the lock-out."""
    client = Client()
    real, ghost = acme.user.get_username(), "nobody-here"
    assert _errors(_sign_in(client, real, "wrong")) == _errors(_sign_in(client, ghost, "wrong")) != ""
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, real, "wrong")
        _sign_in(client, ghost, "wrong")
    a, b = _sign_in(client, real, "wrong"), _sign_in(client, ghost, "wrong")
    assert a.status_code == b.status_code == 429
    assert _errors(a) == _errors(b) != ""


def test_a_successful_sign_in_clears_the_count(acme: Tenant) -> None:
    """Failures below the limit are forgotten once the person signs in."""
    client = Client()
    name = acme.user.get_username()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(client, name, "wrong")
    assert _sign_in(client, name, acme.password).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, name, "wrong").status_code == 200
