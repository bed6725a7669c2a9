"""The pages' forms: the platform's forms with widgets a person can use, plus the builders that turn a
table of columns or a list of layer rows into the JSON the platform stores.

Validation stays the platform's: the config forms subclass the platform's ModelForms, whose models run the
engine's rules in `clean`, so every problem comes back keyed by the field it concerns and is shown beside it.
"""

from __future__ import annotations

import typing
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.forms.models import fields_for_model
from django.utils.translation import gettext_lazy as _

from tandem.spec import Feature, HistoryFeature
from tandem.web.configs.forms import FeatureConfigForm, ModelConfigForm
from tandem.web.configs.models import FeatureConfig, ModelConfig
from tandem.web.datasets.forms import DatasetUploadForm
from tandem.web.datasets.models import ROLES, Dataset
from tandem.web.experiments.forms import ExperimentForm
from tandem.web.experiments.models import Experiment
from tandem.web.spec_forms import field_key, record_initial


def _transforms() -> tuple[list[str], set[str]]:
    """The engine's feature transforms in its own order, and those that learn an embedding (have a dim)."""
    names, embedded = [], set()
    for cls in typing.get_args(typing.get_args(Feature)[0]):
        for name in typing.get_args(cls.model_fields["transform"].annotation):
            names.append(name)
            if "embedding_dim" in cls.model_fields:
                embedded.add(name)
    return names, embedded


TRANSFORMS, EMBEDDED_TRANSFORMS = _transforms()
# A history bag is not a column's own transform: it reads a product column the product tower also embeds, so
# the builder offers it as a buyer option of its own rather than in the column table.
COLUMN_TRANSFORMS = [t for t in TRANSFORMS if t != "history"]
HISTORY_WEIGHTINGS = typing.get_args(HistoryFeature.model_fields["weighting"].annotation)
SIDES = (("", _("not used")), ("buyer", _("Buyer (query)")), ("product", _("Product (candidate)")))
DEFAULT_EMBEDDING_DIM = 32
# Column names that usually hold what the ranking task predicts, most likely first.
TARGET_HINTS = ("rating", "total_sales", "sales_value", "sales", "quantity", "qty", "amount", "value")


# How the engine's option values read on a page (its own labels are the values capitalised).
CHOICE_LABELS = {
    "mse": "MSE",
    "huber": "Huber",
    "bce": "Binary cross-entropy",
    "brute_force": "Exact (brute force)",
    "hnsw": "HNSW (FAISS)",
    "ivf": "IVF (FAISS)",
    "adagrad": "Adagrad",
    "adam": "Adam",
    "sgd": "SGD",
    "none": "none",
    "log1p": "log(1 + target)",
}


def relabel(field: forms.Field) -> None:
    """Give a choice field's options the labels of CHOICE_LABELS, keeping the values."""
    field.choices = [(value, CHOICE_LABELS.get(value, label)) for value, label in field.choices]


def apply_errors(form: forms.BaseForm, error: ValidationError) -> None:
    """Show a service's errors beside the fields they name (bound form); errors of other keys go above it."""
    items = error.error_dict.items() if hasattr(error, "error_dict") else [(NON_FIELD_ERRORS, error.error_list)]
    for field, errors in items:
        form.add_error(field if field in form.fields else None, errors)


# ---------------------------------------------------------------------------------------------- datasets


