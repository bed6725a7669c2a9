"""Chart configurations from an experiment's history and weight statistics, and the card and summary shapes."""

from __future__ import annotations

from typing import Any

import pytest

from tandem.web.experiments.models import Experiment, Status
from tandem.web.pages import charts, queries
from tests.web.pages.conftest import history, weight_stats


def _experiment(model_type: str, pk: int = 1, **fields: Any) -> Experiment:
    """An unsaved experiment with a two-epoch history of its type (no database needed)."""
    retrieval, ranking = model_type != "ranking", model_type != "retrieval"
    towers = ("query_tower", "candidate_tower", *(("rating_head",) if ranking else ()))
    values = {"history": history(2, retrieval=retrieval, ranking=ranking), "weight_stats": weight_stats(2, towers)}
    return Experiment(pk=pk, name=f"e{pk}", model_type=model_type, **{**values, **fields})


def _keys(chart_list: list[dict]) -> list[str]:
    return [c["key"] for c in chart_list]


def test_each_task_gets_its_loss_and_a_multitask_model_its_total_too() -> None:
    multitask = ["retrieval_loss", "ranking_loss", "loss", "val_recall", "val_errors"]
    assert _keys(charts.training_curves(_experiment("multitask"))) == multitask
    assert _keys(charts.training_curves(_experiment("retrieval"))) == ["retrieval_loss", "val_recall"]
    assert _keys(charts.training_curves(_experiment("ranking"))) == ["ranking_loss", "val_errors"]


def test_validation_recall_has_a_line_per_k_in_order_on_a_percent_axis() -> None:
    chart = charts.training_curves(_experiment("retrieval"))[1]
    assert [d["label"] for d in chart["data"]["datasets"]] == ["R@5", "R@10", "R@50", "R@100"]
    assert chart["axes"]["percent"] and chart["data"]["labels"] == [1, 2]
    assert chart["data"]["datasets"][0]["data"] == [0.035, 0.045]


def test_weights_show_a_band_of_one_deviation_and_the_last_histogram() -> None:
    towers = charts.weight_charts(_experiment("multitask"))
    assert [t["title"] for t in towers] == ["Query tower (buyer)", "Candidate tower (product)", "Rating head"]
    upper, lower, mean = towers[0]["trend"]["data"]["datasets"]
    assert upper["data"] == pytest.approx([0.11, 0.11]) and lower["data"] == pytest.approx([-0.09, -0.09])
    assert mean["data"] == [0.01, 0.01]
    assert upper["fill"] == "+1" and lower["hideInLegend"]
    histogram = towers[0]["histogram"]
    bins = histogram["data"]["datasets"][0]["data"]
    assert histogram["type"] == "bar" and [b["y"] for b in bins] == [1, 3, 4, 2]
    assert [b["x"] for b in bins] == pytest.approx([-0.225, -0.075, 0.075, 0.225])  # bin centres on a numeric axis
    assert histogram["axes"]["numeric_x"] and histogram["axes"]["y_title"] == "count"
    assert len(charts.weight_charts(_experiment("retrieval"))) == 2


def test_compared_curves_overlay_only_the_series_recorded() -> None:
    overlaid = charts.compare_curves([_experiment("retrieval", 1), _experiment("ranking", 2)])
    assert _keys(overlaid) == ["retrieval_loss", "ranking_loss", "val_recall_at_100", "val_rmse"]
    assert [d["label"] for d in overlaid[0]["data"]["datasets"]] == ["#1 e1"]
    assert [d["label"] for d in overlaid[1]["data"]["datasets"]] == ["#2 e2"]


def test_compared_losses_are_relative_to_their_first_epoch_in_distinct_styles() -> None:
    """Runs whose losses differ in size share an axis: each curve divided by its first epoch's value."""
    small = _experiment("retrieval", 1)
    large = _experiment(
        "retrieval", 2, history=[{"epoch": 1, "retrieval_loss": 600.0}, {"epoch": 2, "retrieval_loss": 300.0}]
    )
    a, b = charts.compare_curves([small, large])[0]["data"]["datasets"]
    assert a["data"] == [1.0, 0.5] and b["data"] == [1.0, 0.5]  # 9/1 → 9/2 and 600 → 300
    assert a["borderDash"] != b["borderDash"] and a["pointStyle"] != b["pointStyle"]


def test_a_task_has_one_colour_on_every_chart() -> None:
    """The retrieval loss is blue whether or not the model also ranks; the ranking loss is orange likewise."""
    colour = {
        (t, c["key"]): c["data"]["datasets"][0]["borderColor"]
        for t in ("multitask", "retrieval", "ranking")
        for c in charts.training_curves(_experiment(t))
    }
    assert (
        colour["multitask", "retrieval_loss"]
        == colour["retrieval", "retrieval_loss"]
        == charts.TASK_COLOURS["retrieval"]
    )
    assert colour["multitask", "ranking_loss"] == colour["ranking", "ranking_loss"] == charts.TASK_COLOURS["ranking"]


