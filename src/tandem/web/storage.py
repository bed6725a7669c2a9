"""The one storage layer for what another machine needs: uploaded files, run artifacts and serving bundles.

Django's default storage is the store: the local filesystem under MEDIA_ROOT (the embedded default), or an
S3-compatible bucket through django-storages (TANDEM_S3_BUCKET, see settings). Records hold storage names
("datasets/3/…/transactions.csv", "experiments/3/12/attempt-1"), never a machine's paths.

The engine reads local files (DuckDB, ONNX Runtime), so a worker works on local copies: `local_path` and
`local_folder` fetch stored files into this machine's cache (TANDEM_CACHE_DIR) once, `work_folder` is where a run
writes its output, and `store_folder` puts that output in the store. Stored names are written once and never
change (a new upload gets a new folder, a new run attempt its own), so a cached copy never goes stale. On the
filesystem storage every one of these is the stored file itself, and nothing is copied.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

CHUNK = 1 << 20


def _own_path(name: str) -> Path | None:
    """The stored file's own path when the storage keeps files on this machine's disk, else None."""
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:
        return None


def _cached(name: str) -> Path:
    return Path(settings.TANDEM_CACHE_DIR) / name


def local_path(name: str) -> Path:
    """A path on this machine holding the stored file `name` (fetched into the cache on first use)."""
    own = _own_path(name)
    if own is not None:
        return own
    target = _cached(name)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.part")  # never a half file under the name
        with default_storage.open(name, "rb") as source, partial.open("wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
        os.replace(partial, target)
    return target


def stored_files(folder: str) -> list[str]:
    """The names of every file stored under `folder`, at any depth ([] when there is none)."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    names = [f"{folder}/{f}" for f in files]
    for sub in folders:
        names += stored_files(f"{folder}/{sub}")
    return names


def local_root(names: Iterable[str] = ()) -> Path:
    """The folder of this machine that stored names resolve against (MEDIA_ROOT, or the cache), with the stored
    files `names` fetched into it."""
    for name in names:
        local_path(name)
    return _own_path("") or Path(settings.TANDEM_CACHE_DIR)


def local_folder(folder: str) -> Path:
    """A folder on this machine holding every file stored under `folder` (fetched into the cache once)."""
    own = _own_path(folder)
    if own is not None:
        return own
    for name in stored_files(folder):
        local_path(name)
    return _cached(folder)


def work_folder(folder: str) -> Path:
    """Where this machine writes what will be stored as `folder`: the stored folder itself on the filesystem
    storage, else its place in the cache (then `store_folder` uploads it)."""
    return _own_path(folder) or _cached(folder)


def store_folder(folder: str) -> None:
    """Put every file `work_folder(folder)` holds into the store under `folder` (nothing to do on the filesystem
    storage, where the work folder is the stored one)."""
    if _own_path(folder) is not None:
        return
    local = _cached(folder)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        name = f"{folder}/{path.relative_to(local).as_posix()}"
        with path.open("rb") as content:
            default_storage.save(name, File(content, name=path.name))


def delete_folder(folder: str) -> None:
    """Remove every file stored under `folder`, and this machine's cached copies of them."""
    own = _own_path(folder)
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)
        return
    for name in stored_files(folder):
        default_storage.delete(name)
    shutil.rmtree(_cached(folder), ignore_errors=True)
