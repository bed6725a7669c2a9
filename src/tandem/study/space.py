"""A study's search space, written as `--param` strings, and its check against the spec before any trial runs.

`path=a,b,c` lists values (numbers, words or YAML lists: `model.buyer_tower_layers=[[64],[128,64]]`), `path=v` fixes
one, `path=lo:hi:step` is a range with a step (both ends included), `path=lo:hi` a continuous range and
`path=log:lo:hi` a log-uniform one. Lists of values and stepped ranges can be searched on a grid.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from tandem.errors import Problem, SpecError
from tandem.spec import ExperimentSpec, apply_overrides, parse_spec

# A grid larger than this is refused: a study of that many trials is a typo more often than a plan.
MAX_GRID_POINTS = 10_000


@dataclass(frozen=True)
class Param:
    """One searched spec field: a list of values, or a range (`low`..`high`, with an optional step, maybe log)."""

    path: str
    text: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step) if v is not None)

    def distribution(self) -> BaseDistribution:
        """Optuna's distribution; list values that are not scalars are searched as their JSON text."""
        if self.choices:
            return CategoricalDistribution([_optuna_choice(c) for c in self.choices])
        if self.is_int:
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def grid(self) -> list[Any] | None:
        """Every value, when the parameter is discrete (a list, or a range with a step); else None."""
        if self.choices:
            return [_optuna_choice(c) for c in self.choices]
        if self.step is None or self.log:
            return None
        n = round((self.high - self.low) / self.step)
        values = [self.low + i * self.step for i in range(n + 1)]
        return [int(v) for v in values] if self.is_int else [round(v, 12) for v in values]

    def corners(self) -> list[Any]:
        """The values the spec must accept before a trial runs: every listed value, both ends of a range."""
        return list(self.choices) if self.choices else [self.low, self.high]

    def value(self, suggested: Any) -> Any:
        """The spec value of Optuna's suggestion (JSON text back to a list)."""
        if self.choices and any(not _is_scalar(c) for c in self.choices):
            return json.loads(suggested)
        return suggested


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _optuna_choice(value: Any) -> Any:
    return value if _is_scalar(value) else json.dumps(value)


def _scalar(text: str) -> Any:
    """A value as written: a number (1e-4 included, which YAML reads as text), else YAML."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text) if text.strip() else ""


def _number(text: str) -> int | float:
    value = _scalar(text)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"'{text}' is not a finite number")
    return value


def parse_param(text: str) -> Param:
    """One `--param path=values`; raises SpecError naming what is wrong with it."""
    path, sep, values = (part.strip() for part in text.partition("="))
    where = f"--param {path or text}"
    if not sep or not path or not values:
        raise SpecError([Problem(where, f"'{text}' is not of the form section.key=values")])
    try:
        return _parse_values(path, text, values)
    except (ValueError, yaml.YAMLError) as e:
        raise SpecError([Problem(where, f"{e} (in '{text}')")]) from None


def _parse_values(path: str, text: str, values: str) -> Param:
    pieces = values.split(":")
    if pieces[0] == "log":
        if len(pieces) != 3:
            raise ValueError("a log range is log:low:high")
        low, high = _number(pieces[1]), _number(pieces[2])
        if low <= 0:
            raise ValueError(f"a log range needs a low end above 0, got {low}")
        return _range(path, text, low, high, None, log=True)
    if len(pieces) in (2, 3) and not values.startswith("["):
        low, high = _number(pieces[0]), _number(pieces[1])
        step = _number(pieces[2]) if len(pieces) == 3 else None
        return _range(path, text, low, high, step, log=False)
    if values.startswith("["):
        choices = yaml.safe_load(values)
        if not isinstance(choices, list) or not choices or not all(isinstance(c, list) for c in choices):
            raise ValueError("a bracketed list of values is a YAML list of lists, e.g. [[64],[128,64]]")
    else:
        choices = [_scalar(v) for v in values.split(",")]
    if len({json.dumps(c) for c in choices}) != len(choices):
        raise ValueError("a value is listed twice")
    return Param(path, text, choices=tuple(choices))


def _range(path: str, text: str, low: float, high: float, step: float | None, *, log: bool) -> Param:
    if high < low:
        raise ValueError(f"the range's high end {high} is below its low end {low}")
    if step is not None:
        if step <= 0:
            raise ValueError(f"the step must be above 0, got {step}")
        n = (high - low) / step
        if abs(n - round(n)) > 1e-9:
            raise ValueError(f"the step {step} does not divide the range {low}..{high}")
    return Param(path, text, low=low, high=high, step=step, log=log)


@dataclass(frozen=True)
class Space:
    """The searched parameters, by spec path."""

    params: tuple[Param, ...]

    def distributions(self) -> dict[str, BaseDistribution]:
        return {p.path: p.distribution() for p in self.params}

    def grid(self) -> dict[str, list[Any]] | None:
        """The grid of every parameter's values, or None when one is continuous."""
        grids = {p.path: p.grid() for p in self.params}
        return None if any(g is None for g in grids.values()) else grids  # type: ignore[return-value]

    def grid_size(self) -> int | None:
        grid = self.grid()
        return None if grid is None else math.prod(len(v) for v in grid.values())

    def spec_values(self, suggested: dict[str, Any]) -> dict[str, Any]:
        """Optuna's parameters as spec values, by path."""
        return {p.path: p.value(suggested[p.path]) for p in self.params}


def parse_space(texts: list[str]) -> Space:
    """Every `--param`; raises SpecError listing each one's problems (a path given twice included)."""
    problems: list[Problem] = []
    params: list[Param] = []
    for text in texts:
        try:
            param = parse_param(text)
        except SpecError as e:
            problems += e.problems
            continue
        if any(p.path == param.path for p in params):
            problems.append(Problem(f"--param {param.path}", "the field is searched twice; give it one --param"))
        params.append(param)
    if not texts:
        problems.append(Problem("--param", "a study needs at least one --param to search"))
    if not problems:
        size = Space(tuple(params)).grid_size()
        if size is not None and size > MAX_GRID_POINTS:
            problems.append(Problem("--param", f"the grid has {size} points; at most {MAX_GRID_POINTS} are allowed"))
    if problems:
        raise SpecError(problems)
    return Space(tuple(params))


def with_values(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of a raw spec with the given spec values set at their paths (list items by index)."""
    return apply_overrides(copy.deepcopy(raw), [f"{path}={json.dumps(v)}" for path, v in values.items()])


def trial_spec(raw: dict[str, Any], base: Path | None, values: dict[str, Any]) -> ExperimentSpec:
    """The spec a trial runs: the base spec with its parameters set; raises SpecError with every problem."""
    return parse_spec(with_values(raw, values), base=base)


def check_space(raw: dict[str, Any], base: Path | None, space: Space) -> None:
    """Refuse a space whose values the spec would refuse: each parameter's listed values and range ends are set
    one at a time on the base spec and validated. Raises SpecError listing every problem found."""
    parse_spec(copy.deepcopy(raw), base=base)
    problems: list[Problem] = []
    for param in space.params:
        for value in param.corners():
            try:
                trial_spec(raw, base, {param.path: value})
            except SpecError as e:
                problems += [Problem(p.path, f"{p.message} (at {param.path}={value}, from --param '{param.text}')")
                             for p in e.problems]  # fmt: skip
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))
