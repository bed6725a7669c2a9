"""The pages through Django's test client: each renders, each keeps to the caller's organisation, and forms
put every problem beside the field it concerns."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from typing import Any

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.models import Dataset
from tandem.web.experiments.models import Experiment, Status
from tests.web.conftest import Tenant, create_configs, run_profiling

pytestmark = pytest.mark.django_db


def _strip(html: str) -> str:
    """Visible text of some HTML: tags removed, spaces collapsed (what a person reads)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _text(response: Any) -> str:
    return _strip(response.content.decode())


def _field_errors(response: Any, field: str) -> list[str]:
    """Messages shown beside `field` (the `data-field` the templates put on each error)."""
    html = response.content.decode()
    return [m.strip() for m in re.findall(rf'data-field="{field}"[^>]*>(.*?)</', html, flags=re.S)]


# ----------------------------------------------------------------------------------------- every page


def test_every_page_renders_for_a_member(page_client: Client, finished: Callable[..., Any], acme: Tenant) -> None:
    """Each page answers 200 with the navigation, for an organisation that has a dataset and a finished run."""
    e = finished(acme)
    urls = [
        "/dashboard/",
        "/datasets/",
        "/datasets/new/",
        f"/datasets/{e.dataset_id}/",
        "/feature-configs/",
        "/feature-configs/new/",
        "/model-configs/",
        "/model-configs/new/",
        "/experiments/",
        "/experiments/new/",
        f"/experiments/{e.pk}/",
        "/compare/",
        f"/compare/?ids={e.pk}",
    ]
    for url in urls:
        response = page_client.get(url)
        assert response.status_code == 200, url
        for entry in ("Dashboard", "Datasets", "Feature configs", "Model configs", "Experiments", "Compare"):
            assert entry in _text(response), (url, entry)


def test_pages_ask_to_sign_in(client: Client, db: None) -> None:
    response = client.get("/experiments/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/experiments/")
    assert client.get("/login/").status_code == 200


def test_signing_in_leads_to_the_dashboard(client: Client, acme: Tenant) -> None:
    response = client.post("/login/", {"username": acme.user.username, "password": acme.password}, follow=True)
    assert response.redirect_chain[-1][0] == "/dashboard/"
    assert "Acme" in _text(response)


def test_a_user_without_an_organisation_is_told_how_to_get_one(client: Client, django_user_model: Any) -> None:
    client.force_login(django_user_model.objects.create_user("loner", password="pw-12345678"))
    response = client.get("/dashboard/")
    assert response.status_code == 403 and "create_org" in _text(response)


def test_empty_pages_say_what_to_do_next(page_client: Client) -> None:
    """With nothing yet, each list points to the step that comes first."""
    assert "Upload a dataset" in _text(page_client.get("/datasets/"))
    assert "Upload a dataset first" in _text(page_client.get("/feature-configs/"))
    assert "New model config" in _text(page_client.get("/model-configs/"))
    assert "No experiments yet" in _text(page_client.get("/experiments/"))
    assert "needs a dataset, a feature config and a model config" in _text(page_client.get("/experiments/new/"))
    assert "Getting started" in _text(page_client.get("/dashboard/"))
    assert "Nothing to compare yet" in _text(page_client.get("/compare/"))


# --------------------------------------------------------------------------------- organisation boundary


