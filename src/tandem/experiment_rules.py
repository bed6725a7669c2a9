"""Experiment rules: what a spec's sections must satisfy once they meet a dataset.

The rules that need no data are the spec's own (:mod:`tandem.spec`). These need facts about the data:
the columns a feature or the target names exist, the target is a number, top-K and the evaluation
cut-offs fit in the catalog, a time split's cutoff falls inside the data. The CLI's preparation and the
platform's experiment form both call them here, each with the facts it has at hand (the files' columns
as DuckDB reads them; a dataset's stored profile); a rule whose fact is unknown waits.

Like the spec's rules, each takes the sections it reads by name (and the facts), so
:func:`parse_experiment` runs them with the spec's own rules on whatever sections parse: one round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from tandem.data.sources import is_numeric
from tandem.data.splits import cutoff_seconds
from tandem.errors import Problem, SpecError
from tandem.spec import (
    DataSpec,
    EvaluationSpec,
    ExperimentSpec,
    FeaturesSpec,
    ModelSpec,
    Rule,
    parse_spec,
    rule_sections,
)


@dataclass(frozen=True)
class DataFacts:
    """What is known about an experiment's data; None where it is not known (yet).

    `columns` maps each column a feature may read (after joins and aggregation) to its DuckDB type;
    `n_products` is the catalog size; `time_range` the first and last timestamp, in Unix seconds;
    `mostly_numeric` the text columns most of whose values are numbers (see `sources.mostly_numbers`).
    """

    columns: Mapping[str, str] | None = None
    n_products: int | None = None
    time_range: tuple[int, int] | None = None
    mostly_numeric: frozenset[str] = frozenset()


def _unknown(column: str, columns: Mapping[str, str]) -> str:
    shown = ", ".join(list(columns)[:30])
    return f"unknown column '{column}' in the data (it has: {shown})"


def feature_columns(features: FeaturesSpec) -> list[tuple[str, str]]:
    """(spec path, column) of every column the features read (a history bag's count column included)."""
    out = []
    for side in ("buyer", "product"):
        for i, f in enumerate(getattr(features, side)):
            out.append((f"features.{side}.{i}.column", f.column))
            if f.transform == "history" and f.count_column:
                out.append((f"features.{side}.{i}.count_column", f.count_column))
    return out


def reads_buyer_id(features: FeaturesSpec) -> bool:
    """Whether a feature reads the buyer id column itself: a history bag is looked up by buyer."""
    return any(f.transform == "history" for f in (*features.buyer, *features.product))


def _columns_exist(features: FeaturesSpec, facts: DataFacts) -> list[Problem]:
    columns = facts.columns
    if columns is None:
        return []
    problems = [
        Problem(path, _unknown(column, columns)) for path, column in feature_columns(features) if column not in columns
    ]
    target = features.target
    if target is not None:
        if target not in columns:
            problems.append(Problem("features.target", _unknown(target, columns)))
        elif not is_numeric(columns[target]) and target not in facts.mostly_numeric:
            message = f"'{target}' is not numeric ({columns[target]}); the ranking target must be a number"
            problems.append(Problem("features.target", message))
    return problems


def _top_k_fits_the_catalog(model: ModelSpec, evaluation: EvaluationSpec, facts: DataFacts) -> list[Problem]:
    n = facts.n_products
    if n is None or not model.has_retrieval:
        return []
    problems = []
    pool = model.index.candidate_pool
    if pool > n:
        message = f"candidate_pool {pool} is larger than the catalog ({n} products)"
        problems.append(Problem("model.index.candidate_pool", message))
    if max(evaluation.ks) > n:
        problems.append(Problem("evaluation.ks", f"K {max(evaluation.ks)} is larger than the catalog ({n} products)"))
    return problems


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cutoff_inside_the_data(data: DataSpec, facts: DataFacts) -> list[Problem]:
    split = data.split
    if split.kind != "time" or split.cutoff is None:
        return []
    try:
        cutoff = cutoff_seconds(split.cutoff)
    except SpecError as e:
        return e.problems
    if facts.time_range is not None and not facts.time_range[0] < cutoff <= facts.time_range[1]:
        first, last = (_when(t) for t in facts.time_range)
        message = f"the cutoff {split.cutoff} is outside the data ({first} to {last}): one side would be empty"
        return [Problem("data.split.cutoff", message)]
    return []


def _history_finds_the_buyer_id(features: FeaturesSpec, data: DataSpec, facts: DataFacts) -> list[Problem]:
    if facts.columns is None or not reads_buyer_id(features) or data.buyer_id in facts.columns:
        return []
    return [Problem("data.buyer_id", _unknown(data.buyer_id, facts.columns))]


EXPERIMENT_RULES: tuple[Rule, ...] = (
    _columns_exist,
    _history_finds_the_buyer_id,
    _top_k_fits_the_catalog,
    _cutoff_inside_the_data,
)


def rules_for(facts: DataFacts) -> list[Rule]:
    """The experiment rules with `facts` bound, ready to run beside the spec's own."""
    return [partial(rule, facts=facts) for rule in EXPERIMENT_RULES]


def check_experiment(spec: ExperimentSpec, facts: DataFacts) -> list[Problem]:
    """Every experiment rule on a parsed spec; the problems, each at its spec path."""
    problems: list[Problem] = []
    for rule in EXPERIMENT_RULES:
        problems += rule(**{n: getattr(spec, n) for n in rule_sections(rule)}, facts=facts)
    return problems


def parse_experiment(raw: dict[str, Any], facts: DataFacts, base: Path | None = None) -> ExperimentSpec:
    """Parse a spec and check it against its data: every spec and experiment problem in one SpecError."""
    return parse_spec(raw, base=base, extra_rules=rules_for(facts))
