"""The `tandem` command. The main paths run as a user runs them, in a subprocess (each one pays for importing
torch, so there are few); the other messages are checked by calling `main` in-process, where an uncaught
exception would fail the test just as a traceback would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tandem.cli import main, openmp_wait_env


def tandem(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run `python -m tandem.cli ARGS` in `cwd` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "tandem.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, write_synthetic_project):
    """One `tandem train` of the synthetic spec with --set overrides; returns (process, output folder)."""
    folder = tmp_path_factory.mktemp("cli")
    spec = write_synthetic_project(folder / "project")
    out = folder / "run"
    process = tandem(
        "train", spec, "--out", out, "--quiet", "--set", "training.epochs=2", "--set", "name=overridden", cwd=folder
    )
    return process, out


def test_train_exits_zero_and_prints_the_metrics(trained_run):
    """`tandem train` succeeds and prints a summary with the metric table."""
    process, _ = trained_run
    assert process.returncode == 0, process.stderr
    assert "overridden: multitask model trained" in process.stdout
    assert "recall_at_10" in process.stdout
    assert "Traceback" not in process.stderr


def test_the_metric_table_reads_headline_metrics_first_then_each_family_by_k(trained_run):
    """Recall at every K (ascending) and the four errors lead; the other families follow, K ascending in each."""
    process, _ = trained_run
    names = [line.split()[0] for line in process.stdout.splitlines() if line.startswith("  ")]
    headline = ["recall_at_1", "recall_at_5", "recall_at_10", "rmse", "mae", "test_rmse", "test_mae"]
    assert names[:7] == headline, process.stdout  # the synthetic spec measures K = 1, 5, 10
    coverage = [n for n in names if n.startswith("coverage_at_")]
    assert coverage == ["coverage_at_1", "coverage_at_5", "coverage_at_10"]
    assert names.index("coverage_at_10") < names.index("mrr") < names.index("ndcg_at_1")


def test_train_writes_every_run_file(trained_run):
    """The run folder holds metrics, history, weight statistics, the data report, the spec and the model."""
    _, out = trained_run
    for name in ("metrics.json", "history.json", "weight_stats.json", "data_report.json", "spec.yaml"):
        assert (out / name).is_file(), name
    for name in ("spec.yaml", "features.json", "model.pt", "catalog.parquet"):
        assert (out / "model" / name).is_file(), name


def test_metrics_json_is_a_flat_mapping_of_numbers(trained_run):
    """metrics.json maps metric names to plain numbers, with test retrieval and rating metrics."""
    _, out = trained_run
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert all(isinstance(k, str) and type(v) in (int, float) for k, v in metrics.items())
    assert {"recall_at_1", "recall_at_10", "ndcg_at_5", "mrr", "coverage_at_10", "test_rmse", "rmse"} <= set(metrics)
    assert 0 <= metrics["recall_at_10"] <= 1


def test_set_overrides_reach_the_run(trained_run):
    """--set values replace the file's: two epochs of history and the overridden name in spec.yaml."""
    _, out = trained_run
    history = json.loads((out / "history.json").read_text(encoding="utf-8"))
    weights = json.loads((out / "weight_stats.json").read_text(encoding="utf-8"))
    spec = yaml.safe_load((out / "spec.yaml").read_text(encoding="utf-8"))
    assert [r["epoch"] for r in history] == [1, 2]
    assert [w["epoch"] for w in weights] == [1, 2]
    assert {"query_tower", "candidate_tower", "rating_head"} <= set(weights[0])
    assert "histogram" in weights[0]["rating_head"]
    assert spec["name"] == "overridden"
    assert spec["training"]["epochs"] == 2


def test_validate_reports_every_problem_without_a_traceback(tmp_path, write_synthetic_project, synthetic_spec_raw):
    """`tandem validate` on a broken spec exits 1 and lists each problem with its path, with no traceback."""
    synthetic_spec_raw["model"].update(retrieval_weight=0, ranking_weight=0, rating_head_layers=[8, 4])
    synthetic_spec_raw["training"]["early_stopping"] = {"metric": "val_rmse"}
    synthetic_spec_raw["data"]["split"]["validation_fraction"] = 0.0
    spec = write_synthetic_project(tmp_path, synthetic_spec_raw)

    process = tandem("validate", spec, cwd=tmp_path)

    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    assert "3 problems found" in process.stderr
    for path in ("model.retrieval_weight", "model.rating_head_layers", "training.early_stopping"):
        assert f"- {path}: " in process.stderr


def test_validate_reports_data_problems_found_by_reading_the_files(
    tmp_path, write_synthetic_project, synthetic_spec_raw, capsys
):
    """`tandem validate` also reports columns that the data files lack."""
    synthetic_spec_raw["features"]["target"] = "revenue"
    spec = write_synthetic_project(tmp_path, synthetic_spec_raw)
    assert main(["validate", str(spec)]) == 1
    assert "- features.target: unknown column 'revenue'" in capsys.readouterr().err


