"""The base of every form that creates or changes an organisation's record."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import AbstractBaseUser

from tandem.web.accounts.models import Organisation


class OwnedModelForm(forms.ModelForm):
    """Sets the record's organisation (never taken from input) and keeps names unique within it.

    The organisation is not a form field, so ModelForm would skip the (organisation, name) constraint;
    `clean_name` checks it instead and names the field.
    """

    def __init__(self, *args: Any, organisation: Organisation, user: AbstractBaseUser | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            # Django turns this on for callable defaults (JSON lists); the initial value then comes from a hidden
            # input the API never sends, and every such field would count as changed.
            field.show_hidden_initial = False
        self.organisation = organisation
        self.instance.organisation = organisation
        if user is not None and self.instance.pk is None:
            self.instance.created_by = user

    def clean_name(self) -> str:
        self.instance.name = (self.cleaned_data.get("name") or "").strip()
        error = self.instance.name_problem()
        if error is not None:
            raise error
        return self.instance.name
