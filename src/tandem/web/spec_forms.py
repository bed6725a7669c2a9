"""Forms generated from the spec's sections: one form field per spec field, with its label, help, default,
bounds and widget read from the pydantic class and its `ui` metadata (:func:`tandem.spec.ui`).

A new field of a spec section therefore appears in every form built here without a line of form code.
Form fields only turn text into values; the engine checks bounds and rules once, when the record is
cleaned, so a field error and a cross-field error come back in the same round.

Form field names are `<section>-<field>` (`model-epochs`): valid in HTML, CSS and templates' loops, and
one-to-one with the spec path `model.epochs` of the problems the engine reports. An optional section (off
unless given, such as `recommend`) also gets a checkbox named after the section that turns it on.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import annotated_types
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from tandem.errors import Problem
from tandem.spec import OPTIONAL_SECTIONS, ExperimentSpec

Kind = Literal["choice", "bool", "int", "float", "text", "layers", "json"]
_BOUNDS = {annotated_types.Ge: "ge", annotated_types.Gt: "gt", annotated_types.Le: "le", annotated_types.Lt: "lt"}


def field_key(section: str, name: str) -> str:
    """The form field name of a spec field."""
    return f"{section}-{name}"


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in metadata:
        for kind, key in _BOUNDS.items():
            if isinstance(item, kind):
                out[key] = getattr(item, key)
        if isinstance(item, annotated_types.MaxLen):
            out["max_length"] = item.max_length
        if isinstance(item, annotated_types.MinLen):
            out["min_length"] = item.min_length
    return out


def _without_none(annotation: Any) -> tuple[Any, bool]:
    """The annotation with None taken out of a union, and whether None was allowed."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) < len(typing.get_args(annotation)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True  # noqa: UP007
    return annotation, False


@dataclass(frozen=True)
class SpecField:
    """One field of a spec section as a form sees it: where it is, what it holds and how to show it."""

    section: str
    name: str
    info: FieldInfo

    @property
    def key(self) -> str:
        return field_key(self.section, self.name)

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def label(self) -> str:
        return self.info.title or self.name.replace("_", " ").capitalize()

    @property
    def help(self) -> str:
        return self.info.description or ""

    @property
    def ui(self) -> dict[str, Any]:
        extra = self.info.json_schema_extra
        return dict(extra.get("ui", {})) if isinstance(extra, dict) else {}

    @property
    def default(self) -> Any:
        """The spec's default as JSON (a nested section as its dict); None for a required field."""
        if self.info.is_required():
            return None
        return to_jsonable_python(self.info.get_default(call_default_factory=True))

    @property
    def bounds(self) -> dict[str, Any]:
        """`ge`, `gt`, `le`, `lt` of a number; `min_length`, `max_length` of a list."""
        return _bounds(self.info.metadata)

    @cached_property
    def _type(self) -> tuple[Any, bool]:
        return _without_none(self.info.annotation)

    @property
    def nullable(self) -> bool:
        return self._type[1]

    @property
    def item_bounds(self) -> dict[str, Any]:
        """The bounds of each item of a list (a layer list's sizes)."""
        args = typing.get_args(self._type[0])
        if not args or typing.get_origin(args[0]) is not typing.Annotated:
            return {}
        return _bounds([m for info in typing.get_args(args[0])[1:] for m in getattr(info, "metadata", [info])])

    @property
    def kind(self) -> Kind:
        t = self._type[0]
        if typing.get_origin(t) is Literal:
            return "choice"
        if t is bool:
            return "bool"
        if t in (int, float, str):
            return {int: "int", float: "float", str: "text"}[t]
        if typing.get_origin(t) is list:
            item = typing.get_args(t)[0]
            if (typing.get_args(item)[0] if typing.get_origin(item) is typing.Annotated else item) is int:
                return "layers"
        return "json"

    @property
    def choices(self) -> list[Any]:
        return list(typing.get_args(self._type[0])) if self.kind == "choice" else []


def spec_fields(section: str, cls: type[BaseModel]) -> list[SpecField]:
    """Every field of a spec section class, in its order."""
    return [SpecField(section, name, info) for name, info in cls.model_fields.items()]


# ---------------------------------------------------------------------------------------------- widgets


class LayerListWidget(forms.Widget):
    """An editable list of layer sizes: one number input per row, with buttons to add and remove rows."""

    template_name = "pages/widgets/layer_list.html"

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        return data.getlist(name) if hasattr(data, "getlist") else data.get(name)

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return False  # no rows means an empty list, not "keep the initial value"

    def format_value(self, value: Any) -> list[Any]:
        if isinstance(value, list | tuple):
            return list(value)
        return [] if value in (None, "") else [value]


