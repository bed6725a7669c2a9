"""Values with the reason they were chosen, written as YAML with each reason as a comment above its value.

`tandem init` explains every choice it makes; :func:`to_yaml` writes the spec so that a user reads the
reason next to the setting, and :func:`plain` gives the same spec without the reasons (to validate it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Note:
    """A value and why it was chosen (one sentence, no newline)."""

    value: Any
    why: str


def plain(value: Any) -> Any:
    """The value with every Note replaced by what it holds."""
    if isinstance(value, Note):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _flow(value: Any) -> str:
    """One value in YAML flow style (`{a: 1}`, `[1, 2]`, `"%m/%d/%Y"`), as yaml itself quotes it."""
    text = yaml.safe_dump([value], default_flow_style=True, sort_keys=False, width=1_000_000, allow_unicode=True)
    return text.strip()[1:-1]


def _comment(why: str, pad: str) -> list[str]:
    return [f"{pad}# {line}" for line in why.splitlines() if line.strip()]


def _is_block(value: Any) -> bool:
    """Mappings that hold notes, and lists of mappings, are written one entry per line."""
    if isinstance(value, dict):
        return len(value) > 4 or any(isinstance(v, Note | dict) or _is_block(v) for v in value.values())
    return isinstance(value, list) and any(isinstance(v, Note | dict) for v in value)


def _lines(mapping: dict[str, Any], indent: int) -> list[str]:
    pad, out = " " * indent, []
    for key, item in mapping.items():
        value, why = (item.value, item.why) if isinstance(item, Note) else (item, "")
        if indent == 0 and out and _is_block(value):
            out.append("")  # a blank line between top-level sections
        out += _comment(why, pad)
        if isinstance(value, dict) and _is_block(value):
            out.append(f"{pad}{key}:")
            out += _lines(value, indent + 2)
        elif isinstance(value, list) and _is_block(value):
            out.append(f"{pad}{key}:")
            for entry in value:
                inner, reason = (entry.value, entry.why) if isinstance(entry, Note) else (entry, "")
                out += _comment(reason, pad + "  ")
                out.append(f"{pad}  - {_flow(plain(inner))}")
        else:
            out.append(f"{pad}{key}: {_flow(plain(value))}")
    return out


def to_yaml(mapping: dict[str, Any], header: str = "") -> str:
    """YAML text of `mapping` with each Note's reason as a comment line above it, and `header` on top."""
    lines = _comment(header, "") + _lines(mapping, 0)
    return "\n".join(lines) + "\n"
