"""The derived-column grammar: what it accepts, the SQL it builds (run in DuckDB), and what it refuses."""

from __future__ import annotations

import math

import duckdb
import pytest

from tandem.expressions import ExpressionError, compile_expression, referenced_columns

ROWS = [(2, 1.5, "Ab", None), (3, 0.0, "cD", 4.0), (-1, 2.0, None, 1.0)]
COLUMNS = {"qty": '"qty"', "price": '"price"', "name": '"name"', "Unit Price": '"Unit Price"'}


def _evaluate(expr: str) -> list:
    """Values of `expr` over ROWS, computed by DuckDB from the compiled SQL."""
    con = duckdb.connect()
    con.execute('CREATE TABLE t (qty INTEGER, price DOUBLE, name VARCHAR, "Unit Price" DOUBLE)')
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", ROWS)
    return [v for (v,) in con.execute(f"SELECT {compile_expression(expr, COLUMNS)} FROM t").fetchall()]


def test_arithmetic_follows_python_precedence_and_parentheses():
    """+ - * / with parentheses give the same numbers as Python on each row."""
    assert _evaluate("qty * price + 1") == [q * p + 1 for q, p, _, _ in ROWS]
    assert _evaluate("qty * (price + 1)") == [q * (p + 1) for q, p, _, _ in ROWS]
    assert _evaluate("-qty + 10 / 4") == [-q + 2.5 for q, _, _, _ in ROWS]


def test_division_by_zero_gives_a_missing_value():
    """A zero divisor yields NULL rather than infinity, so one line cannot poison a target."""
    assert _evaluate("qty / price") == [2 / 1.5, None, -0.5]
    assert _evaluate("qty % price") == [2 % 1.5, None, math.fmod(-1, 2.0)]


def test_logarithms_are_missing_outside_their_domain():
    """log1p and log give NULL where the maths is undefined instead of failing the whole query."""
    assert _evaluate("log1p(qty)") == [pytest.approx(math.log1p(2)), pytest.approx(math.log1p(3)), None]
    assert _evaluate("log(price)") == [math.log(1.5), None, math.log(2.0)]
    assert _evaluate("sqrt(qty)") == [math.sqrt(2), math.sqrt(3), None]


def test_text_and_null_functions():
    """lower, upper, substr, concat and coalesce behave like their Python counterparts."""
    assert _evaluate("lower(name)") == ["ab", "cd", None]
    assert _evaluate("upper(name)") == ["AB", "CD", None]
    assert _evaluate("substr(name, 2, 1)") == ["b", "D", None]
    assert _evaluate("coalesce(name, 'none')") == ["Ab", "cD", "none"]
    assert _evaluate("concat(name, '-', qty)") == ["Ab-2", "cD-3", "--1"]  # concat skips the missing name
    assert _evaluate('coalesce(col("Unit Price"), 0) * 2') == [0, 8.0, 2.0]


def test_referenced_columns_lists_each_column_once_in_order():
    """The columns a formula uses, in order of first use, including col("...") names."""
    assert referenced_columns('qty * price + abs(qty) - col("Unit Price")') == ["qty", "price", "Unit Price"]


def test_quotes_in_column_names_and_text_cannot_escape():
    """A column name or string holding quotes stays one identifier or one literal."""
    con = duckdb.connect()
    con.execute("""CREATE TABLE t ("a""b" INTEGER)""")
    con.execute("INSERT INTO t VALUES (5)")
    sql = compile_expression("""col('a"b') + length("x'); DROP TABLE t; --")""", {'a"b': '"a""b"'})
    assert con.execute(f"SELECT {sql} FROM t").fetchone()[0] == 5 + len("x'); DROP TABLE t; --")
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 1


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("qty; DROP TABLE t", "not a formula"),
        ("qty) FROM t; SELECT (1", "not a formula"),
        ("price /* comment */", "not a formula"),
        ("__import__('os').system('id')", "only named functions"),
        ("__import__('os')", "unknown function '__import__'"),
        ("read_csv('/etc/passwd')", "unknown function 'read_csv'"),
        ("qty.real", "attribute access"),
        ("name[0]", "indexing"),
        ("qty > 1", "comparisons"),
        ("qty ** 2", "**"),
        ("qty // 2", "//"),
        ("lambda: 1", "lambda"),
        ("abs(qty, price)", "abs() takes 1 argument, got 2"),
        ("substr(name)", "substr() takes 2 to 3 arguments, got 1"),
        ("round(x=qty)", "not name=value"),
        ("col(qty)", "col() takes one quoted column name"),
        ("True + qty", "constant True"),
        ("1e999 * qty", "not finite"),
        ("", "empty"),
        ("(" * 300 + "qty" + ")" * 300, "at most"),
        ("abs(" * 40 + "qty" + ")" * 40, "nests deeper"),
    ],
)
def test_hostile_or_unsupported_expressions_are_refused_with_a_reason(expr, says):
    """Anything outside the grammar raises ExpressionError naming what is not allowed; no SQL is built."""
    with pytest.raises(ExpressionError) as info:
        referenced_columns(expr)
    assert says in str(info.value)


def test_unknown_columns_are_named_with_the_columns_available():
    """Compiling against the data names the unknown column and lists the known ones."""
    with pytest.raises(ExpressionError) as info:
        compile_expression("qty * cost", COLUMNS)
    assert "unknown column 'cost'" in str(info.value)
    assert "qty, price" in str(info.value)