class LayerListField(forms.Field):
    """A list of whole numbers from the rows of a LayerListWidget; blank rows are ignored."""

    widget = LayerListWidget

    def to_python(self, value: Any) -> list[int]:
        values = value if isinstance(value, list | tuple) else ([] if value in (None, "") else [value])
        out = []
        for v in values:
            if isinstance(v, int) and not isinstance(v, bool):
                out.append(v)
                continue
            text = str(v).strip()
            if not text:
                continue
            if not text.lstrip("-").isdigit():
                raise ValidationError(
                    "Layer sizes are whole numbers such as 128; got “%(value)s”.",
                    code="invalid_layer",
                    params={"value": text},
                )
            out.append(int(text))
        return out

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(initial) != self.to_python(data)


class Slider(forms.NumberInput):
    """A range input whose value is shown beside it."""

    input_type = "range"
    template_name = "pages/widgets/slider.html"


# ----------------------------------------------------------------------------------------- form fields


def _number_attrs(spec: SpecField) -> dict[str, str]:
    """HTML min/max/step from the field's bounds, or a slider's own range inside them."""
    b, ui = spec.bounds, spec.ui
    attrs = {}
    low, high = ui.get("min", b.get("ge", b.get("gt"))), ui.get("max", b.get("le", b.get("lt")))
    if low is not None:
        attrs["min"] = str(low)
    if high is not None:
        attrs["max"] = str(high)
    attrs["step"] = str(ui.get("step", 1 if spec.kind == "int" else "any"))
    return attrs


def form_field(spec: SpecField) -> forms.Field:
    """The Django form field of a spec field. Empty input means the default (or None where None is allowed)."""
    common: dict[str, Any] = {"label": spec.label, "help_text": spec.help, "required": False}
    kind, ui = spec.kind, spec.ui
    initial = spec.default
    field: forms.Field
    if kind == "choice":
        choices = [(v, str(v).replace("_", " ").capitalize()) for v in spec.choices]
        if spec.nullable:
            choices.insert(0, ("", "—"))
        widget = forms.RadioSelect if ui.get("widget") == "radio" else forms.Select
        field = forms.ChoiceField(choices=choices, widget=widget, initial=initial, **common)
    elif kind == "bool":
        field = forms.BooleanField(initial=initial, **common)
    elif kind in ("int", "float"):
        widget = Slider if ui.get("widget") == "slider" else forms.NumberInput
        cls = forms.IntegerField if kind == "int" else forms.FloatField
        field = cls(widget=widget(attrs=_number_attrs(spec)), initial=initial, **common)
    elif kind == "text":
        field = forms.CharField(initial=initial, **common)
    elif kind == "layers":
        field = LayerListField(initial=initial, **common)
        item = spec.item_bounds
        field.widget.attrs.update({"data-min": str(item.get("ge", 1)), "data-max": str(item.get("le", ""))})
        field.widget.attrs["data-max-items"] = str(spec.bounds.get("max_length", ""))
    else:
        field = forms.JSONField(
            initial=initial, widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}), **common
        )
    field.spec = spec  # type: ignore[attr-defined]
    field.shown_for = " ".join(ui.get("for_types", []))  # type: ignore[attr-defined]  # read by the page's script
    return field


def section_switch(section: str) -> forms.BooleanField:
    """The checkbox that turns an optional section on, labelled and explained by the spec's own field."""
    info = ExperimentSpec.model_fields[section]
    field = forms.BooleanField(
        label=info.title or section.capitalize(), help_text=info.description or "", required=False
    )
    field.shown_for = ""  # type: ignore[attr-defined]  # concerns every model type
    return field


def section_values(fields: list[SpecField], cleaned: Mapping[str, Any]) -> dict[str, Any]:
    """A section's keys from a form's cleaned data: empty inputs are left out (the default) or None."""
    out: dict[str, Any] = {}
    for spec in fields:
        if spec.key not in cleaned:
            continue  # the field's own error is reported
        value = cleaned[spec.key]
        if value is None or (value == "" and spec.kind != "bool"):
            if spec.nullable:
                out[spec.name] = None
            continue
        out[spec.name] = value
    return out


# ---------------------------------------------------------------------------------------------- the form


