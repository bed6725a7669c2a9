"""JSON that decodes but holds text no encoder takes back: lone UTF-16 surrogates (`"\\ud800"`).

`json.loads` turns such an escape into a Python string that cannot be written as UTF-8, so it fails later and far
away (a database insert, a response, a vocabulary lookup). Both HTTP boundaries, the platform's API and the model
server, refuse such a body naming where the text is: :func:`may_hold_surrogates` on the raw bytes is cheap, and
only when it is true does :func:`unencodable_path` walk the decoded value.
"""

from __future__ import annotations

import re
from typing import Any

# A \uD800–\uDFFF escape anywhere in the raw body: only then can a decoded string hold a surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _bad(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def may_hold_surrogates(raw: bytes) -> bool:
    """Whether a JSON text has a surrogate escape, without which no decoded string can hold one."""
    return _SURROGATE_ESCAPE.search(raw) is not None


def unencodable_path(value: Any) -> str | None:
    """The dotted path of the first key or string in a decoded JSON `value` that is not valid Unicode, "(body)"
    for the value itself, or None when all its text is encodable."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _bad(item):
                return path or "(body)"
        elif isinstance(item, dict):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if _bad(key):
                    return path or "(body)"
                stack.append((where, child))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), child) for i, child in enumerate(item))
    return None
