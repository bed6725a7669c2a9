"""Generate a trainer module: one standalone Python file that trains, evaluates and exports one experiment with
only third-party packages installed (torch, numpy, pandas, duckdb, pydantic, PyYAML, pyarrow, tqdm; onnx for the
graphs; faiss-cpu for an ANN index).

The file is built from the engine's own source files, so it cannot drift from what `tandem train` runs:
starting at `tandem.export.standalone` (the entry point), every engine module it imports is read with `inspect`,
in dependency order; their `from tandem… import …` lines are dropped (the names are defined above them in the
same file), their third-party imports are merged into one sorted block, and their docstrings become comments. The
experiment's spec follows as a literal, with its headline settings as named constants (RETRIEVAL_WEIGHT, …).

Flattening relies on a few habits of the engine, checked here with a message that says what to change: tandem
imports are module-level `from tandem.x import name` lines (no aliases, no module objects), and no two engine
modules define the same top-level name.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pprint
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tandem.spec import ExperimentSpec

ENTRY = "tandem.export.standalone"
PACKAGE = "tandem"

# Spec values written as constants at the top of the trainer: (constant, path of keys in the spec).
CONSTANTS = (
    ("MODEL_TYPE", ("model", "type")),
    ("RETRIEVAL_WEIGHT", ("model", "retrieval_weight")),
    ("RANKING_WEIGHT", ("model", "ranking_weight")),
    ("CANDIDATE_POOL", ("model", "index", "candidate_pool")),
    ("OPTIMIZER", ("training", "optimizer")),
    ("LEARNING_RATE", ("training", "learning_rate")),
    ("BATCH_SIZE", ("training", "batch_size")),
    ("EPOCHS", ("training", "epochs")),
    ("SEED", ("training", "seed")),
)


class FlattenError(ValueError):
    """An engine module uses a form the flattener cannot copy (the message names the file, line and fix)."""


@dataclass
class _Import:
    """One third-party import: `import module [as alias]` or `from module import name [as alias]`."""

    module: str
    name: str | None = None
    alias: str | None = None

    @property
    def binding(self) -> str:
        return self.alias or (self.name if self.name is not None else self.module.split(".")[0])


@dataclass
class _Module:
    """An engine module split into what the flattener copies and what it replaces."""

    name: str
    path: str
    docstring: str | None
    body: str
    deps: list[str] = field(default_factory=list)
    imports: list[_Import] = field(default_factory=list)
    defines: set[str] = field(default_factory=set)


def _is_engine(module: str | None) -> bool:
    return module is not None and (module == PACKAGE or module.startswith(PACKAGE + "."))


def _defined_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _check_nested(tree: ast.Module, where: str) -> None:
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import) and id(node) not in top:
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if any(_is_engine(n) for n in names) or (isinstance(node, ast.ImportFrom) and node.level):
                raise FlattenError(f"{where}:{node.lineno}: move this tandem import to the top of the module")


def _parse(name: str) -> _Module:
    module = importlib.import_module(name)
    source = inspect.getsource(module)
    where = f"{PACKAGE}/{PurePosixPath(*name.split('.')[1:])}.py"
    tree = ast.parse(source)
    _check_nested(tree, where)
    lines = source.splitlines()
    dropped: list[tuple[int, int]] = []
    out = _Module(name=name, path=where, docstring=ast.get_docstring(tree, clean=True), body="")
    for i, node in enumerate(tree.body):
        span = (node.lineno, node.end_lineno or node.lineno)
        if (
            i == 0
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            dropped.append(span)
        elif isinstance(node, ast.ImportFrom):
            dropped.append(span)
            if node.level:
                raise FlattenError(f"{where}:{node.lineno}: use an absolute `from tandem.… import …`")
            if node.module == "__future__":
                continue
            if _is_engine(node.module):
                for alias in node.names:
                    target = importlib.import_module(node.module)
                    if alias.asname or isinstance(getattr(target, alias.name, None), types.ModuleType):
                        raise FlattenError(
                            f"{where}:{node.lineno}: import names from tandem modules without 'as' and not modules "
                            f"themselves (`from {node.module} import {alias.name}`)"
                        )
                out.deps.append(node.module)
            else:
                out.imports += [_Import(node.module or "", a.name, a.asname) for a in node.names]
        elif isinstance(node, ast.Import):
            dropped.append(span)
            for alias in node.names:
                if _is_engine(alias.name):
                    raise FlattenError(
                        f"{where}:{node.lineno}: use `from {alias.name} import …`, not `import {alias.name}`"
                    )
                out.imports.append(_Import(alias.name, None, alias.asname))
        elif isinstance(node, ast.Assign) and _defined_names(node) == {"__all__"}:
            dropped.append(span)
        else:
            out.defines |= _defined_names(node)
    keep = [True] * (len(lines) + 1)
    for start, end in dropped:
        for line in range(start, end + 1):
            keep[line] = False
    body = "\n".join(line for n, line in enumerate(lines, start=1) if keep[n]).strip("\n")
    out.body = body
    return out


def _in_dependency_order(entry: str) -> list[_Module]:
    order: list[_Module] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise FlattenError(f"import cycle: {' → '.join((*path, name))}")
        if name in seen:
            return
        module = _parse(name)
        for dep in module.deps:
            visit(dep, (*path, name))
        seen.add(name)
        order.append(module)

    visit(entry, ())
    return order


def _check_bindings(modules: list[_Module]) -> None:
    """Every top-level name of the flattened file must mean one thing."""
    owner: dict[str, str] = {}
    for m in modules:
        for imp in m.imports:
            # `import a.b` and `import a.c` both bind the package `a`, which is one meaning.
            source = imp.module if imp.name or imp.alias else imp.module.split(".")[0]
            key = f"import {source}" + (f".{imp.name}" if imp.name else "")
            if owner.setdefault(imp.binding, key) != key:
                raise FlattenError(f"{m.path}: '{imp.binding}' is both {owner[imp.binding]} and {key}; rename one")
        for name in m.defines:
            if owner.setdefault(name, m.path) != m.path:
                raise FlattenError(f"'{name}' is defined in both {owner[name]} and {m.path}; rename one of them")


def _member_key(name: str) -> tuple[int, str]:
    # isort's order-by-type, as ruff applies it: CONSTANTS, then Classes, then the rest.
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name.lower()


def _import_block(imports: list[_Import]) -> str:
    """Imports as ruff's isort writes them: __future__, then stdlib, then third party; `import x` lines first."""
    stdlib = set(sys.stdlib_module_names)
    sections: list[str] = ["from __future__ import annotations"]
    for is_std in (True, False):
        group = [i for i in imports if (i.module.split(".")[0] in stdlib) == is_std]
        straight = sorted(
            {(i.module, i.alias) for i in group if i.name is None}, key=lambda p: (p[0].lower(), p[1] or "")
        )
        lines = [f"import {m}" + (f" as {a}" if a else "") for m, a in straight]
        by_module: dict[str, set[str]] = {}
        for i in group:
            if i.name is not None:
                by_module.setdefault(i.module, set()).add(i.name + (f" as {i.alias}" if i.alias else ""))
        for module in sorted(by_module, key=str.lower):
            names = sorted(by_module[module], key=_member_key)
            line = f"from {module} import {', '.join(names)}"
            if len(line) > 120:
                line = f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"
            lines.append(line)
        if lines:
            sections.append("\n".join(lines))
    return "\n\n".join(sections)