def test_the_best_so_far_chart_titles_both_axes_and_centres_a_single_point() -> None:
    one = charts.best_over_time_chart("multitask", {"labels": ["1 Dec"], "recall_at_100": [0.3], "test_rmse": [1.2]})
    assert one["axes"]["offset"] and one["axes"]["secondary"]
    assert (one["axes"]["y_title"], one["axes"]["y1_title"]) == ("recall@100", "test RMSE")
    two = charts.best_over_time_chart("retrieval", {"labels": ["1 Dec", "2 Dec"], "recall_at_100": [0.3, 0.4]})
    assert not two["axes"]["offset"] and not two["axes"]["secondary"]


def test_progress_counts_finished_epochs_and_the_current_ones_steps() -> None:
    running = Experiment(status=Status.RUNNING, total_epochs=4, progress={"epoch": 3, "step": 1, "steps": 4})
    assert queries.progress(running) == queries.Progress(56, "Epoch 3 of 4", False)
    preparing = Experiment(status=Status.RUNNING, total_epochs=4, progress={})
    assert queries.progress(preparing).label == "Preparing data" and queries.progress(preparing).indeterminate
    assert queries.progress(Experiment(status=Status.PENDING)).label == "Queued, waiting for a worker"


def test_cards_and_summaries_follow_the_model_type() -> None:
    assert [r.task for r in queries.card_rows(_experiment("multitask"))] == ["Retrieval", "Ranking"]
    assert [r.task for r in queries.card_rows(_experiment("retrieval"))] == ["Retrieval"]
    assert [r.task for r in queries.card_rows(_experiment("ranking"))] == ["Ranking"]
    e = _experiment("retrieval", recall_at_5=0.3, other_metrics={"popularity_recall_at_5": 0.1})
    cell = queries.summary(e)[0].cells[0]
    assert (cell.label, cell.value, cell.baseline, cell.baseline_name) == ("Recall@5", 0.3, 0.1, "popularity")
    assert round(cell.lift, 6) == 3.0


def test_the_summary_and_card_set_the_model_beside_the_best_baseline_for_all_repeat_and_explore() -> None:
    """Each subset's row compares the model with whichever baseline scores highest there; the card shows the
    lifts at R@10 and R@100 of the subsets measured."""
    other = {
        "popularity_recall_at_10": 0.1,
        "buy_again_recall_at_10": 0.4,
        "repeat_recall_at_10": 0.6,
        "buy_again_repeat_recall_at_10": 0.8,
        "ease_repeat_recall_at_10": 0.5,
        "explore_recall_at_10": 0.05,
        "ease_explore_recall_at_10": 0.04,
    }
    e = _experiment("retrieval", recall_at_10=0.2, other_metrics=other)
    rows = queries.summary(e)
    assert [r.task for r in rows] == ["Retrieval", "Re-orders", "New products"]
    at_10 = [(r.cells[1].value, r.cells[1].baseline_name, r.cells[1].baseline) for r in rows]
    assert at_10 == [(0.2, "buy_again", 0.4), (0.6, "buy_again", 0.8), (0.05, "ease", 0.04)]
    card = queries.card_rows(e)
    assert [r.task for r in card] == ["Retrieval", "Lift over best baseline"]
    assert [(c.label, round(c.lift, 6)) for c in card[1].cells] == [
        ("all@10", 0.5),
        ("repeat@10", 0.75),
        ("explore@10", 1.25),
    ]


def test_a_two_stage_experiment_shows_its_lists_beside_the_baselines_whatever_its_model_type() -> None:
    """With a `recommend` section the lists are the second stage's (`recall_at_K`), even over a ranking model."""
    e = _experiment("ranking", recall_at_10=0.3, other_metrics={"buy_again_recall_at_10": 0.25})
    e.spec = {"model": {"type": "ranking"}, "recommend": {}}
    rows = queries.summary(e)
    assert [r.task for r in rows] == ["Two-stage lists", "Ranking"]
    assert (rows[0].cells[1].baseline_name, round(rows[0].cells[1].lift, 6)) == ("buy_again", 1.2)
    assert [r.task for r in queries.card_rows(e)] == ["Two-stage lists", "Lift over best baseline", "Ranking"]


def test_the_comparison_marks_the_largest_recall_and_the_smallest_error() -> None:
    a = _experiment("multitask", 1, recall_at_10=0.2, test_rmse=1.5)
    b = _experiment("retrieval", 2, recall_at_10=0.4)
    c = _experiment("ranking", 3, test_rmse=1.1)
    rows = {r.task: r.cells for r in queries.comparison([a, b, c])}
    assert list(rows) == ["Recall@10", "Test RMSE"]  # rows no experiment measured are left out
    assert [c.best for c in rows["Recall@10"]] == [False, True, False]
    assert [c.best for c in rows["Test RMSE"]] == [False, False, True]