def test_validate_accepts_a_good_spec_and_counts_rows(synthetic_spec_path, capsys):
    """`tandem validate` on a good spec exits 0 and reports the rows of each split."""
    assert main(["validate", str(synthetic_spec_path)]) == 0
    out = capsys.readouterr().out
    assert "valid. 600 rows (384 train, 96 validation, 120 test)" in out
    assert "24 products, 40 buyers" in out


def test_missing_data_file_is_a_clear_error(tmp_path, write_synthetic_project):
    """A spec whose data file is missing exits 1 with the file named and no traceback."""
    spec = write_synthetic_project(tmp_path)
    (tmp_path / "transactions.csv").unlink()
    process = tandem("train", spec, "--out", tmp_path / "run", "--quiet", cwd=tmp_path)
    assert process.returncode == 1
    assert "error: " in process.stderr
    assert "transactions.csv: no such file" in process.stderr
    assert "Traceback" not in process.stderr
    assert not (tmp_path / "run").exists()


def test_bad_set_override_is_reported(synthetic_spec_path, capsys):
    """An override without '=' exits 1 with a --set problem."""
    assert main(["train", str(synthetic_spec_path), "--set", "training.epochs"]) == 1
    assert "- --set: 'training.epochs' is not of the form section.key=value" in capsys.readouterr().err


def test_invalid_yaml_is_reported(tmp_path, capsys):
    """A spec file that is not YAML exits 1 naming the line."""
    spec = tmp_path / "broken.yaml"
    spec.write_text("data:\n  transactions: [oops\n", encoding="utf-8")
    assert main(["validate", str(spec)]) == 1
    assert "not valid YAML at line" in capsys.readouterr().err


def test_unmeasured_early_stopping_metric_is_a_problem_not_a_crash(
    tmp_path, write_synthetic_project, synthetic_spec_raw, capsys
):
    """`tandem train` with an early-stopping metric the run does not measure exits 1 with that field's problem."""
    synthetic_spec_raw["training"].update(epochs=1, early_stopping={"metric": "val_recall_at_100"})
    spec = write_synthetic_project(tmp_path, synthetic_spec_raw)
    assert main(["train", str(spec), "--quiet", "--out", str(tmp_path / "run")]) == 1
    assert "- training.early_stopping.metric: 'val_recall_at_100' is not measured" in capsys.readouterr().err


def test_train_prints_the_model_beside_the_best_baseline(trained_run):
    """Each K's row names the baseline with the highest recall in metrics.json, its value and the lift."""
    process, out = trained_run
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    for subset in ("", "explore_"):  # every synthetic pair is bought once: no re-orders to count
        key = f"{subset}recall_at_10"
        values = {n: metrics[f"{n}_{key}"] for n in ("popularity", "buy_again", "ease", "buy_again_ease")}
        best = max(values, key=lambda n: values[n])
        label = [(subset or "all_").rstrip("_"), "recall@10"]
        row = next(line.split() for line in process.stdout.splitlines() if line.split()[:2] == label)
        assert row[2:5] == [f"{metrics[key]:.4f}", best, f"{values[best]:.4f}"]
        lift = metrics[key] / values[best] if values[best] else None
        assert row[5] == (f"x{lift:.2f}" if lift is not None else "-")


def test_a_csv_no_delimiter_fits_is_one_clear_error(tmp_path, write_synthetic_project, capsys):
    """Rows of different widths: the file is named with the reason, not the header read as other columns."""
    spec = write_synthetic_project(tmp_path)
    lines = (tmp_path / "transactions.csv").read_text().splitlines()
    lines[2] += ",extra"
    lines[3] = lines[3].replace(",", ";")
    (tmp_path / "transactions.csv").write_text("\n".join(lines) + "\n")
    assert main(["validate", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "transactions.csv: the rows do not all have the same number of fields, so no delimiter fits" in err
    assert "unknown column" not in err and "Traceback" not in err


def test_a_non_numeric_target_value_drops_its_row_and_counts_it(tmp_path, write_synthetic_project, capsys):
    """One "n/a" in the target column: that row is dropped and counted (the README's promise), the run goes on."""
    spec = write_synthetic_project(tmp_path)
    path = tmp_path / "transactions.csv"
    frame = pd.read_csv(path)
    frame["rating"] = frame["rating"].astype(object)
    frame.loc[7, "rating"] = "n/a"
    frame.to_csv(path, index=False)
    assert main(["validate", str(spec)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"valid. {len(frame) - 1} rows" in out and "bad target: 1 rows dropped" in out


def test_openmp_threads_sleep_on_a_busy_machine_and_spin_briefly_on_an_idle_one():
    assert openmp_wait_env(1.0, 2) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert openmp_wait_env(24.0, 16) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert openmp_wait_env(0.9, 2) == {"GOMP_SPINCOUNT": "10000"}


def test_a_users_openmp_choice_is_kept():
    """A child CLI process started with the user's OpenMP setting sees it unchanged, and no other one added."""
    code = (
        "import os; import tandem.cli as c; c._openmp_waiting(); "
        "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True
    )
    assert done.stdout.split() == ["ACTIVE", "None"], done.stderr
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    chosen = done.stdout.split()
    assert chosen in (["PASSIVE", "None"], ["None", "10000"]), done.stderr
