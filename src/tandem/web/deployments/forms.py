"""The Try-it form: one buyer's features (a field per source column the served model reads, the buyer id first and
then in the feature config's order, with the learnt values suggested), k, product ids to rank, whether to list
only products new to the buyer, and the button pressed. It builds the server's request body, and lays the server's answer out as rows.

Values are sent with the type the feature's transform reads: numbers for numeric, bucketized and timestamp
columns (a timestamp may also be a date text), text for the rest (ids, categories, hashed values, free text
match 42 and "42" alike, so an id typed into a text box is found).
"""

from __future__ import annotations

import math
import re
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from tandem.bundle_format import RANKING, RETRIEVAL, TWO_STAGE

NUMERIC_TRANSFORMS = {"numeric", "bucketize"}
# Each button and the signatures that allow it (any one of the sets).
ACTIONS = {
    "retrieve": ((RETRIEVAL,),),
    "rank": ((RANKING,),),
    "recommend": ((RETRIEVAL, RANKING), (TWO_STAGE,)),
}
MAX_K = 100
DEFAULT_K = 10


def _number(text: str) -> int | float | None:
    """The number a text spells (an int when it is one), None when it spells none."""
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class TryForm(forms.Form):
    """A request to a deployed model, for the buttons its bundle's signatures allow."""

    k = forms.IntegerField(
        label=_("k"), required=False, min_value=1, max_value=MAX_K, initial=DEFAULT_K, help_text=_("products to return")
    )
    product_ids = forms.CharField(
        label=_("Product ids to rank"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "p1, p2, p3"}),
        help_text=_("comma- or line-separated"),
    )
    new_only = forms.BooleanField(
        label=_("Only products new to the buyer"),
        required=False,
        help_text=_("recommend: the list of products the buyer never bought"),
    )
    action = forms.ChoiceField(choices=())

    def __init__(
        self, *args: Any, manifest: dict[str, Any], known: dict[str, list[str]] | None = None, **kwargs: Any
    ) -> None:
        """`known`: column → values to suggest (those the bundle learnt), shown as a list under the field."""
        super().__init__(*args, **kwargs)
        self.signatures = manifest["signatures"]
        spec = manifest["spec"]
        transforms: dict[str, set[str]] = {}
        for feature in spec["features"]["buyer"]:
            transforms.setdefault(feature["column"], set()).add(feature["transform"])
        # The buyer id first, then the feature config's order (the manifest lists the columns sorted).
        served = manifest["buyer_columns"]
        order = dict.fromkeys([spec["data"]["buyer_id"], *transforms, *served])
        self.columns = [c for c in order if c in served]
        self.transforms = {c: transforms.get(c, set()) for c in self.columns}
        self.known = {c: v for c, v in (known or {}).items() if c in self.columns and v}
        for i, column in enumerate(self.columns):
            self.fields[f"buyer_{i}"] = forms.CharField(
                label=column, required=False, help_text=", ".join(sorted(self.transforms[column]))
            )
            if column in self.known:
                self.fields[f"buyer_{i}"].widget.attrs.update({"list": f"known-buyer_{i}", "autocomplete": "off"})
                self.fields[f"buyer_{i}"].known = self.known[column]
        self.fields["action"].choices = [(a, a) for a in self.actions]
        if RANKING not in self.signatures:
            del self.fields["product_ids"]
        if RETRIEVAL not in self.signatures and TWO_STAGE not in self.signatures:
            del self.fields["k"]
        if TWO_STAGE not in self.signatures:
            del self.fields["new_only"]  # only the second stage's recommend knows the buyer's purchases

    @property
    def actions(self) -> list[str]:
        """The buttons: retrieve, rank and recommend as far as the bundle has their signatures."""
        return [a for a, options in ACTIONS.items() if any(all(s in self.signatures for s in o) for o in options)]

    def buyer_fields(self) -> list[forms.BoundField]:
        return [self[f"buyer_{i}"] for i in range(len(self.columns))]

    def option_fields(self) -> list[forms.BoundField]:
        """k, the product ids and new_only, those of them the bundle's signatures use."""
        return [self[name] for name in ("k", "product_ids", "new_only") if name in self.fields]

    def _value(self, column: str, text: str) -> str | int | float:
        kinds = self.transforms[column]
        if kinds & (NUMERIC_TRANSFORMS | {"timestamp"}):
            number = _number(text)
            if number is not None:
                return number
            if kinds & NUMERIC_TRANSFORMS:
                raise forms.ValidationError(_("“%(value)s” is not a number."), params={"value": text})
        return text

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        buyer: dict[str, Any] = {}
        for i, column in enumerate(self.columns):
            text = (data.get(f"buyer_{i}") or "").strip()
            if text:
                try:
                    buyer[column] = self._value(column, text)
                except forms.ValidationError as e:
                    self.add_error(f"buyer_{i}", e)
        data["buyer"] = buyer
        ids = [p for p in re.split(r"[,\s]+", data.get("product_ids") or "") if p]
        if data.get("action") == "rank" and not ids:
            self.add_error("product_ids", _("Give the product ids to rank."))
        data["product_ids"] = ids
        return data

    def body(self) -> dict[str, Any]:
        """The server's request body for the chosen action (the form must be valid)."""
        data = self.cleaned_data
        if data["action"] == "rank":
            return {"buyer": data["buyer"], "product_ids": data["product_ids"]}
        body = {"buyer": data["buyer"], "k": data["k"] or DEFAULT_K}
        return {**body, "new_only": True} if data["action"] == "recommend" and data.get("new_only") else body

    def rows(self, answer: dict[str, Any]) -> list[dict[str, Any]]:
        """The answer as table rows, best first: rank, product id, and the retrieval score and/or prediction."""
        if self.cleaned_data["action"] == "rank":
            ids, predictions = self.cleaned_data["product_ids"], answer["predictions"]
            order = sorted(range(len(ids)), key=lambda j: (predictions[j] is None, -(predictions[j] or 0.0)))
            return [
                {"rank": n, "product_id": ids[j], "prediction": predictions[j], "position": j + 1}
                for n, j in enumerate(order, 1)
            ]
        scores, predictions = answer.get("scores"), answer.get("predictions")
        # A popularity fallback's scores are training purchase counts, not the model's: they get their own column.
        popular = answer.get("fallback") == "popularity"
        return [
            {
                "rank": n,
                "product_id": product_id,
                "score": scores[n - 1] if scores is not None and not popular else None,
                "bought": scores[n - 1] if scores is not None and popular else None,
                "prediction": predictions[n - 1] if predictions is not None else None,
            }
            for n, product_id in enumerate(answer["product_ids"], 1)
        ]
