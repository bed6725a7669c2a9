"""`tandem study` as a user runs it: the tutorial's weight grid with two workers, pruning, refusals."""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from tandem.cli import main
from tandem.study.record import reason
from tests.study.test_pareto import non_dominated

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_weight_grid_on_the_tutorial_protocol_with_two_workers(tmp_path, shared_data_dir):
    """Nine grid points, each run once by one of two worker processes; (0, 0) is no model and fails with the
    spec's reason; the printed and saved Pareto set is the non-dominated set of the completed trials."""
    out = tmp_path / "study"
    weights = "0,1,2"
    process = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "study", "examples/movielens_multitask.yaml", "--quiet",
         "--param", f"model.retrieval_weight={weights}", "--param", f"model.ranking_weight={weights}",
         "--objective", "recall_at_100:max", "--objective", "test_rmse:min", "--sampler", "grid", "--jobs", "2",
         "--set", "training.epochs=1", "--set", "evaluation.baseline=false", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    record = json.loads((out / "study.json").read_text())
    assert set(record) == {"trials", "pareto"}
    trials = record["trials"]
    assert [t["number"] for t in trials] == list(range(9))
    assert all(set(t) == {"number", "state", "params", "metrics"} for t in trials)
    points = sorted((t["params"]["model.retrieval_weight"], t["params"]["model.ranking_weight"]) for t in trials)
    assert points == sorted(itertools.product([0, 1, 2], repeat=2))  # every point once
    by_point = {(t["params"]["model.retrieval_weight"], t["params"]["model.ranking_weight"]): t for t in trials}
    assert by_point[0, 0]["state"] == "failed"
    assert all(t["state"] == "complete" for p, t in by_point.items() if p != (0, 0))
    complete = {t["number"]: (t["metrics"]["recall_at_100"], t["metrics"]["test_rmse"]) for t in trials
                if t["state"] == "complete"}  # fmt: skip
    front = non_dominated(complete, (1, -1))
    assert record["pareto"] == front
    assert f"Pareto set: {', '.join(map(str, front))}" in process.stdout
    assert "a multitask model needs retrieval_weight or ranking_weight above 0" in process.stdout
    assert len(list((out / "trials").iterdir())) == 8
    # A ranking-only trial (retrieval weight 0) learns no retrieval: far below the joint model's R@100.
    assert by_point[0, 1]["metrics"]["recall_at_100"] < by_point[1, 1]["metrics"]["recall_at_100"] / 2
    best = yaml.safe_load((out / "best.yaml").read_text())
    best_trial = trials[max(front, key=lambda n: complete[n][0])]
    assert best["model"]["retrieval_weight"] == best_trial["params"]["model.retrieval_weight"]
    assert best["model"]["ranking_weight"] == best_trial["params"]["model.ranking_weight"]


def test_a_pruned_trial_stops_within_an_epoch_and_says_why(tmp_path, synthetic_spec_path, capsys):
    """With the median rule after one trial, a hopeless learning rate is stopped at the epoch the pruner
    decides, below the median of the earlier trials there, and marked pruned with that reason."""
    out = tmp_path / "study"
    code = main(["study", str(synthetic_spec_path), "--quiet", "--out", str(out),
                 "--param", "training.learning_rate=0.00002,0.3,0.2,0.00001", "--objective", "test_rmse:min",
                 "--sampler", "grid", "--prune", "median", "--prune-after", "1", "--set", "training.epochs=4"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    study = optuna.load_study(study_name="synthetic", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials()
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, [(t.params, t.intermediate_values) for t in trials]
    for t in pruned:
        epoch = max(t.intermediate_values)
        assert t.user_attrs["metrics"]["epoch"] == epoch < 4  # the run ended at the pruner's epoch
        earlier = [e.intermediate_values[epoch] for e in trials if e.state == optuna.trial.TrialState.COMPLETE
                   and epoch in e.intermediate_values]  # fmt: skip
        assert t.intermediate_values[epoch] > statistics.median(earlier)  # an RMSE: higher is worse
        assert reason(t).startswith(f"pruned after epoch {epoch} by the median pruner: val_rmse = ")
    record = json.loads((out / "study.json").read_text())
    assert {t["state"] for t in record["trials"]} >= {"complete", "pruned"}
    assert "pruned after epoch" in capsys.readouterr().out


def test_bad_ranges_and_objectives_are_refused_before_any_trial(tmp_path, synthetic_spec_path, capsys):
    out = tmp_path / "study"
    code = main(["study", str(synthetic_spec_path), "--out", str(out),
                 "--param", "training.learning_rate=-0.1:0.1:0.05", "--param", "model.dropout=0:1.5",
                 "--objective", "recall_at_10:maxx", "--trials", "0"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("4 problems found:")
    assert "training.learning_rate: Input should be greater than 0" in err and "model.dropout=1.5" in err
    assert "recall_at_10:maxx" in err and "--trials" in err
    assert not out.exists()


def test_an_objective_the_runs_do_not_report_stops_the_study(tmp_path, synthetic_spec_path, capsys):
    code = main(["study", str(synthetic_spec_path), "--quiet", "--out", str(tmp_path / "s"), "--trials", "3",
                 "--param", "model.dropout=0,0.1", "--objective", "recall_at_1000:max", "--set", "training.epochs=1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "the study stopped: the runs do not report recall_at_1000" in err and "recall_at_10" in err