class SpecSectionsForm(forms.ModelForm):
    """A ModelForm of a record made of spec sections (`model.SECTIONS`): a field per spec field.

    The record's `clean` runs the engine; its errors, keyed by spec path, are shown on the field of that
    path, and the whole problems stay in `spec_problems` for a page that shows them finer (a table's row).
    Build a concrete form with :func:`sections_form`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for section, fields in self.section_fields().items():
            stored = getattr(self.instance, section, None)
            if section in self.fields:  # an optional section's checkbox
                self.initial.setdefault(section, stored is not None)
            stored = stored or {}
            for spec in fields:
                if spec.name in stored and spec.key in self.fields:
                    self.initial.setdefault(spec.key, stored[spec.name])
        self.spec_problems: list[Problem] = []

    @classmethod
    def section_fields(cls) -> dict[str, list[SpecField]]:
        return {name: spec_fields(name, section) for name, section in cls._meta.model.SECTIONS.items()}

    def sections(self) -> dict[str, dict[str, Any] | None]:
        """The record's sections with this form's values merged in (cleaned data only); None for an optional
        section whose checkbox is off."""
        out: dict[str, dict[str, Any] | None] = {}
        for section, fields in self.section_fields().items():
            if section in self.fields and not self.cleaned_data.get(section):
                out[section] = None  # an optional section left off
                continue
            stored = dict(getattr(self.instance, section, None) or {})
            stored.update(section_values([f for f in fields if f.key in self.fields], self.cleaned_data))
            out[section] = stored
        return out

    def _post_clean(self) -> None:
        for section, value in self.sections().items():
            setattr(self.instance, section, value)
        super()._post_clean()

    def field_for(self, path: str) -> str:
        """The form field that shows a problem at `path`: the spec field's own, the record's, or none."""
        parts = Problem(path, "").parts
        if len(parts) >= 2 and field_key(str(parts[0]), str(parts[1])) in self.fields:
            return field_key(str(parts[0]), str(parts[1]))
        return path if path in self.fields else NON_FIELD_ERRORS

    def _update_errors(self, errors: ValidationError) -> None:
        keyed: dict[str, list[ValidationError]] = {}
        for path, messages in errors.error_dict.items():
            field = self.field_for(path)
            for error in messages:
                for message in error.messages:
                    self.spec_problems.append(Problem(path, message))
                    inner = path.removeprefix(field.replace("-", ".", 1))
                    shown = message if field == path or not inner else f"{inner.lstrip('.') or path}: {message}"
                    keyed.setdefault(field, []).append(ValidationError(shown, code=error.code))
        super()._update_errors(ValidationError(keyed))

    @property
    def by_section(self) -> dict[str, dict[str, forms.BoundField]]:
        """The generated fields as {section: {field: bound field}}, for templates: `form.by_section.model.type`."""
        return {
            section: {spec.name: self[spec.key] for spec in fields if spec.key in self.fields}
            for section, fields in self.section_fields().items()
        }

    def groups(self) -> list[dict[str, Any]]:
        """The generated fields by their `ui` group, in spec order: legend, model types shown for, fields."""
        out: dict[str, dict[str, Any]] = {}
        switched: set[str] = set()
        for section, fields in self.section_fields().items():
            for spec in fields:
                if spec.key not in self.fields:
                    continue
                legend = spec.ui.get("group") or section.capitalize()
                group = out.setdefault(legend, {"legend": legend, "fields": [], "types": set()})
                if section in self.fields and section not in switched:  # the checkbox heads its first group
                    switched.add(section)
                    group["fields"].append(self[section])
                group["fields"].append(self[spec.key])
                group["types"].add(self.fields[spec.key].shown_for)
        for group in out.values():
            types_ = group.pop("types")
            group["shown_for"] = types_.pop() if len(types_) == 1 else ""
        return list(out.values())


def record_initial(record: Any) -> dict[str, Any]:
    """A record's name, description and every section value as a generated form's starting values."""
    initial = {"name": record.name, "description": record.description}
    for section in record.SECTIONS:
        stored = getattr(record, section)
        if section in OPTIONAL_SECTIONS:
            initial[section] = stored is not None
        initial.update({field_key(section, name): value for name, value in (stored or {}).items()})
    return initial


def sections_form(model: type, base: type[forms.ModelForm], fields: list[str], doc: str) -> type[forms.ModelForm]:
    """A form class for `model` with `fields` of its own plus every field of its spec sections."""
    declared = {spec.key: form_field(spec) for specs in _specs_of(model) for spec in specs}
    declared.update({name: section_switch(name) for name in model.SECTIONS if name in OPTIONAL_SECTIONS})
    meta = type("Meta", (), {"model": model, "fields": fields})
    return type(f"{model.__name__}Form", (SpecSectionsForm, base), {**declared, "Meta": meta, "__doc__": doc})


def _specs_of(model: type) -> list[list[SpecField]]:
    return [spec_fields(name, section) for name, section in model.SECTIONS.items()]
