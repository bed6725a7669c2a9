"""Importing a dataset: save the files, read their schema, check the column choices, record it, then profile it
in the background — or leave nothing.

The files are written to the store first (tandem.web.storage) because DuckDB reads paths: this machine's copy.
If anything fails after that (an unreadable file, a missing column, the database), the files are removed before
the error propagates, so a refused upload leaves neither a record nor a file behind. The upload reads only a
sample (the schema); the whole files are read by :func:`profile` on a worker, which ends the dataset ready or
failed with the reason (and then removes the files, so a hostile file costs one bounded job and no storage).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Sum

from tandem.web import budgets, storage
from tandem.web.accounts.models import Organisation
from tandem.web.datasets.forms import DatasetUploadForm
from tandem.web.datasets.models import ROLES, Dataset, Status, read_options_for
from tandem.web.datasets.profiling import (
    Limits,
    ProfileError,
    file_columns,
    file_format,
    precheck,
    profile_table,
)
from tandem.web.datasets.tasks import profile_dataset


def profile_limits(organisation: Organisation) -> Limits:
    """What one of the organisation's files may hold, and what profiling it may use."""
    b = budgets.of(organisation)
    return Limits(
        decompressed_bytes=b["decompressed_bytes"],
        rows=b["rows"],
        columns=b["columns"],
        column_name_length=b["column_name_length"],
        memory_bytes=b["profile_memory_bytes"],
    )


def check_sizes(organisation: Organisation, files: Mapping[str, UploadedFile]) -> None:
    """Each file within upload_bytes, and the organisation's stored files plus these within stored_bytes.

    Raises ValidationError keyed by the file's field, with the figures and the limit's name.
    """
    b = budgets.of(organisation)
    errors: dict[str, list[str]] = {}
    for role, upload in files.items():
        if upload.size > b["upload_bytes"]:
            errors.setdefault(role, []).append(
                f"{upload.name} is {budgets.figure(upload.size, 'upload_bytes')}; the limit (upload_bytes) is "
                f"{budgets.figure(b['upload_bytes'], 'upload_bytes')}."
            )
    stored = Dataset.objects.of(organisation).aggregate(n=Sum("size_bytes"))["n"] or 0
    new = sum(u.size for u in files.values())
    if not errors and stored + new > b["stored_bytes"]:
        errors["transactions"] = [
            f"Your organisation stores {budgets.figure(stored, 'stored_bytes')} of datasets; with these "
            f"{budgets.figure(new, 'stored_bytes')} it would pass the limit (stored_bytes) of "
            f"{budgets.figure(b['stored_bytes'], 'stored_bytes')}. Delete a dataset first."
        ]
    if errors:
        raise ValidationError({k: [ValidationError(m, code="over_budget") for m in v] for k, v in errors.items()})


def _suffix(name: str) -> str:
    suffixes = Path(name).suffixes[-2:]
    return "".join(s.lower() for s in suffixes if s.lower() in (".csv", ".tsv", ".txt", ".gz", ".parquet", ".pq"))


