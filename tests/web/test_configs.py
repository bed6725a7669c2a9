"""Feature and model configs: validated by the engine's spec when saved, errors keyed by field."""

from __future__ import annotations

import pytest

from tests.web.conftest import FEATURES, MODEL, Tenant

pytestmark = pytest.mark.django_db


def _errors(response) -> dict[str, list[str]]:
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["status"] == 422 and body["code"] == "invalid"
    return body["errors"]


def test_a_feature_config_is_stored_as_the_engine_normalised_it(acme: Tenant) -> None:
    """Defaults the engine fills in (min_count, oov_buckets, …) are stored, so the config says what will run."""
    response = acme.post("/api/feature-configs", {"name": "f", **FEATURES})
    assert response.status_code == 201
    body = response.json()
    assert body["buyer_features"][0] == {
        "column": "buyer", "name": None, "embedding_dim": 8, "transform": "id", "min_count": 1, "oov_buckets": 1,
        "max_vocab": None,
    }  # fmt: skip
    assert acme.client.get(f"/api/feature-configs/{body['id']}").json() == body


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"buyer_features": []}, "buyer_features", "required"),
        ({"buyer_features": [{"column": "buyer", "transform": "sparkles"}]}, "buyer_features", "0"),
        (
            {"buyer_features": [{"column": "buyer", "transform": "id", "embedding_dim": 0}]},
            "buyer_features",
            "embedding_dim",
        ),
        ({"product_features": [{"transform": "id"}]}, "product_features", "column"),
        (
            {"product_features": [{"column": "p", "transform": "id", "colour": "red"}]},
            "product_features",
            "unknown key",
        ),
        ({"target_transform": "square"}, "target_transform", ""),
    ],
)
def test_a_feature_config_that_can_never_be_valid_is_refused(
    acme: Tenant, change: dict, field: str, fragment: str
) -> None:
    errors = _errors(acme.post("/api/feature-configs", {"name": "f", **FEATURES, **change}))
    assert field in errors
    assert fragment in " ".join(errors[field])


def test_repeated_feature_names_are_refused_by_the_engine_rule(acme: Tenant) -> None:
    """A cross-field rule of the engine (distinct feature names per tower) is applied on save."""
    twice = [{"column": "buyer", "transform": "id"}, {"column": "buyer", "transform": "hashing"}]
    errors = _errors(acme.post("/api/feature-configs", {"name": "f", **FEATURES, "buyer_features": twice}))
    assert "feature names repeat" in errors["buyer_features"][0]


def test_a_model_config_maps_its_fields_onto_the_engine_sections(acme: Tenant) -> None:
    """output_embedding_dim ends both towers; loss_function is the engine's ranking_loss; options pass through."""
    from tandem.web.configs.models import ModelConfig

    body = {**MODEL, "name": "m", "output_embedding_dim": 12, "loss_function": "huber",
            "options": {"model": {"dropout": 0.1}, "training": {"weight_decay": 0.01}}}  # fmt: skip
    response = acme.post("/api/model-configs", body)
    assert response.status_code == 201, response.content
    mc = ModelConfig.objects.get(pk=response.json()["id"])
    model = mc.model_section()
    assert model["buyer_tower_layers"] == [16, 12] and model["product_tower_layers"] == [16, 12]
    assert model["ranking_loss"] == "huber" and model["dropout"] == 0.1 and model["type"] == "multitask"
    assert mc.training_section() == {"weight_decay": 0.01, "optimizer": "adagrad", "learning_rate": 0.1,
                                     "batch_size": 128, "epochs": 2}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"retrieval_weight": 0.0, "ranking_weight": 0.0}, "retrieval_weight"),
        ({"buyer_tower_layers": [0]}, "buyer_tower_layers"),
        ({"rating_head_layers": [8, 2]}, "rating_head_layers"),
        ({"buyer_tower_layers": [16], "product_tower_layers": [8]}, "product_tower_layers"),
        ({"ranking_weight": 2.5}, "ranking_weight"),
        ({"retrieval_weight": -0.1}, "retrieval_weight"),
        ({"model_type": "clustering"}, "model_type"),
        ({"retrieval_algorithm": "scann"}, "retrieval_algorithm"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1}, "batch_size"),
        ({"top_k": 0}, "top_k"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"buyer_tower_layers": [100_000]}, "buyer_tower_layers"),
        ({"options": {"model": {"temperature": -1}}}, "options"),
        ({"options": {"model": {"top_k": 5}}}, "options"),
        ({"options": {"serving": {}}}, "options"),
        ({"options": {"model": {"wings": 2}}}, "options"),
    ],
)
def test_a_model_config_that_can_never_be_valid_is_refused(acme: Tenant, change: dict, field: str) -> None:
    errors = _errors(acme.post("/api/model-configs", {**MODEL, "name": "m", **change}))
    assert field in errors, errors


