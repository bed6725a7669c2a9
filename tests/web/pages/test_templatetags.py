"""Number formatting: recall as a percentage with one decimal, errors with three, a dash for no value."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tandem.web.pages.templatetags import pages_format as f


def test_recall_reads_as_a_percentage() -> None:
    assert f.percent(0.2346) == "23.5%"
    assert (f.percent(0.5), f.percent(1), f.percent(0.004)) == ("50.0%", "100.0%", "0.4%")
    assert f.percent(0.25, 0) == "25%"


def test_errors_read_with_three_decimals() -> None:
    assert (f.error3(1.10934), f.error3(2), f.error3(0.0004)) == ("1.109", "2.000", "0.000")


def test_a_missing_value_is_a_dash() -> None:
    assert f.percent(None) == f.error3(None) == f.count(None) == f.compact(None) == "—"


def test_a_metric_is_formatted_by_its_name() -> None:
    assert f.metric(0.1, "recall_at_10") == "10.0%"
    assert f.metric(0.1, "popularity_recall_at_10") == "10.0%"
    assert f.metric(0.1, "test_rmse") == "0.100"


def test_statistics_stay_short() -> None:
    assert (f.compact(1234567), f.compact(3.14159265), f.compact("x" * 30)) == ("1,234,567", "3.142", "x" * 23 + "…")


def test_times_read_like_a_person_says_them() -> None:
    now = timezone.now()
    assert f.ago(now - timedelta(seconds=5)) == "just now"
    assert f.ago(now - timedelta(minutes=5)) == "5\xa0minutes ago"  # Django's timesince keeps number and unit together
    assert f.duration(now, now + timedelta(seconds=42)) == "42 s"
    assert f.duration(now, now + timedelta(seconds=185)) == "3 min 5 s"
    assert f.duration(now, now + timedelta(hours=2, minutes=10)) == "2 h 10 min"
