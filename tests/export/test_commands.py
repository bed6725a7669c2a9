"""`tandem export-trainer SPEC -o FILE` writes a trainer that compiles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tandem.cli import main
from tests.export.cases import spec_dict


def test_export_trainer_writes_a_compilable_module(
    tmp_path: Path, write_synthetic_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The command writes the file, names how to run it, and applies --set overrides to the spec literal."""
    spec = write_synthetic_project(tmp_path / "project", spec_dict("retrieval"))
    out = tmp_path / "trainer.py"
    assert main(["export-trainer", str(spec), "-o", str(out), "--set", "model.retrieval_weight=0.5"]) == 0
    source = out.read_text(encoding="utf-8")
    compile(source, str(out), "exec")
    assert "RETRIEVAL_WEIGHT = 0.5" in source and "MODEL_TYPE = 'retrieval'" in source
    assert f"python {out} --data" in capsys.readouterr().out


def test_export_trainer_reports_spec_problems(tmp_path: Path, write_synthetic_project: Callable[..., Path]) -> None:
    """An invalid spec is reported like `tandem train` reports it, with exit status 1."""
    spec = write_synthetic_project(tmp_path / "project", spec_dict("multitask"))
    assert main(["export-trainer", str(spec), "-o", str(tmp_path / "t.py"), "--set", "model.type=bogus"]) == 1
    assert not (tmp_path / "t.py").exists()
