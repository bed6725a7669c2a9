"""Reading files: declared column types, missing-value markers, a byte-order mark, whole-file type guesses."""

from __future__ import annotations

import datetime as dt
import gzip

import duckdb
import pandas as pd
import pytest

from tandem.data.sources import read_source
from tandem.errors import DataError
from tandem.spec import TableSource


def _read(path, **options) -> tuple[dict[str, str], list[tuple]]:
    con = duckdb.connect()
    columns = dict(read_source(con, TableSource(path=str(path), **options), "t"))
    return columns, con.execute("SELECT * FROM t").fetchall()


def test_declared_types_override_the_guess_and_the_others_are_guessed(tmp_path):
    """A numeric-looking id declared VARCHAR stays text with its leading zeros; undeclared columns are guessed."""
    path = tmp_path / "tx.csv"
    path.write_text("id,qty\n1104905,2\n00418683,3\n")
    columns, rows = _read(path, types={"id": "VARCHAR"})
    assert columns == {"id": "VARCHAR", "qty": "BIGINT"}
    assert rows == [("1104905", 2), ("00418683", 3)]
    assert _read(path, types={"qty": "DOUBLE"})[0]["qty"] == "DOUBLE"


def test_declared_types_apply_to_parquet_too(tmp_path):
    """A Parquet column can be declared another type; the values are cast."""
    path = tmp_path / "tx.parquet"
    pd.DataFrame({"id": [7, 8], "qty": [1, 2]}).to_parquet(path, index=False)
    columns, rows = _read(path, types={"id": "VARCHAR", "qty": "DOUBLE"})
    assert columns == {"id": "VARCHAR", "qty": "DOUBLE"}
    assert rows == [("7", 1.0), ("8", 2.0)]


def test_a_type_for_a_missing_column_is_refused_by_name(tmp_path):
    """`types` naming a column the file lacks is an error that names it and lists the file's columns."""
    path = tmp_path / "tx.csv"
    path.write_text("id,qty\n1,2\n")
    with pytest.raises(DataError, match=r"\(nope\); it has: id, qty"):
        _read(path, types={"nope": "VARCHAR"})


def test_null_values_are_read_as_missing(tmp_path):
    """Markers such as 'Unknown' become missing values, and empty fields stay missing."""
    path = tmp_path / "tx.csv"
    path.write_text("area,qty\n115,1\nUnknown,2\n,3\n")
    _, rows = _read(path, null_values=["Unknown"], types={"area": "VARCHAR"})
    assert rows == [("115", 1), (None, 2), (None, 3)]


def test_types_are_guessed_from_the_whole_file_not_its_first_lines(tmp_path):
    """A column that is numeric for 30,000 lines and then holds text is read as text, not cut off with an error."""
    path = tmp_path / "tx.csv"
    lines = [f"{i},{i}" for i in range(30_000)] + ["30000,X1"]
    path.write_text("n,code\n" + "\n".join(lines) + "\n")
    columns, rows = _read(path)
    assert columns == {"n": "BIGINT", "code": "VARCHAR"}
    assert rows[-1] == (30000, "X1")


def test_a_declared_timestamp_format_types_the_dates(tmp_path):
    """timestamp_format reads M/D/YYYY dates as dates; a gzip file with a UTF-8 byte-order mark reads its header."""
    path = tmp_path / "tx.csv.gz"
    path.write_bytes(gzip.compress('\ufeff"DAY","ID"\n"11/1/2000","01"\n"11/13/2000","02"\n'.encode()))
    columns, rows = _read(path, timestamp_format="%m/%d/%Y", types={"ID": "VARCHAR"})
    assert columns == {"DAY": "DATE", "ID": "VARCHAR"}
    assert rows == [(dt.date(2000, 11, 1), "01"), (dt.date(2000, 11, 13), "02")]


def test_iso_dates_are_not_doubted(tmp_path):
    """Year-first dates with days ≤ 12 are ISO 8601, not a day/month puzzle."""
    path = tmp_path / "tx.csv"
    path.write_text("day\n2000-01-02\n2000-03-04\n")
    columns, rows = _read(path)
    assert columns == {"day": "DATE"}
    assert rows == [(dt.date(2000, 1, 2),), (dt.date(2000, 3, 4),)]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"types": {"id": "VARCHAR); DROP TABLE t; --"}}, "types.id"),
        ({"types": {"id": "BLOB"}}, "types.id"),
        ({"timestamp_format": "MM/DD/YYYY"}, "timestamp_format"),
    ],
)
def test_hostile_or_unknown_read_options_are_refused_by_the_spec(options, says):
    """Column types outside the list and formats without a directive are spec errors naming the field."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        TableSource(path="x.csv", **options)
    assert says in ".".join(str(p) for p in info.value.errors()[0]["loc"])
