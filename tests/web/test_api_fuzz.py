"""Schemathesis over /api/openapi.json: generated requests (bounded in number) to every operation find no
server error and no status the schema does not document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from tests.web.conftest import Tenant

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())


@pytest.fixture
def open_connection() -> Iterator[None]:
    """Keep the test's database connection across WSGI requests (Django's test client does the same)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_operation_answers_a_server_error_or_an_undocumented_status(
    case: Any, acme: Tenant, open_connection: None
) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {acme.token}"}, checks=[not_a_server_error, status_code_conformance]
    )