def test_another_organisations_records_are_not_found(
    other_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    """Every page of a record of Acme's answers 404 to Globex's user, as if it did not exist."""
    e = finished(acme, status=Status.FAILED, error="boom")
    for url in (
        f"/datasets/{e.dataset_id}/",
        f"/datasets/{e.dataset_id}/histograms/",
        f"/experiments/{e.pk}/",
        f"/experiments/{e.pk}/card/",
        f"/experiments/{e.pk}/live/",
        f"/compare/?ids={e.pk}",
        f"/experiments/new/?from={e.pk}",
        f"/feature-configs/new/?dataset={e.dataset_id}",
    ):
        assert other_client.get(url).status_code == 404, url
    for url in (f"/experiments/{e.pk}/cancel/", f"/experiments/{e.pk}/rerun/", f"/datasets/{e.dataset_id}/"):
        assert other_client.post(url).status_code == 404, url
    assert Experiment.objects.get(pk=e.pk).status == Status.FAILED


def test_lists_show_only_the_callers_organisation(
    other_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    e = finished(acme)
    for url in ("/datasets/", "/feature-configs/", "/model-configs/", "/experiments/", "/compare/", "/dashboard/"):
        text = _text(other_client.get(url))
        for name in (e.name, e.dataset.name, e.feature_config.name, e.model_config.name):
            assert name not in text, (url, name)


def test_a_new_experiment_cannot_use_another_organisations_records(
    other_client: Client, finished: Callable[..., Any], acme: Tenant, globex: Tenant
) -> None:
    e = finished(acme)
    own = finished(globex)
    data = {
        "dataset": e.dataset_id,
        "feature_config": e.feature_config_id,
        "model_config": e.model_config_id,
        "sample_fraction": 1,
        "split_kind": "random",
        "test_fraction": 0.2,
        "validation_fraction": 0,
        "seed": 42,
        "action": "start",
    }
    response = other_client.post("/experiments/new/", data)
    assert response.status_code == 200
    assert "No such dataset in your organisation." in _field_errors(response, "dataset")
    assert list(Experiment.objects.of(globex.organisation)) == [own]


# ------------------------------------------------------------------------------------------- datasets


def test_an_upload_creates_the_dataset_and_shows_its_profile(page_client: Client, synthetic_files: Any) -> None:
    with synthetic_files["transactions"].open("rb") as tx:
        response = page_client.post(
            "/datasets/new/",
            {
                "name": "mine",
                "transactions": tx,
                "buyer_id_column": "buyer",
                "product_id_column": "product",
                "timestamp_column": "ts",
            },
            follow=True,
        )
    dataset = Dataset.objects.get(name="mine")
    assert response.redirect_chain[-1][0] == f"/datasets/{dataset.pk}/"
    text = _text(response)
    assert "Profiling" in text and "updates by itself" in text and "1,800 rows" not in text
    poll = page_client.get(f"/datasets/{dataset.pk}/status/", HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 2s"' in poll.content.decode() and "HX-Refresh" not in poll
    assert run_profiling() == ["ready"]
    poll = page_client.get(f"/datasets/{dataset.pk}/status/", HTTP_HX_REQUEST="true")
    assert poll["HX-Refresh"] == "true"  # the page reloads once, with the statistics
    text = _text(page_client.get(f"/datasets/{dataset.pk}/"))
    assert "1,800 rows" in text and "rating" in text and "DOUBLE" in text and "buyer id" in text
    assert "every 2s" not in page_client.get(f"/datasets/{dataset.pk}/").content.decode()


def test_a_failed_profile_is_shown_with_its_reason(page_client: Client) -> None:
    csv = SimpleUploadedFile("t.csv", b"buyer,product\n")  # a header, no rows: only the whole file shows it
    page_client.post("/datasets/new/", {"name": "d", "transactions": csv, "buyer_id_column": "buyer",
                                        "product_id_column": "product"})  # fmt: skip
    assert run_profiling() == ["failed"]
    dataset = Dataset.objects.get(name="d")
    text = _text(page_client.get(f"/datasets/{dataset.pk}/"))
    assert "Profiling failed" in text and "t.csv: the file has no data rows" in text
    assert "Failed" in _text(page_client.get("/datasets/"))


def test_an_htmx_upload_is_sent_to_the_new_dataset(page_client: Client, synthetic_files: Any) -> None:
    with synthetic_files["transactions"].open("rb") as tx:
        response = page_client.post(
            "/datasets/new/",
            {"name": "mine", "transactions": tx, "buyer_id_column": "buyer", "product_id_column": "product"},
            HTTP_HX_REQUEST="true",
        )
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"/datasets/{Dataset.objects.get(name='mine').pk}/"


def test_a_refused_upload_shows_the_problem_beside_the_file_and_the_columns(page_client: Client) -> None:
    """A wrong column is named beside its picker; nothing is stored."""
    csv = SimpleUploadedFile("t.csv", b"buyer,product,qty\nb1,p1,1\nb2,p2,3\n")
    response = page_client.post(
        "/datasets/new/",
        {"name": "d", "transactions": csv, "buyer_id_column": "customer", "product_id_column": "product"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert any("No column “customer”" in m for m in _field_errors(response, "buyer_id_column"))
    assert not Dataset.objects.exists()
    empty = SimpleUploadedFile("e.csv", b"")
    response = page_client.post("/datasets/new/", {"name": "d", "transactions": empty, "buyer_id_column": "b"})
    assert _field_errors(response, "transactions") == ["The submitted file is empty."]  # once, not twice
    assert _field_errors(response, "product_id_column") == ["This field is required."]


def test_histograms_summarise_each_column_by_its_kind(
    page_client: Client, dataset: Dataset, synthetic_files: Any
) -> None:
    """Few values: a bar each; many numbers: twelve bins; many ids: how often they occur."""
    html = page_client.get(f"/datasets/{dataset.pk}/histograms/").content.decode()
    tables = dict(re.findall(r'data-profile="(\w+)">(.*?)</table>', html, flags=re.S))
    bars = {
        (role, column): re.findall(r"<title>([^<]*)</title>", row)
        for role, table in tables.items()
        for column, row in re.findall(r'<tr data-column="([^"]+)">(.*?)</tr>', table, flags=re.S)
    }
    ratings = pd.read_csv(synthetic_files["transactions"])["rating"].value_counts().sort_index()
    assert bars["transactions", "rating"] == [f"{v:.4g}: {n:,}" for v, n in ratings.items()]
    assert len(bars["transactions", "ts"]) == 12
    assert bars["transactions", "buyer"] == ["30×: 60"]  # 60 buyers seen 30 times each
    assert len(bars["transactions", "product"]) == 12  # products are seen 9 to 23 times: binned
    assert all(re.fullmatch(r"\d+× – \d+×: \d+", title) for title in bars["transactions", "product"])
    assert sorted(bars["products", "category"]) == ["group0: 30", "group1: 30", "group2: 30", "group3: 30"]


# ------------------------------------------------------------------------------------ feature configs


def _feature_post(form_html: str, **changes: str) -> dict[str, str]:
    """The feature form's values as the page first offers them (selected options, inputs), then `changes`."""
    data: dict[str, str] = {}
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', form_html, flags=re.S):
        selected = re.search(r'<option value="([^"]*)"[^>]*selected', body)
        data[name] = selected.group(1) if selected else ""
    for name, value in re.findall(r'<input type="number" name="([^"]+)" value="([^"]*)"', form_html):
        data[name] = value
    return {**data, **changes}


def test_the_feature_form_offers_the_columns_with_sensible_starts(page_client: Client, dataset: Dataset) -> None:
    """Ids start on their towers, the products file's columns on the product tower; only numbers are targets."""
    response = page_client.get(f"/feature-configs/new/?dataset={dataset.pk}")
    html = response.content.decode()
    rows = dict(re.findall(r'<tr data-column="([^"]+)"[^>]*>(.*?)</tr>', html, flags=re.S))
    assert set(rows) == {"buyer", "product", "rating", "ts", "category"}
    data = _feature_post(html)
    index = {c: i for i, c in enumerate(["buyer", "product", "rating", "ts", "category"])}
    assert (data[f"side_{index['buyer']}"], data[f"transform_{index['buyer']}"]) == ("buyer", "id")
    assert (data[f"side_{index['category']}"], data[f"transform_{index['category']}"]) == ("product", "categorical")
    assert data[f"side_{index['rating']}"] == ""
    target = re.search(r'<select name="features-target".*?</select>', html, flags=re.S).group(0)
    assert re.findall(r'<option value="([^"]+)"', target) == ["rating"]
    assert data["features-target"] == "rating"


def test_a_feature_config_is_saved_as_the_platform_expects(page_client: Client, dataset: Dataset, acme: Tenant) -> None:
    html = page_client.get(f"/feature-configs/new/?dataset={dataset.pk}").content.decode()
    data = _feature_post(html, name="fc", dataset=str(dataset.pk), dim_0="8", side_2="buyer", transform_2="bucketize")
    response = page_client.post("/feature-configs/new/", data, follow=True)
    assert "Feature config “fc” saved." in _text(response)
    config = FeatureConfig.objects.of(acme.organisation).get(name="fc")
    assert [(f["column"], f["transform"], f.get("embedding_dim")) for f in config.features["buyer"]] == [
        ("buyer", "id", 8),
        ("rating", "bucketize", 32),
    ]
    assert [(f["column"], f["transform"]) for f in config.features["product"]] == [
        ("product", "id"),
        ("category", "categorical"),
    ]
    assert config.features["target"] == "rating"


def test_the_product_id_feeds_the_product_tower_and_the_buyers_purchase_history(
    page_client: Client, dataset: Dataset, acme: Tenant
) -> None:
    """One column, two uses: the product tower's id embedding and a buyer bag over it; the edit form shows both."""
    html = page_client.get(f"/feature-configs/new/?dataset={dataset.pk}").content.decode()
    assert "history" not in re.search(r'<select name="transform_0".*?</select>', html, flags=re.S).group(0)
    data = _feature_post(html, name="fc-history", dataset=str(dataset.pk), history_weighting="recency")
    response = page_client.post("/feature-configs/new/", {**data, "history_columns": ["product"]}, follow=True)
    assert "Feature config “fc-history” saved." in _text(response)
    config = FeatureConfig.objects.of(acme.organisation).get(name="fc-history")
    assert [(f["column"], f["transform"]) for f in config.features["buyer"]] == [
        ("buyer", "id"),
        ("product", "history"),
    ]
    assert config.features["buyer"][1]["weighting"] == "recency"
    assert ("product", "id") in [(f["column"], f["transform"]) for f in config.features["product"]]
    edit = page_client.get(f"/feature-configs/{config.pk}/edit/?dataset={dataset.pk}")
    assert edit.context["form"]["history_columns"].value() == ["product"]
    assert edit.context["form"]["history_weighting"].value() == "recency"
    assert edit.context["form"]["side_1"].value() == "product"  # the id row keeps its own place


def test_a_history_over_a_column_the_product_tower_lacks_is_refused_on_the_buyer_tower(
    page_client: Client, dataset: Dataset
) -> None:
    html = page_client.get(f"/feature-configs/new/?dataset={dataset.pk}").content.decode()
    data = {**_feature_post(html, name="bad", dataset=str(dataset.pk), side_4=""), "history_columns": ["category"]}
    response = page_client.post("/feature-configs/new/", data)
    buyer_tower = re.search(r'data-field="features-buyer">(.*?)</div>', response.content.decode(), flags=re.S)
    assert "shares the product tower's embedding of 'category'" in unescape(buyer_tower.group(1))
    assert not FeatureConfig.objects.exists()


def test_feature_problems_are_shown_beside_the_tower_row_and_target(page_client: Client, dataset: Dataset) -> None:
    html = page_client.get(f"/feature-configs/new/?dataset={dataset.pk}").content.decode()
    nothing_on_buyer = _feature_post(
        html, name="", dataset=str(dataset.pk), side_0="", **{"features-target": "category"}
    )
    response = page_client.post("/feature-configs/new/", nothing_on_buyer)
    buyer_tower = re.search(r'data-field="features-buyer">(.*?)</div>', response.content.decode(), flags=re.S)
    assert "at least 1 item" in buyer_tower.group(1)
    assert _field_errors(response, "name") == ["This field is required."]
    assert "not one of the available choices" in " ".join(_field_errors(response, "features-target"))
    too_wide = _feature_post(html, name="x", dataset=str(dataset.pk), dim_1="5000")
    row = re.search(
        r'<tr data-column="product"[^>]*>(.*?)</tr>',
        page_client.post("/feature-configs/new/", too_wide).content.decode(),
        flags=re.S,
    ).group(1)
    assert "less than or equal to 4096" in row
    assert not FeatureConfig.objects.exists()


# -------------------------------------------------------------------------------------- model configs


MODEL_FORM = {
    "name": "mt",
    "model-type": "multitask",
    "model-buyer_tower_layers": ["32", "16"],
    "model-product_tower_layers": ["32", "16"],
    "model-rating_head_layers": ["16", "1"],
    "model-retrieval_weight": "1.5",
    "model-ranking_weight": "0.5",
    "model-ranking_loss": "mse",
    "model-retrieval_algorithm": "brute_force",
    "training-optimizer": "adagrad",
    "training-learning_rate": "0.1",
    "training-batch_size": "128",
    "training-epochs": "2",
}


def test_the_model_form_shows_sliders_layer_rows_and_fields_per_type(page_client: Client) -> None:
    html = page_client.get("/model-configs/new/").content.decode()
    for name in ("model-retrieval_weight", "model-ranking_weight"):
        slider = re.search(rf'<input type="range" name="{name}"[^>]*>', html).group(0)
        assert 'min="0.0"' in slider and 'max="2.0"' in slider and 'step="0.1"' in slider
    assert html.count('<input type="number" name="model-rating_head_layers"') == 3 and "+ Add layer" in html
    assert re.search(r'data-types="multitask"[^>]*>\s*<legend>Loss weights', html)
    assert re.search(r'data-types="ranking multitask"[^>]*>\s*<legend>Ranking head', html)


def test_a_multitask_model_config_is_saved_with_lists_and_weights(page_client: Client, acme: Tenant) -> None:
    response = page_client.post("/model-configs/new/", MODEL_FORM, follow=True)
    assert "Model config “mt” saved." in _text(response)
    config = ModelConfig.objects.of(acme.organisation).get(name="mt")
    assert config.model["buyer_tower_layers"] == [32, 16] and config.model["rating_head_layers"] == [16, 1]
    assert (config.model["retrieval_weight"], config.model["ranking_weight"]) == (1.5, 0.5)
    assert config.training["epochs"] == 2 and config.model_type == "multitask"


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"model-retrieval_weight": "0", "model-ranking_weight": "0"}, "model-retrieval_weight", "above 0"),
        ({"model-retrieval_weight": "-0.5"}, "model-retrieval_weight", "greater than or equal to 0"),
        ({"model-buyer_tower_layers": ["32", "abc"]}, "model-buyer_tower_layers", "whole numbers"),
        ({"model-product_tower_layers": ["32", "0"]}, "model-product_tower_layers", "greater than or equal to 1"),
        ({"model-rating_head_layers": ["16", "4"]}, "model-rating_head_layers", "1"),
        ({"training-epochs": "0"}, "training-epochs", "greater than or equal to 1"),
        ({"model-product_tower_layers": ["32", "8"]}, "model-product_tower_layers", "differ"),
    ],
)
def test_model_config_problems_are_shown_beside_their_field(
    page_client: Client, change: dict, field: str, fragment: str
) -> None:
    response = page_client.post("/model-configs/new/", {**MODEL_FORM, **change})
    assert response.status_code == 200
    errors = _field_errors(response, field)
    assert errors and fragment in " ".join(errors), _text(response)
    assert not ModelConfig.objects.exists()


def test_a_field_error_and_a_rule_of_another_section_are_shown_together(page_client: Client) -> None:
    """One submission reports a training field's bound and the model's cross-field rule at once."""
    response = page_client.post(
        "/model-configs/new/", {**MODEL_FORM, "training-epochs": "0", "model-rating_head_layers": ["16", "4"]}
    )
    assert "greater than or equal to 1" in " ".join(_field_errors(response, "training-epochs"))
    assert "must end in 1" in " ".join(_field_errors(response, "model-rating_head_layers"))


# ---------------------------------------------------------------------------------------- experiments


def _experiment_form(dataset: Dataset, fc: int, mc: int, **changes: Any) -> dict[str, Any]:
    return {
        "dataset": dataset.pk,
        "feature_config": fc,
        "model_config": mc,
        "sample_fraction": "1",
        "split_kind": "random",
        "test_fraction": "0.2",
        "validation_fraction": "0",
        "seed": "42",
        "split_cutoff": "",
        "name": "",
        "description": "",
        **changes,
    }


def test_validate_lists_every_problem_and_starts_nothing(page_client: Client, dataset: Dataset, acme: Tenant) -> None:
    """The engine's rules and the platform's are all reported at once, each beside its field and in the list."""
    fc, mc = create_configs(acme, features={"target": None}, model={"index": {"candidate_pool": 5000}})
    data = _experiment_form(dataset, fc, mc, split_kind="time", split_cutoff="soon", action="validate")
    response = page_client.post("/experiments/new/", data)
    assert "3 problems to fix" in _text(response)
    assert "needs a target column" in " ".join(_field_errors(response, "feature_config"))
    assert "candidate_pool 5000 is larger than the catalog (120 products)" in " ".join(
        _field_errors(response, "model_config")
    )
    assert "is not a date or timestamp" in " ".join(_field_errors(response, "split_cutoff"))
    response = page_client.post("/experiments/new/", {**data, "sample_fraction": "0", "split_cutoff": ""})
    assert "greater than 0" in " ".join(_field_errors(response, "sample_fraction"))
    assert not Experiment.objects.exists()


def test_an_experiment_on_a_dataset_still_profiling_is_refused_beside_the_dataset(
    page_client: Client, dataset: Dataset, acme: Tenant
) -> None:
    Dataset.objects.filter(pk=dataset.pk).update(status="profiling")
    fc, mc = create_configs(acme)
    for action in ("validate", "start"):
        response = page_client.post("/experiments/new/", _experiment_form(dataset, fc, mc, action=action))
        assert "is still being profiled" in " ".join(_field_errors(response, "dataset")), action
    assert not Experiment.objects.exists()


def test_a_valid_experiment_passes_validation_then_starts(page_client: Client, dataset: Dataset, acme: Tenant) -> None:
    fc, mc = create_configs(acme)
    checked = page_client.post("/experiments/new/", _experiment_form(dataset, fc, mc, action="validate"))
    assert "Every check passed" in _text(checked) and not Experiment.objects.exists()
    started = page_client.post("/experiments/new/", _experiment_form(dataset, fc, mc, name="run", action="start"))
    experiment = Experiment.objects.get(name="run")
    assert started.status_code == 302 and started["Location"] == f"/experiments/{experiment.pk}/"
    assert experiment.status == Status.PENDING and experiment.organisation == acme.organisation


def test_a_new_experiment_can_start_from_another(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    e = finished(acme)
    html = page_client.get(f"/experiments/new/?from={e.pk}").content.decode()
    assert re.search(rf'<option value="{e.model_config_id}" selected>', html)


def test_cards_show_the_metric_rows_of_their_model_type(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    """Multitask: two rows; retrieval: the recall row only; ranking: the error row only. Recall in %, errors 3 dp."""
    kinds = {t: finished(acme, t, name=f"{t}-run") for t in ("multitask", "retrieval", "ranking")}
    html = page_client.get("/experiments/").content.decode()
    cards = {
        m.group(1): m.group(0)
        for m in re.finditer(r'<article class="exp-card" id="experiment-(\d+)".*?</article>', html, flags=re.S)
    }

    def rows(e: Experiment) -> list[str]:
        found = re.findall(r'<div class="metric-row" data-task="\w+">(.*?)</div>', cards[str(e.pk)], flags=re.S)
        return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r)).strip() for r in found]

    assert rows(kinds["multitask"]) == [
        "Retrieval: R@5 12.3% R@10 20.0% R@50 50.0% R@100 80.0%",
        "Ranking: RMSE 1.235 MAE 0.988 Test RMSE 1.300 Test MAE 1.000",
    ]
    assert rows(kinds["retrieval"]) == ["Retrieval: R@5 12.3% R@10 20.0% R@50 50.0% R@100 80.0%"]
    assert rows(kinds["ranking"]) == ["Ranking: RMSE 1.235 MAE 0.988 Test RMSE 1.300 Test MAE 1.000"]