class UploadForm(DatasetUploadForm):
    """The platform's upload form; column inputs suggest the header's names (filled in by the page's script)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        accept = ".csv,.tsv,.txt,.gz,.parquet,.pq"
        self.fields["transactions"].label = _("File")
        self.fields["products"].label = _("Products file")
        self.fields["buyers"].label = _("Buyers file")
        for role in ROLES:
            self.fields[role].widget.attrs.update({"accept": accept, "data-role": role})
        for name in ("buyer_id_column", "product_id_column", "timestamp_column"):
            self.fields[name].widget.attrs.update({"list": "transactions-columns", "autocomplete": "off"})
        for role in ("buyers", "products"):
            self.fields[f"{role}_key"].widget.attrs.update({"list": f"{role}-columns", "autocomplete": "off"})
        for name in ("derived", "filters", "aggregate", "column_types", "null_values"):
            self.fields[name].widget = forms.Textarea(attrs={"rows": 2, "spellcheck": "false"})
        self.fields["derived"].help_text = _('e.g. [{"name": "sales", "expr": "quantity * unit_price"}]')
        self.fields["filters"].help_text = _('e.g. [{"column": "department", "op": "not_in", "value": ["FUEL"]}]')
        self.fields["aggregate"].help_text = _('e.g. [{"name": "total_sales", "fn": "sum", "column": "sales_value"}]')


class DatasetNameForm(forms.Form):
    """A dataset's name and description: the fields that may change whatever uses it (the model's own fields)."""

    def __init__(self, *args: Any, dataset: Dataset, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"name": dataset.name, "description": dataset.description})
        super().__init__(*args, **kwargs)
        self.fields.update(fields_for_model(Dataset, fields=["name", "description"]))
        self.fields["description"].widget = forms.TextInput()


class ColumnsForm(forms.Form):
    """Which transactions columns hold the buyer id, the product id and the timestamp."""

    buyer_id_column = forms.ChoiceField(label=_("Buyer id"))
    product_id_column = forms.ChoiceField(label=_("Product id"))
    timestamp_column = forms.ChoiceField(label=_("Timestamp"), required=False)

    def __init__(self, *args: Any, dataset: Dataset, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {f: getattr(dataset, f) for f in self.base_fields})
        super().__init__(*args, **kwargs)
        columns = [(c, c) for c in dataset.columns_of("transactions")]
        self.fields["buyer_id_column"].choices = columns
        self.fields["product_id_column"].choices = columns
        self.fields["timestamp_column"].choices = [("", _("none (no time split)")), *columns]


# ----------------------------------------------------------------------------------------- feature configs


def _origin(dataset: Dataset, column: str) -> str:
    for role in ROLES:
        if column in dataset.columns_of(role):
            return role
    return "aggregate"


def _default_row(dataset: Dataset, column: str, kind: str) -> tuple[str, str]:
    """The side and transform a column starts with: ids as ids, attribute files on their tower, the rest unused."""
    numeric = dataset.is_numeric_column(column)
    if column == dataset.buyer_id_column:
        return "buyer", "id"
    if column == dataset.product_id_column:
        return "product", "id"
    transform = (
        "timestamp"
        if column == dataset.timestamp_column or kind.upper().startswith(("DATE", "TIMESTAMP"))
        else ("numeric" if numeric else "categorical")
    )
    origin = _origin(dataset, column)
    key = {"buyers": dataset.buyers_key, "products": dataset.products_key}.get(origin)
    side = {"buyers": "buyer", "products": "product"}.get(origin, "") if column != key else ""
    return side, transform


def target_choices(dataset: Dataset) -> list[str]:
    """Numeric columns that may be a ranking target (ids and the timestamp are numbers but not targets)."""
    skip = {dataset.buyer_id_column, dataset.product_id_column, dataset.timestamp_column}
    return [c for c in dataset.available_columns() if c not in skip and dataset.is_numeric_column(c)]


class FeatureConfigBuilderForm(FeatureConfigForm):
    """A FeatureConfig built from a table of the dataset's columns: side, transform and embedding size per column.

    The buyer and product feature lists are not typed in: `clean` builds them from the rows, and the
    record's validation (the engine's rules) then reports on them; a problem whose spec path names the n-th
    buyer or product feature is shown on that column's row.
    """

    def __init__(self, *args: Any, dataset: Dataset, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dataset = dataset
        self.columns = list(dataset.available_columns().items())
        self._add_history_fields(dataset)
        self.fields["description"].widget = forms.TextInput()
        for side in ("buyer", "product"):
            self.fields[field_key("features", side)].widget = forms.HiddenInput()
        targets = target_choices(dataset)
        key = field_key("features", "target")
        self.fields[key] = forms.ChoiceField(  # the spec's field, its choices narrowed to this dataset's numbers
            label=self.fields[key].label,
            required=False,
            choices=[("", _("none (retrieval only)")), *[(c, c) for c in targets]],
            help_text=_("The number the ranking task predicts; only numeric columns are offered."),
        )
        self.fields[key].spec = self.base_fields[key].spec
        relabel(self.fields[field_key("features", "target_transform")])
        hinted = [c for hint in TARGET_HINTS for c in targets if c.lower() == hint]
        self.initial.setdefault(field_key("features", "target"), (hinted or targets or [""])[0])
        transform_choices = [(t, t) for t in COLUMN_TRANSFORMS]
        for i, (column, kind) in enumerate(self.columns):
            side, transform = _default_row(dataset, column, kind)
            self.fields[f"side_{i}"] = forms.ChoiceField(choices=SIDES, required=False, initial=side)
            self.fields[f"transform_{i}"] = forms.ChoiceField(choices=transform_choices, initial=transform)
            self.fields[f"dim_{i}"] = forms.IntegerField(
                initial=DEFAULT_EMBEDDING_DIM, required=False, widget=forms.NumberInput(attrs={"min": 1, "step": 1})
            )
        self._row_of: dict[str, list[int]] = {"buyer": [], "product": []}

    def _add_history_fields(self, dataset: Dataset) -> None:
        """The buyer's purchase history: which product columns become bags on the buyer tower, and how
        purchases are weighted (the spec's HistoryFeature options)."""
        attributes = [c for c in dataset.columns_of("products") if c != dataset.products_key]
        choices = [(c, c) for c in dict.fromkeys([dataset.product_id_column, *attributes]) if c]
        self.fields["history_columns"] = forms.MultipleChoiceField(
            label=_("Purchase history"),
            choices=choices,
            required=False,
            widget=forms.CheckboxSelectMultiple,
            help_text=_(
                "The buyer's past products (or their categories) as a bag over the product tower's own "
                "embedding of the column, so the buyer tower knows what the buyer buys. The column must also "
                "be on the product tower."
            ),
        )
        weighting = HistoryFeature.model_fields["weighting"]
        self.fields["history_weighting"] = forms.ChoiceField(
            label=_("History weighting"),
            choices=[(w, w) for w in HISTORY_WEIGHTINGS],
            initial=weighting.default,
            help_text=weighting.description,
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        features: dict[str, list[dict[str, Any]]] = {"buyer": [], "product": []}
        self._row_of = {"buyer": [], "product": []}
        for i, (column, _kind) in enumerate(self.columns):
            side, transform = cleaned.get(f"side_{i}"), cleaned.get(f"transform_{i}")
            if not side or not transform:
                continue
            feature: dict[str, Any] = {"column": column, "transform": transform}
            if transform in EMBEDDED_TRANSFORMS:
                feature["embedding_dim"] = cleaned.get(f"dim_{i}") or DEFAULT_EMBEDDING_DIM
            features[side].append(feature)
            self._row_of[side].append(i)
        weighting = cleaned.get("history_weighting") or HISTORY_WEIGHTINGS[0]
        for column in cleaned.get("history_columns") or []:
            features["buyer"].append({"column": column, "transform": "history", "weighting": weighting})
        for side in ("buyer", "product"):
            cleaned[field_key("features", side)] = features[side]  # an empty tower is the engine's problem
        return cleaned

    def rows(self) -> list[dict[str, Any]]:
        """The column table: name, type, origin file, its three fields and the problems that concern it."""
        row_errors = self.row_errors()
        out = []
        for i, (column, kind) in enumerate(self.columns):
            fields = {"side": self[f"side_{i}"], "transform": self[f"transform_{i}"], "dim": self[f"dim_{i}"]}
            own = [str(m) for f in fields.values() for m in f.errors]
            out.append(
                {
                    "column": column,
                    "type": kind,
                    "origin": _origin(self.dataset, column),
                    **fields,
                    "errors": own + row_errors.get(i, []),
                }
            )
        return out

    def row_errors(self) -> dict[int, list[str]]:
        """Problems of the n-th buyer or product feature, by the table row that holds it."""
        out: dict[int, list[str]] = {}
        for problem in self.spec_problems:
            parts = problem.parts
            if len(parts) > 2 and parts[1] in self._row_of and isinstance(parts[2], int):
                rows = self._row_of[str(parts[1])]
                if parts[2] < len(rows):
                    inner = ".".join(str(p) for p in parts[3:])
                    out.setdefault(rows[parts[2]], []).append(
                        f"{inner}: {problem.message}" if inner else problem.message
                    )
        return out

    def tower_errors(self) -> dict[str, list[str]]:
        """Problems of each tower's feature list that no single row owns (the list itself, or a purchase-history
        bag, which has no row), by side."""
        out: dict[str, list[str]] = {}
        for problem in self.spec_problems:
            parts = problem.parts
            if len(parts) < 2 or parts[1] not in ("buyer", "product"):
                continue
            rows = self._row_of[str(parts[1])]
            if not (len(parts) > 2 and isinstance(parts[2], int) and parts[2] < len(rows)):
                out.setdefault(str(parts[1]), []).append(problem.message)
        return out

    @property
    def embedded_transforms(self) -> str:
        """The transforms that take an embedding dim, for the page's script (space-separated)."""
        return " ".join(t for t in TRANSFORMS if t in EMBEDDED_TRANSFORMS)


def feature_config_initial(config: FeatureConfig, dataset: Dataset) -> dict[str, Any]:
    """The builder's starting values from a config: its name, target, and each of the dataset's columns on the
    side and with the transform the config gives it (the columns it does not read start unused)."""
    section = config.features
    initial = record_initial(config)
    index = {column: i for i, column in enumerate(dataset.available_columns())}
    initial.update({f"side_{i}": "" for i in index.values()})
    bags = [f for f in section["buyer"] if f["transform"] == "history"]
    initial["history_columns"] = [f["column"] for f in bags]
    if bags:
        initial["history_weighting"] = bags[0].get("weighting", HISTORY_WEIGHTINGS[0])
    for side in ("buyer", "product"):
        for feature in section[side]:
            if feature["transform"] == "history":
                continue
            i = index.get(feature["column"])
            if i is not None:
                initial[f"side_{i}"], initial[f"transform_{i}"] = side, feature["transform"]
                initial[f"dim_{i}"] = feature.get("embedding_dim") or DEFAULT_EMBEDDING_DIM
    return initial


# ------------------------------------------------------------------------------------------- model configs


def model_config_initial(config: ModelConfig) -> dict[str, Any]:
    """A model config's values as a form's starting values (a copy starts from them)."""
    return record_initial(config)


class ModelConfigPageForm(ModelConfigForm):
    """The generated ModelConfig form with labels for people; the spec's `ui` metadata picks the widgets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["description"].widget = forms.TextInput()
        for name, field in self.fields.items():
            if isinstance(field, forms.ChoiceField) and name.startswith(tuple(f"{s}-" for s in ModelConfig.SECTIONS)):
                relabel(field)


# --------------------------------------------------------------------------------------------- experiments


class NewExperimentForm(ExperimentForm):
    """The platform's experiment form (every engine and platform rule) with choices labelled for people."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].help_text = _("Optional: “<model config> on <dataset>” when empty.")
        self.fields["description"].widget = forms.TextInput()
        self.fields["model_config"].label_from_instance = lambda mc: f"{mc.name} · {mc.model_type}"
        self.fields["dataset"].label_from_instance = lambda d: f"{d.name} · {d.row_count:,} rows"
        for name, step in (("sample_fraction", "0.01"), ("test_fraction", "0.05"), ("validation_fraction", "0.05")):
            self.fields[name].widget.attrs.update({"step": step, "min": "0", "max": "1"})
        self.fields["split_cutoff"].widget.attrs["placeholder"] = "2024-01-01"
        self.fields["split_cutoff"].help_text = _("Time split: test rows are at or after it; empty: the latest rows.")
        self.fields["test_fraction"].help_text = _("Random split: a share of the rows; time split: of the latest rows.")
        for name in ("dataset", "feature_config", "model_config"):
            choices = self.fields[name].queryset
            if not self.is_bound and not self.initial.get(name) and choices.count() == 1:
                self.initial[name] = choices.get().pk  # the only choice is chosen

    def problems(self) -> list[tuple[str, str]]:
        """Every problem as (what it concerns, message), for the list above the form."""
        out = []
        for field, messages in self.errors.items():
            label = self.fields[field].label if field in self.fields else _("Experiment")
            out += [(str(label), m) for m in messages]
        return out


def experiment_initial(experiment: Experiment) -> dict[str, Any]:
    """A new experiment's starting values copied from another one (its configs, data, sampling and split)."""
    return {f: getattr(experiment, f) for f in ExperimentForm._meta.fields if f not in ("name", "description")}
