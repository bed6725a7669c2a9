""" "Use recommended settings": the new-experiment page makes the configs `tandem init` writes for the dataset's
files, chooses them with the recommended time split, and the experiment they make has the two-stage recommend."""

from __future__ import annotations

import json
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client

from tandem.init import init_spec
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.models import Dataset
from tests.web.conftest import Tenant, upload_dataset
from tests.web.pages.test_views import _text

# Named as `tandem init` names its aggregates, so its spec and the platform's configs can be compared whole.
AGGREGATE = [
    {"name": "total_rating", "fn": "sum", "column": "rating"},
    {"name": "n_orders", "fn": "count_distinct", "column": "ts"},
]


@pytest.fixture
def aggregated(acme: Tenant, synthetic_files: dict[str, Path]) -> Dataset:
    return Dataset.objects.get(
        pk=upload_dataset(acme, synthetic_files, name="lines", aggregate=json.dumps(AGGREGATE))["id"]
    )


def test_the_recommended_configs_are_the_sections_tandem_init_writes_for_the_same_files(
    page_client: Client, aggregated: Dataset, synthetic_files: dict[str, Path], tmp_path: Path
) -> None:
    response = page_client.post("/experiments/new/recommended/", {"dataset": aggregated.pk})
    assert response.status_code == 302
    chosen = {k: v[0] for k, v in parse_qs(urlparse(response["Location"]).query).items()}
    features = FeatureConfig.objects.get(pk=chosen["feature_config"])
    model = ModelConfig.objects.get(pk=chosen["model_config"])
    spec, _ = init_spec(
        tmp_path / "spec.yaml",
        str(synthetic_files["transactions"]),
        buyer_id="buyer",
        product_id="product",
        timestamp="ts",
        target="rating",
        products=(str(synthetic_files["products"]), "product"),
    )
    assert features.features == spec.to_dict()["features"]
    assert model.sections() == {s: spec.to_dict()[s] for s in ("model", "training", "recommend")}
    assert model.recommend["category"] == "category" and model.recommend["history"] > 0
    assert (chosen["dataset"], chosen["split_kind"], chosen["split_cutoff"]) == (
        str(aggregated.pk),
        "time",
        spec.data.split.cutoff,
    )
    # The form comes back with them chosen; its check passes and the spec it would run has the second stage.
    form = page_client.get(response["Location"])
    assert "(two-stage recommend), time split at" in _text(form)
    shown = form.context["form"]
    fields = {name: shown[name].value() for name in shown.fields if shown[name].value() is not None}
    assert fields["split_cutoff"] == spec.data.split.cutoff
    checked = page_client.post("/experiments/new/", {**fields, "action": "validate"})
    assert "Every check passed" in _text(checked), _text(checked)
    assert checked.context["form"].instance.spec["recommend"] == model.recommend
    # Asking again finds the same configs.
    again = page_client.post("/experiments/new/recommended/", {"dataset": aggregated.pk})
    assert again["Location"] == response["Location"]
    assert FeatureConfig.objects.count() == ModelConfig.objects.count() == 1


def test_a_dataset_without_aggregation_or_timestamp_is_told_why_and_nothing_is_made(
    page_client: Client, acme: Tenant, synthetic_files: dict[str, Path]
) -> None:
    lines = upload_dataset(acme, synthetic_files, name="plain")["id"]
    untimed = upload_dataset(
        acme, synthetic_files, name="untimed", timestamp_column="", aggregate=json.dumps(AGGREGATE)
    )["id"]
    for pk, why in (
        (lines, "need the dataset's aggregation to sum a target or count orders"),
        (untimed, "need a timestamp column"),
    ):
        response = page_client.post("/experiments/new/recommended/", {"dataset": pk}, follow=True)
        assert why in unescape(_text(response))
    assert page_client.post("/experiments/new/recommended/", {"dataset": "x"}).status_code == 302
    assert FeatureConfig.objects.count() == ModelConfig.objects.count() == 0


def test_another_organisations_dataset_is_not_found(other_client: Client, aggregated: Dataset) -> None:
    assert other_client.post("/experiments/new/recommended/", {"dataset": aggregated.pk}).status_code == 404
    assert FeatureConfig.objects.count() == 0


def test_the_model_config_form_turns_the_second_stage_on_and_off(page_client: Client, acme: Tenant) -> None:
    """The checkbox named after the optional section decides between null and the section with its fields."""
    shown = page_client.get("/model-configs/new/").context["form"]
    values = {name: shown[name].value() for name in shown.fields}
    initial = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in values.items() if v is not None}
    data = {**initial, "name": "two-stage", "recommend": "on", "recommend-windows": 3, "recommend-rankers": 3}
    data["model-type"] = "retrieval"
    response = page_client.post("/model-configs/new/", data, follow=True)
    assert "Model config “two-stage” saved." in _text(response), _text(response)
    config = ModelConfig.objects.get(name="two-stage")
    assert config.recommend["windows"] == 3 and config.recommend["ranker_loss"] == "lambdarank"
    assert config.recommend["explore_ranker_loss"] == "softmax" and config.recommend["rankers"] == 3
    assert "Two-stage recommend the lists are up to 1,000 of the buyer's past products" in unescape(_text(response))
    assert "ordered by the mean of 3 rankers" in unescape(_text(response))
    data = {**initial, "name": "one-stage", "recommend-windows": 3, "model-type": "retrieval"}
    page_client.post("/model-configs/new/", data)
    assert ModelConfig.objects.get(name="one-stage").recommend is None


def test_the_api_makes_the_same_configs_and_its_answer_starts_an_experiment(
    acme: Tenant, page_client: Client, aggregated: Dataset, synthetic_files: dict[str, Path]
) -> None:
    """POST /api/datasets/{id}/recommended-configs makes (or finds) the configs the page makes; its answer, with a
    name, is a body POST /api/experiments accepts, and the experiment has the second stage."""
    answer = acme.post(f"/api/datasets/{aggregated.pk}/recommended-configs")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    page = page_client.post("/experiments/new/recommended/", {"dataset": aggregated.pk})
    chosen = {k: v[0] for k, v in parse_qs(urlparse(page["Location"]).query).items()}
    assert {k: str(v) for k, v in body.items()} == chosen
    assert FeatureConfig.objects.count() == ModelConfig.objects.count() == 1
    started = acme.post("/api/experiments", {**body, "name": "recommended"})
    assert started.status_code == 201, started.content
    assert started.json()["spec"]["recommend"] == ModelConfig.objects.get().recommend

    untimed = upload_dataset(
        acme, synthetic_files, name="untimed", timestamp_column="", aggregate=json.dumps(AGGREGATE)
    )["id"]
    refused = acme.post(f"/api/datasets/{untimed}/recommended-configs")
    assert refused.status_code == 422
    assert "need a timestamp column" in refused.json()["errors"]["dataset"][0]
    assert acme.post("/api/datasets/999999/recommended-configs").status_code == 404


def test_the_api_does_not_find_another_organisations_dataset(aggregated: Dataset) -> None:
    from tests.web.conftest import make_tenant

    hooli = make_tenant("Hooli")
    assert hooli.post(f"/api/datasets/{aggregated.pk}/recommended-configs").status_code == 404
    assert FeatureConfig.objects.count() == 0
