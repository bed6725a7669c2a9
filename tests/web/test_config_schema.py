"""One schema for configs: every spec field has the same default and bounds in the record, the API and the form.

The expected values are read from pydantic's own JSON schema of each spec class; the three platform views
are read independently: the record's stored defaults and what its `full_clean` refuses, the served
/api/openapi.json, and the page form's fields and widgets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.test import Client

from tandem.spec import FeaturesSpec, ModelSpec, RecommendSpec, TrainingSpec, load_spec, parse_spec
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tests.web.conftest import Tenant

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {"features": FeaturesSpec, "model": ModelSpec, "training": TrainingSpec, "recommend": RecommendSpec}
RECORDS = {"features": FeatureConfig, "model": ModelConfig, "training": ModelConfig, "recommend": ModelConfig}
# What a features section needs before its other fields can take their defaults; the recommend section is
# off unless given, so an empty one turns it on with its defaults.
REQUIRED = {
    "features": {"buyer": [{"column": "b", "transform": "id"}], "product": [{"column": "p", "transform": "id"}]},
    "recommend": {},
}
BOUNDS = {
    "minimum": "ge",
    "exclusiveMinimum": "gt",
    "maximum": "le",
    "exclusiveMaximum": "lt",
    "maxItems": "max_length",
}


def _fields() -> list[tuple[str, str, dict[str, Any]]]:
    """(section, field, pydantic's JSON schema of the field) for every field of the four config sections."""
    out = []
    for section, cls in SECTIONS.items():
        schema = cls.model_json_schema()
        out += [(section, name, schema["properties"][name]) for name in cls.model_fields]
    return out


FIELDS = _fields()
IDS = [f"{s}.{n}" for s, n, _ in FIELDS]


def _bounds(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: schema[key] for key in BOUNDS if key in schema}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return Client().get("/api/openapi.json").json()


def _api_field(openapi: dict[str, Any], cls: type, name: str) -> dict[str, Any]:
    return openapi["components"]["schemas"][cls.__name__]["properties"][name]


def _record(section: str, value: dict[str, Any] | None = None) -> Any:
    record = RECORDS[section]()
    if value is not None or section in REQUIRED:
        setattr(record, section, {**REQUIRED.get(section, {}), **(value or {})})
    return record


def _clean_errors(record: Any) -> dict[str, list[str]]:
    try:
        record.clean()
    except ValidationError as e:
        return e.message_dict
    return {}


def test_every_config_section_field_is_covered() -> None:
    """The enumeration below is the spec classes' own field list, so a new field is checked without a new line."""
    assert {n for s, n, _ in FIELDS if s == "model"} == set(ModelSpec.model_fields)
    assert len(FIELDS) == sum(len(cls.model_fields) for cls in SECTIONS.values()) > 30


@pytest.mark.parametrize(("section", "name", "schema"), FIELDS, ids=IDS)
def test_the_api_documents_each_default_and_bound_as_the_spec(openapi, section: str, name: str, schema: dict) -> None:
    documented = _api_field(openapi, SECTIONS[section], name)
    assert documented.get("default") == schema.get("default")
    assert _bounds(documented) == _bounds(schema)
    if "items" in schema and "minimum" in schema["items"]:
        assert _bounds(documented["items"]) == _bounds(schema["items"])


@pytest.mark.parametrize(("section", "name", "schema"), FIELDS, ids=IDS)
def test_the_record_stores_each_default_of_the_spec(section: str, name: str, schema: dict) -> None:
    if name in REQUIRED.get(section, {}):
        pytest.skip("a required field has no default")
    record = _record(section)
    assert _clean_errors(record) == {}
    assert getattr(record, section)[name] == schema["default"]


def _outside(schema: dict[str, Any]) -> list[Any]:
    """Values just past each of a field's bounds."""
    step = 1 if schema.get("type") == "integer" else 1e-9
    out = []
    if "minimum" in schema:
        out.append(schema["minimum"] - step)
    if "exclusiveMinimum" in schema:
        out.append(schema["exclusiveMinimum"])
    if "maximum" in schema:
        out.append(schema["maximum"] + step)
    if "exclusiveMaximum" in schema:
        out.append(schema["exclusiveMaximum"])
    if "maxItems" in schema:
        out.append([1] * (schema["maxItems"] + 1))
    if "minimum" in schema.get("items", {}):
        out += [[schema["items"]["minimum"] - 1], [schema["items"]["maximum"] + 1]]
    return out


BOUNDED = [(s, n, f) for s, n, f in FIELDS if _outside(f)]


@pytest.mark.parametrize(("section", "name", "schema"), BOUNDED, ids=[f"{s}.{n}" for s, n, _ in BOUNDED])
def test_the_record_refuses_each_value_past_a_bound_of_the_spec(section: str, name: str, schema: dict) -> None:
    for value in _outside(schema):
        errors = _clean_errors(_record(section, {name: value}))
        assert any(key.startswith(f"{section}.{name}") for key in errors), (value, errors)
    for value in (schema.get("minimum"), schema.get("maximum")):
        if value is not None:
            errors = _clean_errors(_record(section, {name: value}))
            assert not any(key.startswith(f"{section}.{name}") for key in errors), (value, errors)


def _form_fields() -> dict[str, Any]:
    from tandem.web.configs.forms import FeatureConfigForm, ModelConfigForm

    return {**FeatureConfigForm.base_fields, **ModelConfigForm.base_fields}


@pytest.mark.parametrize(("section", "name", "schema"), FIELDS, ids=IDS)
def test_the_page_form_offers_each_field_with_the_spec_default_and_bounds(
    section: str, name: str, schema: dict
) -> None:
    field = _form_fields()[f"{section}-{name}"]
    assert field.initial == schema.get("default")
    assert field.help_text == schema.get("description", "")
    attrs = field.widget.attrs
    ui = schema.get("ui", {})
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if ui.get("widget") == "slider":  # a slider's range is a UI limit inside the bounds
        assert low <= ui["min"] < ui["max"] and (high is None or ui["max"] <= high)
        low, high = ui["min"], ui["max"]
    if schema.get("type") in ("integer", "number"):
        assert attrs.get("min") == (None if low is None else str(low))
        assert attrs.get("max") == (None if high is None else str(high))
    if "items" in schema and "maximum" in schema["items"]:
        assert attrs["data-max"] == str(schema["items"]["maximum"]) and attrs["data-max-items"] == str(
            schema["maxItems"]
        )
    if "enum" in schema:
        assert [value for value, _ in field.choices if value != ""] == schema["enum"]


def test_a_model_config_with_every_default_is_a_valid_multitask_config() -> None:
    record = ModelConfig()
    assert _clean_errors(record) == {}
    assert record.model["type"] == "multitask" and record.model["rating_head_layers"] == [256, 128, 1]
    assert record.recommend is None  # no second stage unless asked for
    assert ModelSpec.model_validate(record.model).has_retrieval and ModelSpec.model_validate(record.model).has_ranking


# ------------------------------------------------------------------------------------------- examples


@pytest.mark.django_db
@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_spec_round_trips_through_the_api_and_the_database(acme: Tenant, example: Path) -> None:
    """A spec's features, model, training and recommend sections sent to the API and read back from the
    database give the same resolved spec as the file itself."""
    raw = yaml.safe_load(example.read_text(encoding="utf-8"))
    fc = acme.post("/api/feature-configs", {"name": example.stem, "features": raw["features"]})
    assert fc.status_code == 201, fc.content
    sections = {s: raw[s] for s in ("model", "training", "recommend") if s in raw}
    mc = acme.post("/api/model-configs", {"name": example.stem, **sections})
    assert mc.status_code == 201, mc.content
    stored_fc = FeatureConfig.objects.get(pk=fc.json()["id"])
    stored_mc = ModelConfig.objects.get(pk=mc.json()["id"])
    rebuilt = {**raw, "features": stored_fc.features, **stored_mc.sections()}
    expected = load_spec(example)
    assert parse_spec(rebuilt, base=example.parent).to_dict() == expected.to_dict()


# ------------------------------------------------------------------------------- a field added to the spec

_PROBE = """
    warmup_epochs: int = Field(
        2, ge=0, le=9, description="A field added to the spec class alone.", json_schema_extra=ui(group="Training")
    )
"""
_CHECK = """
import json, django
django.setup()
from django.core.exceptions import ValidationError
from tandem.web.api import api
from tandem.web.configs.forms import ModelConfigForm
from tandem.web.configs.models import ModelConfig

record = ModelConfig(training={"warmup_epochs": 10})
try:
    record.clean()
    refused = []
except ValidationError as e:
    refused = sorted(e.message_dict)
field = ModelConfigForm.base_fields["training-warmup_epochs"]
print(json.dumps({
    "default": ModelConfig().training.get("warmup_epochs"),
    "refused": refused,
    "api": api.get_openapi_schema()["components"]["schemas"]["TrainingSpec"]["properties"]["warmup_epochs"],
    "form": [field.initial, field.widget.attrs.get("min"), field.widget.attrs.get("max"), field.help_text],
}))
"""


def test_a_field_added_to_a_spec_class_alone_appears_in_the_record_the_api_and_the_form(tmp_path: Path) -> None:
    """A copy of the package whose TrainingSpec has one more field: nothing else is changed, and the field is
    stored with its default, refused past its bound, documented by the API and offered by the form."""
    package = tmp_path / "src" / "tandem"
    shutil.copytree(ROOT / "src" / "tandem", package, ignore=shutil.ignore_patterns("__pycache__", "vendor"))
    spec = package / "spec.py"
    text = spec.read_text(encoding="utf-8")
    anchor = 'class TrainingSpec(Section):\n    """Optimiser, batches and epochs; reproducible for a given seed on the CPU."""\n'
    assert anchor in text
    spec.write_text(text.replace(anchor, anchor + textwrap.dedent(_PROBE).replace("\n", "\n    ")), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "DJANGO_SETTINGS_MODULE": "tandem.web.settings"}
    done = subprocess.run([sys.executable, "-c", _CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["default"] == 2
    assert seen["refused"] == ["training.warmup_epochs"]
    assert (seen["api"]["default"], seen["api"]["minimum"], seen["api"]["maximum"]) == (2, 0, 9)
    assert seen["form"] == [2, "0", "9", "A field added to the spec class alone."]
