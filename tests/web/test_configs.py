"""Feature and model configs: the spec's sections, validated by the engine when saved, errors keyed by spec path."""

from __future__ import annotations

import pytest

from tests.web.conftest import FEATURES, MODEL, Tenant

pytestmark = pytest.mark.django_db


def _errors(response) -> dict[str, list[str]]:
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["status"] == 422 and body["code"] == "invalid"
    return body["errors"]


def _feature_config(**features) -> dict:
    return {"name": "f", "features": {**FEATURES["features"], **features}}


def _model_config(name: str = "m", training: dict | None = None, **model) -> dict:
    return {"name": name, "model": {**MODEL["model"], **model}, "training": {**MODEL["training"], **(training or {})}}


def test_a_feature_config_is_stored_as_the_engine_normalised_it(acme: Tenant) -> None:
    """Defaults the engine fills in (min_count, oov_buckets, …) are stored, so the config says what will run."""
    response = acme.post("/api/feature-configs", {"name": "f", **FEATURES})
    assert response.status_code == 201
    body = response.json()
    assert body["features"]["buyer"][0] == {
        "column": "buyer", "name": None, "embedding_dim": 8, "transform": "id", "min_count": 1, "oov_buckets": 1,
        "max_vocab": None,
    }  # fmt: skip
    assert acme.client.get(f"/api/feature-configs/{body['id']}").json() == body


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        ({"buyer": []}, "features.buyer", "at least 1 item"),
        ({"buyer": [{"column": "buyer", "transform": "sparkles"}]}, "features.buyer.0", "tag"),
        (
            {"buyer": [{"column": "buyer", "transform": "id", "embedding_dim": 0}]},
            "features.buyer.0.embedding_dim",
            "1",
        ),
        ({"product": [{"transform": "id"}]}, "features.product.0.column", "required"),
        (
            {"product": [{"column": "p", "transform": "id", "colour": "red"}]},
            "features.product.0.colour",
            "unknown key",
        ),
        ({"target_transform": "square"}, "features.target_transform", "log1p"),
    ],
)
def test_a_feature_config_that_can_never_be_valid_is_refused(
    acme: Tenant, change: dict, path: str, fragment: str
) -> None:
    """Each problem comes back under its spec path."""
    errors = _errors(acme.post("/api/feature-configs", _feature_config(**change)))
    assert path in errors, errors
    assert fragment in " ".join(errors[path])


def test_repeated_feature_names_are_refused_by_the_engine_rule(acme: Tenant) -> None:
    """A cross-field rule of the engine (distinct feature names per tower) is applied on save."""
    twice = [{"column": "buyer", "transform": "id"}, {"column": "buyer", "transform": "hashing"}]
    errors = _errors(acme.post("/api/feature-configs", _feature_config(buyer=twice)))
    assert "feature names repeat" in errors["features.buyer"][0]


def test_a_model_config_stores_the_engine_sections_whole(acme: Tenant) -> None:
    """The model and training sections are stored as the engine normalised them, every default filled in."""
    from tandem.spec import ModelSpec, TrainingSpec
    from tandem.web.configs.models import ModelConfig

    response = acme.post("/api/model-configs", _model_config(ranking_loss="huber", dropout=0.1))
    assert response.status_code == 201, response.content
    mc = ModelConfig.objects.get(pk=response.json()["id"])
    assert mc.model == ModelSpec(**{**MODEL["model"], "ranking_loss": "huber", "dropout": 0.1}).model_dump(mode="json")
    assert mc.training == TrainingSpec(**MODEL["training"]).model_dump(mode="json")
    assert mc.model_type == "multitask" and response.json()["model"] == mc.model


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"retrieval_weight": 0.0, "ranking_weight": 0.0}, "model.retrieval_weight"),
        ({"buyer_tower_layers": [0]}, "model.buyer_tower_layers.0"),
        ({"rating_head_layers": [8, 2]}, "model.rating_head_layers"),
        ({"retrieval_weight": -0.1}, "model.retrieval_weight"),
        ({"type": "clustering"}, "model.type"),
        ({"retrieval_algorithm": "scann"}, "model.retrieval_algorithm"),
        ({"index": {"candidate_pool": 0}}, "model.index.candidate_pool"),
        ({"buyer_tower_layers": [100_000]}, "model.buyer_tower_layers.0"),
        ({"buyer_tower_layers": [8] * 9}, "model.buyer_tower_layers"),
        ({"temperature": -1}, "model.temperature"),
        ({"wings": 2}, "model.wings"),
        ({"training": {"optimizer": "lbfgs"}}, "training.optimizer"),
        ({"training": {"epochs": 0}}, "training.epochs"),
        ({"training": {"batch_size": 1}}, "training.batch_size"),
        ({"training": {"learning_rate": 0}}, "training.learning_rate"),
    ],
)
def test_a_model_config_that_can_never_be_valid_is_refused(acme: Tenant, change: dict, path: str) -> None:
    errors = _errors(acme.post("/api/model-configs", _model_config(**change)))
    assert path in errors, errors


