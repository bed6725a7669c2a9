"""The pages where configs and datasets are read and changed: detail pages that say what each number means, edit
and delete refused with the reason while an experiment uses the record (copy and edit instead), renaming a dataset."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import unescape
from typing import Any

from django.test import Client

from tandem.spec import ModelSpec, TrainingSpec
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.models import Dataset
from tests.web.conftest import Tenant, create_configs
from tests.web.pages.test_views import _strip, _text


def _configs(tenant: Tenant) -> tuple[FeatureConfig, ModelConfig]:
    fc, mc = create_configs(tenant, model={"buyer_tower_layers": [64, 32], "product_tower_layers": [64, 32]})
    return FeatureConfig.objects.get(pk=fc), ModelConfig.objects.get(pk=mc)


def test_a_feature_config_page_says_what_each_feature_feeds_its_tower(page_client: Client, acme: Tenant) -> None:
    features, _ = _configs(acme)
    text = _text(page_client.get(f"/feature-configs/{features.pk}/"))
    assert "buyer buyer id each value gets a learned vector of 8 numbers (embedding 8)" in text
    assert "product category categorical each value gets a learned vector of 4 numbers (embedding 4)" in text
    assert "The ranking task predicts rating" in text
    assert "No experiment uses this feature config yet" in text
    listing = page_client.get("/feature-configs/").content.decode()
    assert f'href="/feature-configs/{features.pk}/"' in listing


def test_a_model_config_page_reads_its_towers_and_lists_every_spec_field(page_client: Client, acme: Tenant) -> None:
    """Each field of the spec's model and training sections has a row: one added to the spec appears by itself."""
    _, model = _configs(acme)
    html = page_client.get(f"/model-configs/{model.pk}/").content.decode()
    text = unescape(_strip(html))
    assert "Buyer tower 64 → 32 2 layers of 64 → 32 units: the buyer's embedding has 32 numbers" in text
    assert "Rating head 8 → 1" in text and "total = 1 × retrieval loss + 1 × ranking loss" in text
    assert "Training 2 epochs of 128 examples per step, adagrad at learning rate 0.1" in text
    rows = set(re.findall(r'data-fact="([\w.]+)"', html))
    nested = {f"index.{name}" for name in ModelSpec.model_fields["index"].annotation.model_fields}
    assert rows == (set(ModelSpec.model_fields) - {"index"}) | nested | set(TrainingSpec.model_fields)
    assert re.search(r'<tr data-fact="batch_size" class="changed">', html)  # 128, not the default


def test_an_unused_config_is_edited_and_then_deleted(page_client: Client, acme: Tenant) -> None:
    _, model = _configs(acme)
    form = page_client.get(f"/model-configs/{model.pk}/edit/")
    assert form.status_code == 200 and "Edit model config" in _text(form)
    data = {**form.context["form"].initial, "name": "renamed", "training-epochs": 5}
    data = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in data.items() if v is not None}
    response = page_client.post(f"/model-configs/{model.pk}/edit/", data, follow=True)
    assert "Model config “renamed” saved." in _text(response), _text(response)
    model.refresh_from_db()
    assert (model.name, model.training["epochs"]) == ("renamed", 5)
    response = page_client.post(f"/model-configs/{model.pk}/delete/", follow=True)
    assert "Model config “renamed” deleted." in _text(response)
    assert not ModelConfig.objects.filter(pk=model.pk).exists()


def test_a_used_config_refuses_edit_and_delete_and_offers_a_copy(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    e = finished(acme)
    for kind, config in (("feature-configs", e.feature_config), ("model-configs", e.model_config)):
        refused = page_client.get(f"/{kind}/{config.pk}/edit/")
        assert refused.status_code == 409
        assert "used by 1 experiment" in _text(refused) and "Copy and edit" in _text(refused)
        response = page_client.post(f"/{kind}/{config.pk}/delete/", follow=True)
        assert "is used by 1 experiment, so it cannot be deleted" in _text(response)
        assert type(config).objects.filter(pk=config.pk).exists()
    copy = page_client.get(f"/model-configs/new/?from={e.model_config.pk}")
    assert copy.context["form"].initial["name"] == f"{e.model_config.name} (copy)"
    assert copy.context["form"].initial["training-epochs"] == e.model_config.training["epochs"]
    copy = page_client.get(f"/feature-configs/new/?from={e.feature_config.pk}&dataset={e.dataset_id}")
    assert copy.context["form"].initial["name"] == f"{e.feature_config.name} (copy)"
    assert copy.context["form"]["side_0"].value() == "buyer"  # the copied config's buyer column, on its side


def test_a_dataset_is_renamed_while_used_and_its_columns_are_then_fixed(
    page_client: Client, finished: Callable[..., Any], acme: Tenant
) -> None:
    e = finished(acme)
    response = page_client.post(
        f"/datasets/{e.dataset_id}/", {"action": "rename", "name": "orders 2024", "description": "d"}, follow=True
    )
    assert "Name saved." in _text(response)
    assert Dataset.objects.get(pk=e.dataset_id).name == "orders 2024"
    html = page_client.get(f"/datasets/{e.dataset_id}/").content.decode()
    assert 'id="columns-fixed"' in html and 'id="columns-form"' not in html
    response = page_client.post(f"/datasets/{e.dataset_id}/delete/", follow=True)
    assert "cannot be deleted" in _text(response) and Dataset.objects.filter(pk=e.dataset_id).exists()


def test_an_unused_dataset_changes_its_columns_and_is_deleted(page_client: Client, dataset: Dataset) -> None:
    columns = {"action": "columns", "buyer_id_column": "buyer", "product_id_column": "product", "timestamp_column": ""}
    response = page_client.post(f"/datasets/{dataset.pk}/", columns, follow=True)
    assert "Columns saved." in _text(response)
    dataset.refresh_from_db()
    assert dataset.timestamp_column == ""
    response = page_client.post(f"/datasets/{dataset.pk}/delete/", follow=True)
    assert f"Dataset “{dataset.name}” deleted." in _text(response)
    assert not Dataset.objects.filter(pk=dataset.pk).exists()


def test_the_dataset_profile_skips_id_statistics_and_labels_values_and_ranges(
    page_client: Client, dataset: Dataset
) -> None:
    html = page_client.get(f"/datasets/{dataset.pk}/histograms/").content.decode()
    rows = dict(re.findall(r'<tr data-column="([^"]+)">(.*?)</tr>', html, flags=re.S))
    assert "data-no-stats" in rows["buyer"] and "data-no-stats" not in rows["rating"]
    assert "data-range" not in rows["category"]  # categories have no range to mark
    assert re.search(r"group\d\s*<span class=\"muted\">×30</span>", rows["category"])  # 120 products, four groups
    ends = re.search(r"data-range><span[^>]*>([^<]*)</span><span[^>]*>([^<]*)</span>", rows["rating"])
    assert ends is not None and ends.groups() == ("1", "5")


def test_other_organisations_config_pages_are_not_found(other_client: Client, acme: Tenant) -> None:
    features, model = _configs(acme)
    for url in (
        f"/feature-configs/{features.pk}/",
        f"/feature-configs/{features.pk}/edit/",
        f"/model-configs/{model.pk}/",
        f"/model-configs/{model.pk}/edit/",
        f"/model-configs/new/?from={model.pk}",
    ):
        assert other_client.get(url).status_code == 404, url
    assert other_client.post(f"/model-configs/{model.pk}/delete/").status_code == 404
    assert ModelConfig.objects.filter(pk=model.pk).exists()
