"""Reading bundles: clear errors for a missing, unfinished or foreign folder; product ids matched as in training."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tandem.serving.bundle import Bundle, BundleError, IdLookup
from tests.export.cases import Case


def test_a_missing_folder_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist; export one with `tandem train"):
        Bundle.load(tmp_path / "nowhere")


def test_a_folder_without_manifest_is_an_unfinished_export(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        Bundle.load(tmp_path)


def test_an_unknown_format_version_is_refused(cases: Callable[[str], Case], tmp_path: Path) -> None:
    """A bundle from a newer writer is refused rather than misread."""
    folder = shutil.copytree(cases("retrieval").bundle, tmp_path / "bundle")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(BundleError, match="version 99 is not readable here"):
        Bundle.load(folder)


def test_product_ids_match_as_training_matched_them() -> None:
    """Integer ids match their string and float spellings; unknown ids are -1."""
    lookup = IdLookup(np.array([42, 7, 1000]))
    np.testing.assert_array_equal(lookup.rows([7, "42", 1000.0, "x", 8]), [1, 0, 2, -1, -1])
    assert len(lookup.rows([])) == 0


def test_a_loaded_bundle_knows_its_signatures(cases: Callable[[str], Case]) -> None:
    bundle = Bundle.load(cases("ranking").bundle)
    assert (bundle.has_retrieval, bundle.has_ranking, bundle.index) == (False, True, None)
    assert bundle.candidates.shape == (len(bundle.product_ids), 8)
