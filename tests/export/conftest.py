"""Fixtures of the export tests: small trained models of each type (trained once per session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.export.cases import Case, trained_case


@pytest.fixture(scope="session")
def case_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cases")


@pytest.fixture(scope="session")
def cases(case_root: Path, write_synthetic_project: Callable[..., Path]) -> Callable[[str], Case]:
    """`cases(model_type)`: the trained case of that type."""
    return lambda model_type: trained_case(model_type, case_root, write_synthetic_project)
