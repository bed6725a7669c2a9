"""Commented YAML: every reason is a comment above its value, and the text loads back to the plain values."""

from __future__ import annotations

import yaml

from tandem.notes import Note, plain, to_yaml

SPEC = {
    "name": "x",
    "data": {
        "transactions": {"path": Note("a b/tx.csv", "relative"), "timestamp_format": Note("%m/%d/%Y", "every value")},
        "split": {"kind": Note("time", "like production"), "cutoff": Note("2017-10-01", "the last 22%")},
        "aggregate": Note(
            [Note({"name": "s", "fn": "sum", "column": "q"}, "target"), {"name": "n", "fn": "count"}], "pairs"
        ),
    },
    "features": Note({"buyer": [Note({"column": "b", "transform": "id"}, "32 # not a key: text")]}, "two\nlines"),
    "training": {"epochs": Note(8, "70 steps per epoch"), "flag": True, "ks": [10, 100]},
}


def test_the_text_loads_back_to_the_plain_values():
    """Dates stay strings, % formats are quoted, '#' inside a reason does not leak into the values."""
    loaded = yaml.safe_load(to_yaml(SPEC, "header"))
    assert loaded == plain(SPEC)
    assert loaded["data"]["split"]["cutoff"] == "2017-10-01"


def test_each_reason_is_a_comment_line_above_its_value():
    """A Note's reason is the line just above its key or list item; a multi-line reason gives several lines."""
    lines = to_yaml(SPEC, "made by hand").splitlines()
    assert lines[0] == "# made by hand"
    assert lines[lines.index("    cutoff: '2017-10-01'") - 1] == "    # the last 22%"
    assert lines[lines.index("    - {name: s, fn: sum, column: q}") - 1] == "    # target"
    at = lines.index("features:")
    assert lines[at - 2 : at] == ["# two", "# lines"]
    assert lines[lines.index("  epochs: 8") - 1] == "  # 70 steps per epoch"


def test_plain_strips_every_note():
    """plain() leaves no Note anywhere, in mappings or lists."""
    assert plain([Note({"a": Note(1, "x")}, "y")]) == [{"a": 1}]