def test_a_multitask_config_with_both_weights_zero_names_the_rule(acme: Tenant) -> None:
    errors = _errors(
        acme.post("/api/model-configs", {**MODEL, "name": "m", "retrieval_weight": 0, "ranking_weight": 0})
    )
    assert errors == {"retrieval_weight": ["a multitask model needs retrieval_weight or ranking_weight above 0"]}


def test_every_problem_is_listed_at_once(acme: Tenant) -> None:
    errors = _errors(acme.post("/api/model-configs", {**MODEL, "name": "", "epochs": 0, "ranking_weight": 3}))
    assert {"name", "epochs", "ranking_weight"} <= set(errors)


def test_names_are_unique_within_an_organisation_only(acme: Tenant, globex: Tenant) -> None:
    assert acme.post("/api/model-configs", {**MODEL, "name": "same"}).status_code == 201
    errors = _errors(acme.post("/api/model-configs", {**MODEL, "name": "same"}))
    assert "already taken" in errors["name"][0]
    assert globex.post("/api/model-configs", {**MODEL, "name": "same"}).status_code == 201


def test_patch_changes_only_the_fields_sent_and_revalidates(acme: Tenant) -> None:
    mc = acme.post("/api/model-configs", {**MODEL, "name": "m"}).json()
    response = acme.patch(f"/api/model-configs/{mc['id']}", {"epochs": 5})
    assert response.status_code == 200
    assert response.json()["epochs"] == 5 and response.json()["top_k"] == MODEL["top_k"]
    errors = _errors(acme.patch(f"/api/model-configs/{mc['id']}", {"retrieval_weight": 0, "ranking_weight": 0}))
    assert "retrieval_weight" in errors
    assert acme.client.get(f"/api/model-configs/{mc['id']}").json()["retrieval_weight"] == 1.0


def test_a_config_in_use_keeps_its_history(acme: Tenant, setup_experiment) -> None:
    """Once an experiment uses a config, only its name and description can change; deleting it is refused."""
    experiment = setup_experiment(acme)
    mc, fc = experiment["model_config_id"], experiment["feature_config_id"]
    response = acme.patch(f"/api/model-configs/{mc}", {"epochs": 9})
    assert response.status_code == 409
    assert response.json()["code"] == "in_use" and "epochs" in response.json()["message"]
    assert acme.patch(f"/api/feature-configs/{fc}", {"target_column": "ts"}).status_code == 409
    renamed = acme.patch(f"/api/model-configs/{mc}", {"name": "renamed", "description": "kept"})
    assert renamed.status_code == 200 and renamed.json()["in_use"] is True
    deleted = acme.client.delete(f"/api/model-configs/{mc}")
    assert deleted.status_code == 409 and deleted.json()["code"] == "in_use"
    copy = acme.post(f"/api/model-configs/{mc}/copy", {"name": "copy"})
    assert copy.status_code == 201 and copy.json()["in_use"] is False
    assert acme.patch(f"/api/model-configs/{copy.json()['id']}", {"epochs": 9}).json()["epochs"] == 9


def test_an_unused_config_can_be_deleted(acme: Tenant) -> None:
    fc = acme.post("/api/feature-configs", {"name": "f", **FEATURES}).json()
    assert acme.client.delete(f"/api/feature-configs/{fc['id']}").status_code == 204
    assert acme.client.get(f"/api/feature-configs/{fc['id']}").status_code == 404


def test_lists_are_paginated_and_newest_first(acme: Tenant) -> None:
    for i in range(3):
        acme.post("/api/model-configs", {**MODEL, "name": f"m{i}"})
    page = acme.client.get("/api/model-configs?limit=2&offset=0").json()
    assert page["count"] == 3 and [m["name"] for m in page["items"]] == ["m2", "m1"]
