"""The trainer's entry point, in-process: argument and spec errors exit 1 with the problems listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tandem.export.standalone import main
from tests.export.cases import spec_dict


def test_a_bad_override_is_reported_with_its_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The spec's own validation runs, and its problems are printed one per line."""
    code = main(
        spec_dict("multitask"), ["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "training.epochs=0"]
    )
    assert code == 1
    assert "training.epochs" in capsys.readouterr().err


def test_missing_data_files_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--data pointing at a folder without the files is an error naming the file, not a traceback."""
    assert main(spec_dict("retrieval"), ["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "transactions.csv: no such file" in capsys.readouterr().err


def test_data_and_out_are_required() -> None:
    """argparse refuses a call without them."""
    with pytest.raises(SystemExit):
        main(spec_dict("retrieval"), [])
