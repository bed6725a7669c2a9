"""A dataset: a transactions file, optional buyer and product attribute files, and how to read them.

Files live in the store (tandem.web.storage); their profiles (schema and statistics, see :mod:`profiling`) are stored here.
The id columns, and the optional row filters and buyer–product aggregation, make the spec's `data` section.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from tandem.data.sources import is_numeric, mostly_numbers
from tandem.data.splits import cutoff_seconds
from tandem.web import engine
from tandem.web.accounts.models import OwnedModel
from tandem.web.validators import no_nul_characters

ROLES = ("transactions", "buyers", "products")


class Status(models.TextChoices):
    """Where a dataset's profile stands: read in the background after the upload (see :mod:`tasks`)."""

    PROFILING = "profiling", _("profiling")
    READY = "ready", _("ready")
    FAILED = "failed", _("failed")


def read_options_for(options: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """A dataset's reading options for one file: declared types are kept for the columns the file has."""
    types = {c: t for c, t in (options.get("types") or {}).items() if c in columns}
    return {**{k: v for k, v in options.items() if k != "types"}, **({"types": types} if types else {})}


def _spec_json(label: str, example: str, **options: Any) -> models.JSONField:
    """A part of the spec's `data` section kept as JSON (the engine checks it when the dataset is saved)."""
    return models.JSONField(_(label), blank=True, validators=[no_nul_characters], help_text=_(example), **options)


class Dataset(OwnedModel):
    """Transactions (buyer id, product id, timestamp, numeric values) plus optional attribute tables."""

    transactions_file = models.FileField(_("transactions file"), max_length=500)
    buyers_file = models.FileField(_("buyers file"), max_length=500, blank=True)
    products_file = models.FileField(_("products file"), max_length=500, blank=True)
    buyers_key = models.CharField(
        _("buyers key"), max_length=200, blank=True, help_text=_("Column of the buyers file holding the buyer id.")
    )
    products_key = models.CharField(
        _("products key"),
        max_length=200,
        blank=True,
        help_text=_("Column of the products file holding the product id."),
    )
    buyer_id_column = models.CharField(_("buyer id column"), max_length=200, help_text=_("e.g. household_id"))
    product_id_column = models.CharField(_("product id column"), max_length=200, help_text=_("e.g. product_id"))
    timestamp_column = models.CharField(
        _("timestamp column"),
        max_length=200,
        blank=True,
        help_text=_("Needed for time splits, e.g. transaction_timestamp"),
    )
    read_options = _spec_json(
        "reading options",
        'How every file is read, e.g. {"encoding": "latin-1", "timestamp_format": "%m/%d/%Y", '
        '"types": {"customer_id": "VARCHAR"}, "null_values": ["Unknown"]}; a type applies to each file with the column.',
        default=dict,
    )
    derived = _spec_json(
        "derived columns",
        'Columns computed per transaction line, e.g. [{"name": "sales", "expr": "quantity * price"}].',
        default=list,
    )
    filters = _spec_json(
        "row filters", 'Rows to keep, e.g. [{"column": "department", "op": "not_in", "value": ["FUEL"]}].', default=list
    )
    aggregate = _spec_json(
        "aggregation",
        'Turn lines into buyer–product pairs, e.g. [{"name": "total_sales", "fn": "sum", "column": "sales_value"}].',
        null=True,
    )
    original_names = models.JSONField(_("uploaded file names"), default=dict, blank=True)
    profile = models.JSONField(_("profile"), default=dict, help_text=_("Schema and statistics of each file."))
    size_bytes = models.BigIntegerField(_("size in bytes"), default=0)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PROFILING)
    error = models.TextField(_("why profiling failed"), blank=True)

    class Meta(OwnedModel.Meta):
        db_table = "tandem_dataset"
        verbose_name = _("dataset")
        verbose_name_plural = _("datasets")
        constraints = [models.UniqueConstraint(fields=["organisation", "name"], name="unique_dataset_name_per_org")]

    # ------------------------------------------------------------------------------------- schema

    def columns_of(self, role: str) -> dict[str, str]:
        """Column → DuckDB type of one file ('transactions', 'buyers' or 'products'); empty when absent."""
        table = self.profile.get(role) or {}
        return {c["name"]: c["type"] for c in table.get("columns", [])}

    def available_columns(self) -> dict[str, str]:
        """Columns an experiment's features may use: every file's columns, then the aggregates' outputs."""
        out: dict[str, str] = {}
        for role in ROLES:
            out.update({k: v for k, v in self.columns_of(role).items() if k not in out})
        for a in self.aggregate or []:
            if isinstance(a, dict) and a.get("name"):
                out[a["name"]] = "DOUBLE" if a.get("fn") in ("sum", "mean") else "BIGINT"
        return out

    def is_numeric_column(self, column: str) -> bool:
        kind = self.available_columns().get(column)
        return kind is not None and is_numeric(kind)

    def distinct_products(self) -> int | None:
        """How many product ids the transactions hold (the largest possible catalog)."""
        for c in (self.profile.get("transactions") or {}).get("columns", []):
            if c["name"] == self.product_id_column:
                return int(c["distinct"])
        return None

    def time_range(self) -> tuple[int, int] | None:
        """First and last transaction time in Unix seconds, from the profile; None without a readable timestamp."""
        for c in (self.profile.get("transactions") or {}).get("columns", []):
            if c["name"] == self.timestamp_column and c.get("min") is not None and c.get("max") is not None:
                try:
                    return cutoff_seconds(str(c["min"])), cutoff_seconds(str(c["max"]))
                except engine.SpecError:
                    return None
        return None

    def mostly_numeric(self) -> dict[str, int]:
        """Text columns most of whose values are numbers → how many of their values are not (a target's such
        rows are dropped and counted when an experiment runs); from the profile's statistics."""
        out = {}
        for role in ROLES:
            table = self.profile.get(role) or {}
            for c in table.get("columns", []):
                values = int(table.get("rows") or 0) - int(c.get("nulls") or 0)
                if c.get("numbers") is not None and mostly_numbers(values, c["numbers"]):
                    out.setdefault(c["name"], values - c["numbers"])
        return out

    def facts(self) -> engine.DataFacts:
        """What the experiment rules need to know about this dataset, read from its stored profile."""
        return engine.DataFacts(
            columns=self.available_columns(),
            n_products=self.distinct_products(),
            time_range=self.time_range(),
            mostly_numeric=frozenset(self.mostly_numeric()),
        )

    @property
    def row_count(self) -> int:
        return int((self.profile.get("transactions") or {}).get("rows") or 0)

    @property
    def is_ready(self) -> bool:
        return self.status == Status.READY

    def readiness_problem(self) -> str | None:
        """Why experiments cannot use this dataset yet (None once it is profiled)."""
        if self.status == Status.PROFILING:
            return f"The dataset “{self.name}” is still being profiled; start the experiment once it is ready."
        if self.status == Status.FAILED:
            return f"The dataset “{self.name}” could not be profiled: {self.error} Upload the files again."
        return None

    @property
    def is_in_use(self) -> bool:
        return self.experiments.exists()

    # ---------------------------------------------------------------------------------- the spec

    def data_section(self) -> dict[str, Any]:
        """The spec's `data` section without sampling and split (the experiment adds those).

        Paths are stored names (tandem.web.storage); the worker resolves them to its own copies.
        """
        data: dict[str, Any] = {
            "transactions": self.table_source("transactions"),
            "buyer_id": self.buyer_id_column,
            "product_id": self.product_id_column,
            "timestamp": self.timestamp_column or None,
            "derived": self.derived or [],
            "filters": self.filters or [],
            "aggregate": self.aggregate or None,
        }
        if self.buyers_file:
            data["buyers"] = {**self.table_source("buyers"), "key": self.buyers_key}
        if self.products_file:
            data["products"] = {**self.table_source("products"), "key": self.products_key}
        return data

    def table_source(self, role: str) -> dict[str, Any]:
        """The spec's source of one file: path, format and the reading options (types of its own columns only)."""
        table = self.profile.get(role) or {}
        source = {"path": getattr(self, f"{role}_file").name, "format": table.get("format", "auto")}
        return {**source, **read_options_for(self.read_options or {}, [c["name"] for c in table.get("columns", [])])}

    # -------------------------------------------------------------------------------- validation

    def clean(self) -> None:
        """Every named column exists in its file; filters and aggregation pass the engine's rules."""
        errors: dict[str, list[ValidationError]] = {}

        def missing(field: str, column: str, role: str, columns: dict[str, str]) -> None:
            shown = ", ".join(list(columns)[:30])
            errors.setdefault(field, []).append(
                ValidationError(
                    _("No column “%(column)s” in the %(role)s file (it has: %(columns)s)."),
                    code="unknown_column",
                    params={"column": column, "role": role, "columns": shown},
                )
            )

        tx = self.columns_of("transactions")
        for field in ("buyer_id_column", "product_id_column", "timestamp_column"):
            column = getattr(self, field)
            if column and tx and column not in tx:
                missing(field, column, "transactions", tx)
        for role in ("buyers", "products"):
            has_file, key = bool(getattr(self, f"{role}_file")), getattr(self, f"{role}_key")
            if has_file and not key:
                errors.setdefault(f"{role}_key", []).append(
                    ValidationError(
                        _("Name the column that joins the %(role)s file."), code="required", params={"role": role}
                    )
                )
            elif key and not has_file:
                errors.setdefault(f"{role}_key", []).append(
                    ValidationError(_("There is no %(role)s file to join."), code="no_file", params={"role": role})
                )
            elif key and key not in self.columns_of(role):
                missing(f"{role}_key", key, role, self.columns_of(role))
        if errors:
            raise ValidationError(errors)
        self._check_preparation()

    def _check_preparation(self) -> None:
        parsed = engine.check_sections({"data": self.data_section()}, data_field)
        normalised = parsed["data"].model_dump(mode="json", exclude_none=True)
        self.derived = normalised.get("derived", [])
        self.filters = normalised.get("filters", [])
        self.aggregate = normalised.get("aggregate")
        errors: dict[str, list[ValidationError]] = {}
        raw_columns = {k: v for role in ROLES for k, v in self.columns_of(role).items()}
        for field, items in (("filters", self.filters), ("aggregate", self.aggregate or [])):
            for i, item in enumerate(items):
                column = item.get("column")
                if column and column not in raw_columns:
                    errors.setdefault(field, []).append(
                        ValidationError(
                            _("%(i)d: no column “%(column)s” in the dataset's files."),
                            code="unknown_column",
                            params={"i": i, "column": column},
                        )
                    )
        if errors:
            raise ValidationError(errors)


def data_field(problem: engine.Problem) -> str:
    """The dataset field a problem's spec path (`data.transactions.types.id`, `data.filters.0`) is shown beside."""
    parts = [str(p) for p in problem.parts]
    if parts[1:2] == ["transactions"] and len(parts) > 2:
        return READ_OPTION_FIELDS.get(parts[2], NON_FIELD_ERRORS)
    return {
        "derived": "derived",
        "filters": "filters",
        "aggregate": "aggregate",
        "buyer_id": "buyer_id_column",
        "product_id": "product_id_column",
        "timestamp": "timestamp_column",
        "buyers": "buyers_key",
        "products": "products_key",
    }.get(parts[1] if len(parts) > 1 else "", NON_FIELD_ERRORS)


# The upload's fields for the spec's reading options (TableSource): `types` is a JSON object, hence its name.
READ_OPTION_FIELDS = {
    "encoding": "encoding",
    "timestamp_format": "timestamp_format",
    "types": "column_types",
    "null_values": "null_values",
}