def test_experiments_filter_by_status_and_model_type(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    finished(acme, "retrieval", name="ret-done")
    finished(acme, "ranking", name="rank-failed", status=Status.FAILED, error="boom")
    text = _text(page_client.get("/experiments/?model_type=retrieval"))
    assert "ret-done" in text and "rank-failed" not in text
    partial = page_client.get("/experiments/?status=failed", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="experiment-cards")
    assert (
        "rank-failed" in _text(partial) and "ret-done" not in _text(partial) and "<nav" not in partial.content.decode()
    )
    assert "No experiments match these filters" in _text(page_client.get("/experiments/?status=running"))


def test_a_running_card_polls_and_shows_its_epoch(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    progress = {"epoch": 2, "step": 5, "steps": 10}
    e = finished(acme, status=Status.RUNNING, total_epochs=4, progress=progress, heartbeat_at=timezone.now())
    html = page_client.get(f"/experiments/{e.pk}/card/").content.decode()
    assert 'hx-trigger="every 2s"' in html and "Epoch 2 of 4 · 38%" in _text(
        page_client.get(f"/experiments/{e.pk}/card/")
    )
    assert 'aria-valuenow="38"' in html
    assert 'hx-get="/experiments/' in page_client.get(f"/experiments/{e.pk}/").content.decode()


def test_a_run_whose_worker_died_is_shown_failed(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    """The pages reap as the API does: a running experiment without a recent heartbeat is marked failed."""
    silent = timezone.now() - timedelta(minutes=5)
    e = finished(acme, status=Status.RUNNING, heartbeat_at=silent, total_epochs=2, finished_at=None)
    html = page_client.get(f"/experiments/{e.pk}/card/").content.decode()
    assert 'data-status="failed"' in html and "stopped responding" in html


def test_the_live_panel_reloads_the_page_when_the_run_ends(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    e = finished(acme)
    response = page_client.get(f"/experiments/{e.pk}/live/")
    assert response.status_code == 204 and response["HX-Refresh"] == "true"


def test_the_detail_page_shows_metrics_baselines_charts_and_configuration(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    e = finished(acme)
    response = page_client.get(f"/experiments/{e.pk}/")
    html, text = response.content.decode(), _text(response)
    retrieval = re.search(r'data-section="retrieval">(.*?)</table>', html, flags=re.S).group(1)
    assert "Recall@5 12.3% 5.0% popularity ×2.47" in _strip(retrieval)
    ranking = _strip(re.search(r'data-section="ranking">(.*?)</table>', html, flags=re.S).group(1))
    assert ranking == (
        "Metric Model Mean-predictor baseline Validation RMSE 1.235 — Validation MAE 0.988 — Test RMSE 1.300 1.450 "
        "Test MAE 1.000 —"
    )
    assert "Ranking on rating" in text  # the errors' scale: the target, untransformed
    charts = re.findall(r'<canvas data-chart="([^"]+)"', html)
    assert charts == [
        "retrieval_loss",
        "ranking_loss",
        "loss",
        "val_recall",
        "val_errors",
        "query_tower_trend",
        "query_tower_histogram",
        "candidate_tower_trend",
        "candidate_tower_histogram",
        "rating_head_trend",
        "rating_head_histogram",
    ]
    assert all(f'id="{key}"' in html for key in charts)  # each chart's data is on the page
    assert "Deploy / Try it" in text and "Loss weights retrieval 1.0 · ranking 1.0" in text
    assert "not tracked" in text


def test_without_a_validation_split_only_the_test_errors_are_shown(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    """The engine copies the test errors into rmse and mae when nothing was validated: pages show them once."""
    e = finished(acme, "ranking", validation_fraction=0.0)
    html = page_client.get(f"/experiments/{e.pk}/").content.decode()
    ranking = _strip(re.search(r'data-section="ranking">(.*?)</table>', html, flags=re.S).group(1))
    assert ranking == "Metric Model Mean-predictor baseline Test RMSE 1.300 1.450 Test MAE 1.000 —"
    assert "no validation split, so no validation errors" in _strip(html)
    cards = page_client.get("/experiments/").content.decode()
    assert "Ranking: Test RMSE 1.300 Test MAE 1.000" in _strip(cards)


def test_a_failed_run_shows_its_error_and_can_run_again(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    e = finished(acme, status=Status.FAILED, error="ValueError: the data has no rows")
    text = _text(page_client.get(f"/experiments/{e.pk}/"))
    assert "This run failed" in text and "ValueError: the data has no rows" in text and "Re-run" in text
    response = page_client.post(f"/experiments/{e.pk}/rerun/", follow=True)
    assert "queued again" in _text(response)
    e.refresh_from_db()
    assert e.status == Status.PENDING and e.attempt == 2


def test_cancel_stops_a_pending_run_and_refuses_a_finished_one(
    page_client: Client, setup_experiment: Callable[..., dict], finished: Callable[..., Any], acme: Tenant
) -> None:
    pending = Experiment.objects.get(pk=setup_experiment(acme)["id"])
    assert "Cancel" in _text(page_client.get(f"/experiments/{pending.pk}/"))
    assert "Experiment cancelled." in _text(page_client.post(f"/experiments/{pending.pk}/cancel/", follow=True))
    assert Experiment.objects.get(pk=pending.pk).status == Status.CANCELLED
    done = finished(acme)
    assert "Only a pending or running" in _text(page_client.post(f"/experiments/{done.pk}/cancel/", follow=True))


def test_the_mlflow_run_links_to_an_mlflow_server(
    page_client: Client, finished: Callable[..., Any], acme: Tenant, settings: Any
) -> None:
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:5000"
    e = finished(acme, mlflow_run_id="abc123")
    assert 'href="http://127.0.0.1:5000/#/runs/abc123"' in page_client.get(f"/experiments/{e.pk}/").content.decode()


# -------------------------------------------------------------------------------------- compare, dashboard


def test_compare_marks_the_best_value_of_each_metric_across_model_types(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    a = finished(acme, "multitask", name="a", recall_at_100=0.9, test_rmse=1.5)
    b = finished(acme, "retrieval", name="b", recall_at_100=0.7)
    c = finished(acme, "ranking", name="c", test_rmse=1.1)
    html = page_client.get(f"/compare/?ids={a.pk}&ids={b.pk}&ids={c.pk}").content.decode()
    rows = dict(re.findall(r'<tr data-metric="(\w+)">(.*?)</tr>', html, flags=re.S))
    assert set(rows) == {
        "recall_at_5",
        "recall_at_10",
        "recall_at_50",
        "recall_at_100",
        "rmse",
        "mae",
        "test_rmse",
        "test_mae",
    }
    cells = re.findall(r'<td class="num( best)?">([^<]*)</td>', rows["recall_at_100"])
    assert cells == [(" best", "90.0%"), ("", "70.0%"), ("", "—")]
    cells = re.findall(r'<td class="num( best)?">([^<]*)</td>', rows["test_rmse"])
    assert cells == [("", "1.500"), ("", "—"), (" best", "1.100")]
    assert re.findall(r'<canvas data-chart="([^"]+)"', html) == [
        "retrieval_loss",
        "ranking_loss",
        "val_recall_at_100",
        "val_rmse",
    ]


def test_the_dashboard_ranks_retrieval_runs_by_lift_over_the_best_baseline_on_request(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    """by=lift puts the run with the larger recall@100 over its best baseline first, whatever its raw recall,
    and shows each run's lift."""
    finished(acme, "multitask", name="high-recall", recall_at_100=0.6, other_metrics={"ease_recall_at_100": 0.6})
    finished(acme, "multitask", name="high-lift", recall_at_100=0.3, other_metrics={"buy_again_recall_at_100": 0.2})
    raw = page_client.get("/dashboard/?type=multitask").content.decode()
    board = re.search(r'data-leaderboard="multitask">(.*?)</table>', raw, flags=re.S).group(1)
    assert board.index("high-recall") < board.index("high-lift")
    lifted = page_client.get("/dashboard/?type=multitask&by=lift").content.decode()
    board = re.search(r'data-leaderboard="multitask">(.*?)</table>', lifted, flags=re.S).group(1)
    assert board.index("high-lift") < board.index("high-recall")
    assert "×1.50" in board and "×1.00" in board


def test_the_dashboard_ranks_completed_runs_per_model_type(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    finished(acme, "multitask", name="weak", recall_at_100=0.3)
    finished(acme, "multitask", name="strong", recall_at_100=0.6)
    finished(acme, "ranking", name="ranker")
    html = page_client.get("/dashboard/?type=multitask").content.decode()
    board = re.search(r'data-leaderboard="multitask">(.*?)</table>', html, flags=re.S).group(1)
    assert board.index("strong") < board.index("weak") and "ranker" not in board
    assert '<canvas data-chart="best_multitask"' in html
    tab = page_client.get("/dashboard/?type=retrieval", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dashboard-panel")
    assert "No completed retrieval experiments yet" in _text(tab) and "Leaderboards" not in _text(tab)