def create_dataset(
    organisation: Organisation,
    user: AbstractBaseUser | None,
    data: Mapping[str, Any],
    files: Mapping[str, UploadedFile],
) -> Dataset:
    """Validate and store an upload, read its schema and queue its profiling; return the saved Dataset (profiling).

    Raises ValidationError keyed by field (`transactions`, `buyer_id_column`, …) when the input, a file's
    schema or a column choice is wrong; nothing is kept in that case.
    """
    form = DatasetUploadForm(data=dict(data), files=dict(files))
    if not form.is_valid():
        raise ValidationError(form.errors.as_data())
    cleaned = form.cleaned_data
    check_sizes(organisation, {role: cleaned[role] for role in ROLES if cleaned.get(role) is not None})
    limits = profile_limits(organisation)
    folder = f"datasets/{organisation.pk}/{uuid.uuid4().hex}"
    try:
        dataset = Dataset(
            organisation=organisation,
            created_by=user,
            **{k: cleaned[k] or "" for k in ("name", "description", "buyers_key", "products_key")},
            **{k: cleaned[k] or "" for k in ("buyer_id_column", "product_id_column", "timestamp_column")},
            read_options=cleaned["read_options"],
            derived=cleaned["derived"],
            filters=cleaned["filters"],
            aggregate=cleaned["aggregate"],
        )
        errors: dict[str, list[str]] = {}
        for role in ROLES:
            upload = cleaned.get(role)
            if upload is None:
                continue
            stored = default_storage.save(f"{folder}/{role}{_suffix(upload.name)}", upload)
            getattr(dataset, f"{role}_file").name = stored
            dataset.original_names[role] = upload.name
            dataset.size_bytes += upload.size
            try:
                dataset.profile[role] = _read(dataset, role, limits, statistics=False)
            except ProfileError as e:
                errors.setdefault(e.field or role, []).append(f"{upload.name}: {e}")
        declared = set(dataset.read_options.get("types", {}))
        unmatched = declared - {c for role in ROLES for c in dataset.columns_of(role)}
        if unmatched and not errors:
            errors["column_types"] = [
                f"no file has the column{'s' if len(unmatched) > 1 else ''} {', '.join(sorted(unmatched))}"
            ]
        if errors:
            raise ValidationError(errors)
        if Dataset.objects.of(organisation).filter(name=dataset.name).exists():
            raise ValidationError(
                {"name": ValidationError("This name is already taken in your organisation.", code="duplicate_name")}
            )
        dataset.full_clean(exclude=["organisation", "created_by"])
        try:
            with transaction.atomic():
                dataset.save()
                profile_dataset.enqueue(dataset.pk)
        except IntegrityError:
            raise ValidationError(
                {"name": ValidationError("This name was just taken in your organisation.", code="duplicate_name")}
            ) from None
        return dataset
    except BaseException:
        _remove_folder(folder)
        raise


def _read(dataset: Dataset, role: str, limits: Limits, *, statistics: bool = True) -> dict[str, Any]:
    """The profile of one file of `dataset` read with its reading options (only its schema without statistics)."""
    stored = getattr(dataset, f"{role}_file").name
    path, fmt = storage.local_path(stored), file_format(stored)
    precheck(path, fmt, limits)
    options = read_options_for(dataset.read_options, file_columns(path, fmt, limits))
    derived = dataset.derived if role == "transactions" else None
    return profile_table(path, fmt, limits, options, derived, statistics=statistics)


def profile(dataset_id: int) -> str:
    """The background half of an upload: every file's statistics; the dataset ends ready or failed (why).

    Returns the status it ended in; a dataset deleted or no longer profiling meanwhile is left as it is.
    """
    dataset = Dataset.objects.filter(pk=dataset_id, status=Status.PROFILING).first()
    if dataset is None:
        return "skipped"
    limits = profile_limits(dataset.organisation)
    profiles, problems = {}, []
    for role in ROLES:
        if getattr(dataset, f"{role}_file"):
            try:
                profiles[role] = _read(dataset, role, limits)
            except ProfileError as e:
                problems.append(f"{dataset.original_names.get(role, role)}: {e}.")
    if problems:
        fields = {"status": Status.FAILED, "error": " ".join(problems), "size_bytes": 0}
    else:
        fields = {"status": Status.READY, "error": "", "profile": profiles}
    if not Dataset.objects.filter(pk=dataset_id, status=Status.PROFILING).update(**fields):
        return "skipped"
    if problems:
        _remove_folder(_folder_of(dataset))
    return str(fields["status"])


_FOLDER = re.compile(r"datasets/\d+/[0-9a-f]{32}")


def _remove_folder(folder: str) -> None:
    if not _FOLDER.fullmatch(folder):
        return  # only ever remove a folder this module made
    storage.delete_folder(folder)


def delete_dataset(dataset: Dataset) -> None:
    """Delete the record (refused while experiments use it: ProtectedError) and then its files."""
    folder = _folder_of(dataset)
    dataset.delete()
    _remove_folder(folder)


def _folder_of(dataset: Dataset) -> str:
    return str(Path(dataset.transactions_file.name).parent)
