"""The upload form: names, files and column choices. Reading the files is the service's job (it needs them saved)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext_lazy as _

from tandem.spec import TableSource
from tandem.web import engine
from tandem.web.datasets.models import Dataset, data_field
from tandem.web.datasets.profiling import file_format
from tandem.web.forms import OwnedModelForm
from tandem.web.validators import no_nul_characters


def _check_file(upload: UploadedFile | None) -> UploadedFile | None:
    if upload is None:
        return None
    if file_format(upload.name or "") is None:
        raise ValidationError(
            _("“%(name)s” is neither CSV (.csv, .tsv, .txt, .csv.gz) nor Parquet (.parquet, .pq)."),
            code="unsupported_format",
            params={"name": upload.name},
        )
    if upload.size == 0:
        raise ValidationError(_("The file is empty."), code="empty_file")
    return upload


class DatasetUploadForm(forms.Form):
    """What an upload sends: names, files (CSV or Parquet) and column choices."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False)
    transactions = forms.FileField(help_text=_("CSV or Parquet: one row per transaction line."))
    buyers = forms.FileField(required=False, help_text=_("Optional buyer attributes."))
    products = forms.FileField(required=False, help_text=_("Optional product attributes."))
    buyers_key = forms.CharField(max_length=200, required=False)
    products_key = forms.CharField(max_length=200, required=False)
    buyer_id_column = forms.CharField(max_length=200)
    product_id_column = forms.CharField(max_length=200)
    timestamp_column = forms.CharField(max_length=200, required=False)
    encoding = forms.ChoiceField(choices=engine.choices_of(TableSource, "encoding"), required=False)
    timestamp_format = forms.CharField(
        max_length=100, required=False, help_text=_("e.g. %m/%d/%Y; guessed from every value when empty.")
    )
    column_types = forms.JSONField(
        required=False, validators=[no_nul_characters], help_text=_('e.g. {"customer_id": "VARCHAR"}')
    )
    null_values = forms.JSONField(required=False, validators=[no_nul_characters], help_text=_('e.g. ["Unknown"]'))
    derived = forms.JSONField(required=False, validators=[no_nul_characters])
    filters = forms.JSONField(required=False, validators=[no_nul_characters])
    aggregate = forms.JSONField(required=False, validators=[no_nul_characters])

    def clean_transactions(self) -> UploadedFile | None:
        return _check_file(self.cleaned_data.get("transactions"))

    def clean_buyers(self) -> UploadedFile | None:
        return _check_file(self.cleaned_data.get("buyers"))

    def clean_products(self) -> UploadedFile | None:
        return _check_file(self.cleaned_data.get("products"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in ("filters", "derived"):
            if cleaned.get(name) is None:
                cleaned[name] = []
        self._check_read_options(cleaned)
        for role in ("buyers", "products"):
            if cleaned.get(role) and not cleaned.get(f"{role}_key"):
                self.add_error(
                    f"{role}_key",
                    ValidationError(
                        _("Name the column that joins the %(role)s file."), code="required", params={"role": role}
                    ),
                )
        return cleaned

    def _check_read_options(self, cleaned: dict[str, Any]) -> None:
        """Set cleaned["read_options"] from the option fields, checked by the engine before any file is read."""
        options = {
            "encoding": cleaned.get("encoding") or None,
            "timestamp_format": cleaned.get("timestamp_format") or None,
            "types": cleaned.get("column_types") or None,
            "null_values": cleaned.get("null_values") or None,
        }
        cleaned["read_options"] = {k: v for k, v in options.items() if v is not None}
        section = {
            "transactions": {"path": "upload.csv", **cleaned["read_options"]},
            "buyer_id": "buyer",
            "product_id": "product",
            "derived": cleaned["derived"],
        }
        try:
            engine.check_sections({"data": section}, data_field)
        except ValidationError as e:
            self.add_error(None, e)


class DatasetUpdateForm(OwnedModelForm):
    """What may change after upload: name and description always; columns and preparation until it is used."""

    class Meta:
        model = Dataset
        fields = [
            "name",
            "description",
            "buyers_key",
            "products_key",
            "buyer_id_column",
            "product_id_column",
            "timestamp_column",
            "filters",
            "aggregate",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "filters" in cleaned and cleaned["filters"] is None:
            cleaned["filters"] = []  # a form JSONField reads [] as empty
        return cleaned