def test_a_multitask_config_with_both_weights_zero_names_the_rule(acme: Tenant) -> None:
    errors = _errors(acme.post("/api/model-configs", _model_config(retrieval_weight=0, ranking_weight=0)))
    assert errors == {"model.retrieval_weight": ["a multitask model needs retrieval_weight or ranking_weight above 0"]}


def test_every_problem_is_listed_at_once(acme: Tenant) -> None:
    """A name, a field error and a cross-field error of another section come back in one response."""
    body = _model_config("", training={"epochs": 0}, rating_head_layers=[8, 4])
    errors = _errors(acme.post("/api/model-configs", body))
    assert {"name", "training.epochs", "model.rating_head_layers"} <= set(errors)


def test_names_are_unique_within_an_organisation_only(acme: Tenant, globex: Tenant) -> None:
    assert acme.post("/api/model-configs", {**MODEL, "name": "same"}).status_code == 201
    errors = _errors(acme.post("/api/model-configs", {**MODEL, "name": "same"}))
    assert "already taken" in errors["name"][0]
    assert globex.post("/api/model-configs", {**MODEL, "name": "same"}).status_code == 201


def test_patch_merges_the_keys_sent_and_revalidates(acme: Tenant) -> None:
    mc = acme.post("/api/model-configs", {**MODEL, "name": "m"}).json()
    response = acme.patch(f"/api/model-configs/{mc['id']}", {"training": {"epochs": 5}})
    assert response.status_code == 200
    assert response.json()["training"] == {**mc["training"], "epochs": 5}
    assert response.json()["model"] == mc["model"]
    errors = _errors(
        acme.patch(f"/api/model-configs/{mc['id']}", {"model": {"retrieval_weight": 0, "ranking_weight": 0}})
    )
    assert "model.retrieval_weight" in errors
    assert acme.client.get(f"/api/model-configs/{mc['id']}").json()["model"]["retrieval_weight"] == 1.0


def test_a_config_in_use_keeps_its_history(acme: Tenant, setup_experiment) -> None:
    """Once an experiment uses a config, only its name and description can change; deleting it is refused."""
    experiment = setup_experiment(acme)
    mc, fc = experiment["model_config_id"], experiment["feature_config_id"]
    response = acme.patch(f"/api/model-configs/{mc}", {"training": {"epochs": 9}})
    assert response.status_code == 409
    assert response.json()["code"] == "in_use" and "training" in response.json()["message"]
    assert acme.patch(f"/api/feature-configs/{fc}", {"features": {"target": "ts"}}).status_code == 409
    renamed = acme.patch(f"/api/model-configs/{mc}", {"name": "renamed", "description": "kept"})
    assert renamed.status_code == 200 and renamed.json()["in_use"] is True
    deleted = acme.client.delete(f"/api/model-configs/{mc}")
    assert deleted.status_code == 409 and deleted.json()["code"] == "in_use"
    copy = acme.post(f"/api/model-configs/{mc}/copy", {"name": "copy"})
    assert copy.status_code == 201 and copy.json()["in_use"] is False
    patched = acme.patch(f"/api/model-configs/{copy.json()['id']}", {"training": {"epochs": 9}})
    assert patched.json()["training"]["epochs"] == 9


def test_an_unused_config_can_be_deleted(acme: Tenant) -> None:
    fc = acme.post("/api/feature-configs", {"name": "f", **FEATURES}).json()
    assert acme.client.delete(f"/api/feature-configs/{fc['id']}").status_code == 204
    assert acme.client.get(f"/api/feature-configs/{fc['id']}").status_code == 404


def test_lists_are_paginated_and_newest_first(acme: Tenant) -> None:
    for i in range(3):
        acme.post("/api/model-configs", {**MODEL, "name": f"m{i}"})
    page = acme.client.get("/api/model-configs?limit=2&offset=0").json()
    assert page["count"] == 3 and [m["name"] for m in page["items"]] == ["m2", "m1"]
