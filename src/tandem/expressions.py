"""Derived columns: a small, safe arithmetic grammar over columns, compiled to DuckDB SQL.

An expression such as ``Quantity * UnitPrice`` or ``log1p(abs(net))`` is parsed with Python's :mod:`ast`
and only a short list of node kinds is accepted: column names, numbers, strings, ``+ - * / %``, unary
minus, parentheses and the functions in :data:`FUNCTIONS`. Anything else (attributes, subscripts,
comparisons, lambdas, unknown functions, SQL text) is refused with a sentence naming it. The SQL is built
from the tree, never from the text: every column is quoted and every string is a quoted literal, so no
user text reaches DuckDB as SQL.

A column whose name is not a Python identifier is written ``col("Unit Price")``.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tandem.sql import literal, quote

MAX_LENGTH = 500  # longer formulas belong in the data, not in a spec
MAX_DEPTH = 30


def _text(sql: str) -> str:
    return f"CAST({sql} AS VARCHAR)"


@dataclass(frozen=True)
class Function:
    """A named function: how many arguments it takes and how its SQL is written from theirs."""

    min_args: int
    max_args: int | None
    sql: Callable[[list[str]], str]
    doc: str


# Functions that would fail on a whole column for one bad value (the log of a negative number) give a
# missing value instead, as division by zero does: one odd line must not stop a run.
FUNCTIONS: dict[str, Function] = {
    "abs": Function(1, 1, lambda a: f"abs({a[0]})", "absolute value"),
    "log1p": Function(
        1, 1, lambda a: f"CASE WHEN {a[0]} > -1 THEN ln(1 + {a[0]}) END", "ln(1 + x), missing for x ≤ -1"
    ),
    "log": Function(1, 1, lambda a: f"CASE WHEN {a[0]} > 0 THEN ln({a[0]}) END", "natural log, missing for x ≤ 0"),
    "sqrt": Function(1, 1, lambda a: f"CASE WHEN {a[0]} >= 0 THEN sqrt({a[0]}) END", "square root, missing for x < 0"),
    "round": Function(1, 2, lambda a: f"round({', '.join(a)})", "round(x) or round(x, digits)"),
    "floor": Function(1, 1, lambda a: f"floor({a[0]})", "largest integer ≤ x"),
    "ceil": Function(1, 1, lambda a: f"ceil({a[0]})", "smallest integer ≥ x"),
    "least": Function(2, None, lambda a: f"least({', '.join(a)})", "smallest argument"),
    "greatest": Function(2, None, lambda a: f"greatest({', '.join(a)})", "largest argument"),
    "coalesce": Function(2, None, lambda a: f"coalesce({', '.join(a)})", "first argument that is not missing"),
    "lower": Function(1, 1, lambda a: f"lower({_text(a[0])})", "lower-case text"),
    "upper": Function(1, 1, lambda a: f"upper({_text(a[0])})", "upper-case text"),
    "trim": Function(1, 1, lambda a: f"trim({_text(a[0])})", "text without surrounding spaces"),
    "length": Function(1, 1, lambda a: f"length({_text(a[0])})", "number of characters"),
    "substr": Function(
        2, 3, lambda a: f"substring({_text(a[0])}, {', '.join(a[1:])})", "substr(text, start[, length]), from 1"
    ),
    "concat": Function(2, None, lambda a: f"concat({', '.join(_text(x) for x in a)})", "texts joined"),
}

_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}
_NODE_NAMES = {
    ast.Attribute: "attribute access (a.b)",
    ast.Subscript: "indexing (a[b])",
    ast.Compare: "comparisons",
    ast.BoolOp: "and/or",
    ast.Lambda: "lambda",
    ast.IfExp: "if/else",
    ast.Pow: "**",
    ast.FloorDiv: "//",
}


class ExpressionError(ValueError):
    """An expression is not in the grammar or names an unknown column; the message says which part."""


def _describe(node: ast.AST) -> str:
    return _NODE_NAMES.get(type(node), type(node).__name__)


def _tree(expr: str) -> ast.expr:
    if not isinstance(expr, str) or not expr.strip():
        raise ExpressionError("the expression is empty")
    if len(expr) > MAX_LENGTH:
        raise ExpressionError(f"the expression is {len(expr)} characters long; at most {MAX_LENGTH} are allowed")
    try:
        return ast.parse(expr.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExpressionError(
            f"'{expr}' is not a formula of columns, numbers, + - * / % and functions ({', '.join(sorted(FUNCTIONS))})"
        ) from None


class _Compiler:
    """Walks an accepted tree; `column` turns a column name into SQL, or raises for an unknown one."""

    def __init__(self, column: Callable[[str], str]) -> None:
        self.column = column

    def sql(self, node: ast.AST, depth: int = 0) -> str:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"the expression nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Name):
            return self.column(node.id)
        if isinstance(node, ast.Constant):
            return self._constant(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            sign = "-" if isinstance(node.op, ast.USub) else "+"
            return f"({sign}{self.sql(node.operand, depth + 1)})"
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = self.sql(node.left, depth + 1), self.sql(node.right, depth + 1)
            if isinstance(node.op, ast.Div | ast.Mod):  # a zero divisor gives a missing value, not infinity
                return f"({left} {_OPERATORS[type(node.op)]} nullif({right}, 0))"
            return f"({left} {_OPERATORS[type(node.op)]} {right})"
        if isinstance(node, ast.BinOp):
            raise ExpressionError(f"the operator {_describe(node.op)} is not allowed; use + - * / %")
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise ExpressionError(f"{_describe(node)} is not allowed in an expression")

    @staticmethod
    def _constant(value: object) -> str:
        if isinstance(value, bool) or value is None:
            raise ExpressionError(f"the constant {value!r} is not allowed; use numbers or quoted text")
        if isinstance(value, int | float):
            if not math.isfinite(value):
                raise ExpressionError(f"the number {value!r} is not finite")
            return repr(value)
        if isinstance(value, str):
            return literal(value)
        raise ExpressionError(f"the constant {value!r} is not allowed; use numbers or quoted text")

    def _call(self, node: ast.Call, depth: int) -> str:
        if not isinstance(node.func, ast.Name):
            raise ExpressionError("only named functions can be called, e.g. abs(x)")
        name = node.func.id
        if node.keywords:
            raise ExpressionError(f"{name}() takes plain arguments, not name=value")
        if name == "col":
            if (
                len(node.args) != 1
                or not isinstance(node.args[0], ast.Constant)
                or not isinstance(node.args[0].value, str)
            ):
                raise ExpressionError('col() takes one quoted column name, e.g. col("Unit Price")')
            return self.column(node.args[0].value)
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise ExpressionError(f"unknown function '{name}'; the functions are {', '.join(sorted(FUNCTIONS))}")
        n = len(node.args)
        if n < fn.min_args or (fn.max_args is not None and n > fn.max_args):
            wanted = str(fn.min_args) if fn.min_args == fn.max_args else f"{fn.min_args} or more"
            if fn.max_args is not None and fn.max_args != fn.min_args:
                wanted = f"{fn.min_args} to {fn.max_args}"
            raise ExpressionError(f"{name}() takes {wanted} argument{'s' if wanted != '1' else ''}, got {n}")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionError(f"{name}() takes plain arguments, not *args")
        return fn.sql([self.sql(a, depth + 1) for a in node.args])


def referenced_columns(expr: str) -> list[str]:
    """The columns an expression names, in order of first use; raises ExpressionError when it is not in the grammar."""
    names: list[str] = []

    def record(name: str) -> str:
        if name not in names:
            names.append(name)
        return quote(name)

    _Compiler(record).sql(_tree(expr))
    return names


def compile_expression(expr: str, columns: Mapping[str, str]) -> str:
    """DuckDB SQL for `expr`, where `columns` maps each usable column name to its SQL (a quoted name or a
    parenthesised earlier expression). Raises ExpressionError for an unknown column or anything outside the grammar.
    """

    def column(name: str) -> str:
        if name not in columns:
            shown = ", ".join(list(columns)[:30])
            raise ExpressionError(f"unknown column '{name}' (the data has: {shown})")
        return columns[name]

    return _Compiler(column).sql(_tree(expr))
