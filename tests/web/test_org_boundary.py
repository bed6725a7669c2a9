"""The organisation boundary on every endpoint: another organisation's record is a 404, never a 403 or a leak.

The endpoints are enumerated from the OpenAPI schema, so an endpoint added later is checked too (or fails
the test until this file knows how to call it).
"""

from __future__ import annotations

import re

import pytest

from tandem.web.api import api
from tests.web.conftest import Tenant

pytestmark = pytest.mark.django_db

# A body that would be valid for each kind of request, so that only the ownership check can refuse it.
BODIES = {
    ("patch", "/api/datasets/{dataset_id}"): {"description": "mine now"},
    ("patch", "/api/feature-configs/{config_id}"): {"description": "mine now"},
    ("patch", "/api/model-configs/{config_id}"): {"description": "mine now"},
    ("post", "/api/feature-configs/{config_id}/copy"): {"name": "stolen"},
    ("post", "/api/model-configs/{config_id}/copy"): {"name": "stolen"},
}


def _operations() -> list[tuple[str, str]]:
    schema = api.get_openapi_schema()
    return sorted((method, path) for path, ops in schema["paths"].items() for method in ops)


@pytest.fixture
def acme_records(acme: Tenant, setup_experiment) -> dict[str, int]:
    from tandem.web.deployments.models import Deployment

    experiment = setup_experiment(acme)
    deployment = Deployment.objects.create(organisation=acme.organisation, experiment_id=experiment["id"],
                                           bundle="/nowhere", host="127.0.0.1", port=1, status="stopped")  # fmt: skip
    return {
        "dataset": experiment["dataset_id"],
        "feature-configs": experiment["feature_config_id"],
        "model-configs": experiment["model_config_id"],
        "experiment": experiment["id"],
        "deployment": deployment.pk,
    }


def _fill(path: str, ids: dict[str, int]) -> str:
    if "{dataset_id}" in path:
        return path.replace("{dataset_id}", str(ids["dataset"]))
    if "{experiment_id}" in path:
        return path.replace("{experiment_id}", str(ids["experiment"]))
    if "{deployment_id}" in path:
        return path.replace("{deployment_id}", str(ids["deployment"])).replace("{endpoint}", "retrieve")
    kind = path.split("/")[2]
    return path.replace("{config_id}", str(ids[kind]))


def test_every_endpoint_with_an_id_answers_404_for_another_organisations_record(
    acme: Tenant, globex: Tenant, acme_records: dict[str, int]
) -> None:
    checked = []
    for method, path in _operations():
        if "{" not in path:
            continue
        url = _fill(path, acme_records)
        body = BODIES.get((method, path), {})
        response = getattr(globex.client, method)(url, body, content_type="application/json")
        assert response.status_code == 404, (method, url, response.content)
        assert response.json()["code"] == "not_found"
        checked.append((method, path))
    assert len(checked) >= 15
    # Nothing changed hands or disappeared: acme still sees all of it, unchanged.
    assert acme.client.get(f"/api/datasets/{acme_records['dataset']}").json()["description"] == ""
    assert acme.client.get(f"/api/experiments/{acme_records['experiment']}").json()["status"] == "pending"


def test_a_missing_record_and_another_organisations_record_look_the_same(
    acme: Tenant, globex: Tenant, acme_records: dict[str, int]
) -> None:
    theirs = globex.client.get(f"/api/experiments/{acme_records['experiment']}")
    missing = globex.client.get("/api/experiments/999999")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["code"] == missing.json()["code"]


def test_lists_show_only_the_callers_records(acme: Tenant, globex: Tenant, acme_records: dict[str, int]) -> None:
    paths = [
        p for m, p in _operations() if m == "get" and "{" not in p and p not in ("/api/me", "/api/experiments/compare")
    ]
    assert set(paths) == {
        "/api/datasets",
        "/api/feature-configs",
        "/api/model-configs",
        "/api/experiments",
        "/api/deployments",
    }
    for path in paths:
        assert globex.client.get(path).json() == {"items": [], "count": 0}, path
        assert acme.client.get(path).json()["count"] == 1, path


def test_compare_refuses_another_organisations_experiment(
    acme: Tenant, globex: Tenant, acme_records: dict[str, int], setup_experiment
) -> None:
    own = setup_experiment(globex)["id"]
    response = globex.client.get(f"/api/experiments/compare?ids={own}&ids={acme_records['experiment']}")
    assert response.status_code == 404


def test_an_experiment_cannot_use_another_organisations_dataset_or_configs(
    acme: Tenant, globex: Tenant, acme_records: dict[str, int]
) -> None:
    response = globex.post(
        "/api/experiments",
        {"dataset": acme_records["dataset"], "feature_config": acme_records["feature-configs"],
         "model_config": acme_records["model-configs"]},
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["errors"] == {
        "dataset": ["No such dataset in your organisation."],
        "feature_config": ["No such feature config in your organisation."],
        "model_config": ["No such model config in your organisation."],
    }


def test_creating_records_never_takes_an_organisation_from_the_input(acme: Tenant, globex: Tenant) -> None:
    """An `organisation` key in the body is refused as unknown: records always belong to the caller's organisation."""
    from tandem.web.configs.models import ModelConfig

    response = globex.post("/api/model-configs", {"name": "m", "organisation": acme.organisation.pk,
                                                  "organisation_id": acme.organisation.pk})  # fmt: skip
    assert response.status_code == 422
    assert {"organisation", "organisation_id"} <= set(response.json()["errors"])
    created = globex.post("/api/model-configs", {"name": "m"})
    assert ModelConfig.objects.get(pk=created.json()["id"]).organisation == globex.organisation
    assert not ModelConfig.objects.filter(organisation=acme.organisation).exists()


def test_every_endpoint_needs_authentication() -> None:
    from django.test import Client

    anonymous = Client()
    for method, path in _operations():
        url = re.sub(r"\{\w+\}", "1", path)
        response = getattr(anonymous, method)(url, {}, content_type="application/json")
        assert response.status_code == 401, (method, url)