def _comment(text: str) -> str:
    return "\n".join(f"# {line}".rstrip() for line in text.splitlines())


class _Name:
    """Shows as a bare name in pprint's output, so that the spec literal refers to a constant."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _portable_data_paths(raw: dict[str, Any]) -> list[str]:
    """Rewrite absolute data paths relative to their common folder (the trainer's --data); returns the files."""
    tables = [raw["data"][k] for k in ("transactions", "buyers", "products") if raw["data"].get(k)]
    absolute = [t for t in tables if not t["path"].startswith("pkg:") and os.path.isabs(t["path"])]
    if not absolute:
        return [t["path"] for t in tables]
    common = os.path.commonpath([os.path.dirname(t["path"]) for t in absolute])
    for t in absolute:
        t["path"] = PurePosixPath(*Path(os.path.relpath(t["path"], common)).parts).as_posix()
    return [t["path"] for t in tables]


def _configuration(spec: ExperimentSpec) -> str:
    raw = spec.to_dict()
    files = _portable_data_paths(raw)
    constants = []
    for constant, (*sections, key) in CONSTANTS:
        node = raw
        for section in sections:
            node = node[section]
        constants.append(f"{constant} = {node[key]!r}")
        node[key] = _Name(constant)
    literal = pprint.pformat(raw, width=116, sort_dicts=False)
    return "\n".join(
        [
            "# " + "=" * 108,
            f"# The experiment '{spec.name}', as generated. --data names the folder holding: {', '.join(files)}",
            "# (relative paths below are read from it). Change a constant, the spec, or pass --set section.key=value.",
            "",
            *constants,
            "",
            f"SPEC: dict[str, Any] = {literal}",
            "",
            "",
            'if __name__ == "__main__":',
            "    sys.exit(main(SPEC))",
        ]
    )


def generate_trainer(spec: ExperimentSpec) -> str:
    """The source of a standalone trainer module for `spec` (see the module docstring).

    Raises FlattenError when an engine module uses an import form the flattener cannot copy.
    """
    modules = _in_dependency_order(ENTRY)
    _check_bindings(modules)
    imports = [i for m in modules for i in m.imports]
    if not any(i.module == "typing" and i.name == "Any" for i in imports):
        imports.append(_Import("typing", "Any"))
    if not any(i.module == "sys" and i.name is None for i in imports):
        imports.append(_Import("sys"))
    header = (
        f'"""A standalone trainer for the experiment \'{spec.name}\' ({spec.model.type}): it trains, evaluates and\n'
        "exports the model as `tandem train` does, with only third-party packages installed.\n\n"
        "Run:  python trainer.py --data DIR --out OUT   (DIR holds the data files; see the end of this file)\n\n"
        "Generated by `tandem export-trainer` from Tandem's own engine modules, in dependency order; each section\n"
        'starts with the path of the module it comes from.\n"""'
    )
    sections = []
    for m in modules:
        section = f"# {'-' * 80} {m.path}"
        sections.append(section + ("\n" + _comment(m.docstring) if m.docstring else "") + "\n\n" + m.body)
    sections.append(_configuration(spec))
    # One blank line after the imports (a comment follows them, as ruff's isort wants), two between sections.
    return header + "\n\n" + _import_block(imports) + "\n\n" + "\n\n\n".join(sections) + "\n"


def write_trainer(spec: ExperimentSpec, path: str | Path) -> Path:
    """Write the trainer module for `spec` to `path`; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generate_trainer(spec), encoding="utf-8")
    return path
