"""`tandem init`: a first spec for a new dataset, every choice taken from its profile and explained.

The data and feature sections follow from the columns (types, cardinalities, which side each describes)
and the time span. The model and training sections come from :func:`recommended_model` alone, the one
place the recommended recipe lives: the CLI, the platform's "use recommended settings" and the demo
all call it, so improving the recipe improves all three.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tandem.data.profile import ColumnProfile, DataProfile, profile_data
from tandem.errors import TandemError
from tandem.notes import Note, plain, to_yaml
from tandem.recommend import recommended_settings
from tandem.spec import EvaluationSpec, ExperimentSpec, IndexSpec, RecommendSpec, parse_spec

TEST_SHARE = 0.225  # the last ~22% of the time span is the test period (20–25% is the usual protocol)
# Optimiser steps of the two-tower model. The lists come from the second stage, so the towers are the retrieval
# stage (and the lists of buyers the second stage has no history for): enough steps to learn them, few enough
# that a first run stays quick.
STEPS_PER_RUN = 200
LARGE_BATCH_PAIRS = 50_000  # from this many training pairs on, batches of 8,192 pairs
MAX_CATEGORIES = 50_000  # above this a text column is an identifier, not a category
SKIP_NULL_SHARE = 0.5
DAY = 86_400
RECOMMEND_WHY = (
    "the lists: candidates from the buyer's history, EASE neighbours and popular products, ordered by a ranker\n"
    "learned on windows of the training period; the two-tower model above is reported as the retrieval stage.\n"
    "The buyer's purchase history reaches the lists here: as a bag in the buyer tower it did not lift the\n"
    "retrieval stage on Ta-Feng and its per-row bags cost gigabytes on a year of grocery baskets"
)


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _date(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d")


def id_embedding_dim(entities_seen_twice: int) -> int:
    """Width of an id embedding: ids seen in at least two orders are the ones it can learn."""
    return 16 if entities_seen_twice < 2_000 else 32 if entities_seen_twice < 50_000 else 64


def category_embedding_dim(distinct: int) -> int:
    """Width of a categorical embedding, the usual 1.6·n^0.56 rule, between 2 and 16."""
    return int(min(16, max(2, round(1.6 * distinct**0.56))))


# -------------------------------------------------------------------------------------------- data


def _path(path: str, out_dir: Path) -> str:
    try:
        return os.path.relpath(Path(path).resolve(), out_dir.resolve())
    except ValueError:  # another drive: keep it absolute
        return str(Path(path).resolve())


def _source(profile: DataProfile, path: str, table: str, out_dir: Path) -> dict[str, Any]:
    source: dict[str, Any] = {"path": Note(_path(path, out_dir), "relative to this spec's folder")}
    if table == "transactions":
        ids = [c for c in profile.text_ids]
        if ids:
            source["types"] = Note(
                {c: "VARCHAR" for c in ids}, f"{', '.join(ids)}: digits with leading zeros, kept as text labels"
            )
        if profile.timestamp_format:
            source["timestamp_format"] = Note(
                profile.timestamp_format,
                f"every {profile.timestamp} value reads as {profile.timestamp_format}, checked over the whole file",
            )
    markers = profile.null_values.get(table)
    if markers:
        seen = "; ".join(
            f"{marker!r} in {column} on {_n(n)} lines"
            for (column, marker), n in profile.null_counts.items()
            if marker in markers
        )
        source["null_values"] = Note(markers, f"read as missing values: {seen}")
    return source


def _cutoff(profile: DataProfile) -> tuple[int, str]:
    """The first second of the test period and why: about the last TEST_SHARE of the time span, on a day boundary."""
    first_day, last_day = profile.first_time // DAY, profile.last_time // DAY
    span_days = last_day - first_day + 1
    if span_days >= 10:
        test_days = max(1, round(span_days * TEST_SHARE))
        cutoff = (last_day - test_days + 1) * DAY
    else:  # a short span is cut in time, not in whole days
        cutoff = profile.first_time + int((profile.last_time - profile.first_time) * (1 - TEST_SHARE))
        test_days = (profile.last_time - cutoff) / DAY
    test_lines = sum(n for day, n in profile.lines_per_day.items() if day * DAY >= cutoff)
    why = (
        f"{span_days} days of purchases ({_date(profile.first_time)} → {_date(profile.last_time)}): the last "
        f"{test_days:.0f} days ({test_days / span_days:.0%} of the time, {test_lines / profile.rows:.0%} of the lines) "
        f"are the test period"
    )
    return cutoff, why


def _cutoff_text(cutoff: int) -> str:
    moment = dt.datetime.fromtimestamp(cutoff, dt.UTC)
    return moment.strftime("%Y-%m-%d") if cutoff % DAY == 0 else moment.strftime("%Y-%m-%dT%H:%M:%S")


def _data(profile: DataProfile, out_dir: Path, target_name: str, orders_name: str) -> dict[str, Any]:
    data: dict[str, Any] = {"transactions": _source(profile, profile.transactions, "transactions", out_dir)}
    for role, (path, key) in profile.attribute_tables.items():
        data[role] = {**_source(profile, path, role, out_dir), "key": key}
    data["buyer_id"], data["product_id"], data["timestamp"] = profile.buyer_id, profile.product_id, profile.timestamp
    if profile.order_id:
        orders = Note({"name": orders_name, "fn": "count_distinct", "column": profile.order_id}, "orders per pair")
    else:
        kind = "day" if profile.day_only else "time"
        orders = Note(
            {"name": orders_name, "fn": "count_distinct", "column": profile.timestamp},
            f"orders per pair: without an order column, one buyer's lines on one {kind} are one order",
        )
    aggregate = [orders]
    if profile.target:
        aggregate.insert(
            0,
            Note(
                {"name": target_name, "fn": "sum", "column": profile.target},
                f"the ranking target: the pair's total {profile.target}",
            ),
        )
    data["aggregate"] = Note(
        aggregate,
        f"{_n(profile.rows)} lines → {_n(profile.pairs)} buyer–product pairs, summed on each side of the cutoff; "
        f"{profile.repeat_share:.0%} of pairs were bought in two orders or more",
    )
    cutoff, why = _cutoff(profile)
    data["split"] = {
        "kind": Note("time", "tomorrow's orders are predicted from yesterday's, as in production"),
        "cutoff": Note(_cutoff_text(cutoff), why),
    }
    return data


# ---------------------------------------------------------------------------------------- features


def _attribute(column: ColumnProfile) -> Note | str:
    """The feature for a buyer or product attribute, or the reason it is left out."""
    c = column
    if c.distinct <= 1:
        return f"{c.name}: a single value"
    if c.null_share > SKIP_NULL_SHARE:
        return f"{c.name}: {c.null_share:.0%} missing"
    missing = f", {c.null_share:.0%} missing" if c.nulls else ""
    integer = c.numeric and c.type.upper() in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
    if integer and c.distinct > 50 and c.distinct / (c.max - c.min + 1) < 0.2 and c.distinct <= MAX_CATEGORIES:
        dim = category_embedding_dim(c.distinct)
        feature = {"column": c.name, "transform": "categorical", "embedding_dim": dim, "min_count": 2}
        return Note(
            feature,
            f"{c.name}: {_n(c.distinct)} integer codes spread over {c.min:,.0f}–{c.max:,.0f} → categorical, "
            f"embedding {dim}; codes seen once share a bucket{missing}",
        )
    if c.numeric and c.distinct > 50:
        skewed = c.min is not None and c.min >= 0 and c.max > 100 * max(c.median or 0, 1)
        feature = {"column": c.name, "transform": "numeric", **({"log": True} if skewed else {})}
        tail = f", heavy-tailed (median {c.median:,.4g}, max {c.max:,.4g}) → log" if skewed else ""
        return Note(feature, f"{c.name}: a number with {_n(c.distinct)} values{tail}{missing}")
    if c.type.upper() == "VARCHAR" and c.words >= 2.5 and c.distinct > 50:
        feature = {"column": c.name, "transform": "text", "embedding_dim": 8}
        return Note(feature, f"{c.name}: text of {c.words:.1f} words on average → word tokens")
    if c.distinct > MAX_CATEGORIES:
        return f"{c.name}: {_n(c.distinct)} distinct values, too many for a category"
    dim = category_embedding_dim(c.distinct)
    rare = c.distinct > 1_000
    feature = {"column": c.name, "transform": "categorical", "embedding_dim": dim, **({"min_count": 2} if rare else {})}
    tail = "; values seen once share a bucket" if rare else ""
    return Note(feature, f"{c.name}: {_n(c.distinct)} values → categorical, embedding {dim}{tail}{missing}")


def _id_feature(column: str, entities: int, repeated: int, what: str) -> Note:
    dim = id_embedding_dim(repeated)
    once = 1 - repeated / entities if entities else 0.0
    feature = {"column": column, "transform": "id", "embedding_dim": dim, **({"min_count": 2} if once > 0.25 else {})}
    tail = f"; the {once:.0%} seen once share an out-of-vocabulary embedding" if once > 0.25 else ""
    return Note(feature, f"{_n(entities)} {what}, {_n(repeated)} in two orders or more → id embedding {dim}{tail}")


def _features(profile: DataProfile, target_name: str, orders_name: str | None) -> Note:
    towers: dict[str, list[Note]] = {
        "buyer": [_id_feature(profile.buyer_id, profile.buyers, profile.buyers_repeated, "buyers")],
        "product": [_id_feature(profile.product_id, profile.products, profile.products_repeated, "products")],
    }
    skipped, per_line = [], []
    for column in profile.columns:
        if column.side is None:
            per_line.append(column.name)
            continue
        choice = _attribute(column)
        if isinstance(choice, Note):
            towers[column.side].append(choice)
        else:
            skipped.append(choice)
    features: dict[str, Any] = {
        "buyer": Note(towers["buyer"], "the buyer (query) tower"),
        "product": Note(towers["product"], "the product (candidate) tower"),
    }
    if profile.target:
        heavy = profile.target_max is not None and profile.target_max > 100 * max(profile.target_median or 0, 1)
        features["target"] = Note(target_name, f"predicted by the ranking task: the pair's total {profile.target}")
        if heavy:
            features["target_transform"] = Note(
                "log1p",
                f"{profile.target} per line runs up to {profile.target_max:,.0f} (median {profile.target_median:,.0f}): "
                f"learn log(1 + total)",
            )
    elif orders_name:
        features["target"] = Note(orders_name, "no --target: the ranking task predicts how many orders a pair has")
        features["target_transform"] = Note("log1p", "order counts are skewed: learn log(1 + orders)")
    reasons = ["columns that hold one value per buyer or per product feed that side's tower"]
    if per_line:
        reasons.append(f"{', '.join(per_line)} vary from line to line: amounts, not buyer or product attributes")
    if skipped:
        reasons.append(f"left out: {'; '.join(skipped)}")
    return Note(features, "\n".join(reasons))


# ------------------------------------------------------------------------------------------- model


@dataclass
class Recipe:
    """The model part of a recommendation: features the recipe adds to the buyer tower (such as purchase
    history), and the model, training and second-stage (recommend) sections. Values are Notes or plain values."""

    buyer_features: list[Note] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    recommend: dict[str, Any] = field(default_factory=dict)


def list_category(categories: dict[str, int], products: int) -> tuple[str | None, str]:
    """The product column whose share of a buyer's orders the ranker sees, and why: of the categorical product
    features (column → distinct values), the one nearest √products values on a log scale, fine enough to tell
    a buyer's habits apart and coarse enough that each value holds many products."""
    usable = {c: n for c, n in categories.items() if 2 <= n <= products / 2}
    if not usable:
        return None, "no product column groups products into categories"
    target = math.sqrt(products)
    column = min(usable, key=lambda c: (abs(math.log(usable[c] / target)), c))
    return column, (
        f"{column} ({_n(usable[column])} values) groups {_n(products)} products nearest √{_n(products)} ≈ "
        f"{target:,.0f} values: the buyer's share of orders in a product's {column} is a ranking feature"
    )


def _recommend_section(settings: RecommendSpec, category_why: str, test_days: float) -> dict[str, Any]:
    """The second stage as written in the spec: every setting of `settings`, each with its field's reason."""
    why = {name: info.description or "" for name, info in RecommendSpec.model_fields.items()}
    why["category"] = category_why
    why["horizon_days"] = f"empty: one test period ({test_days:.0f} days) ahead, the span the lists are judged on"
    values = settings.model_dump(mode="json")
    return {name: Note(value, why[name]) if why[name] else value for name, value in values.items()}


def recommended_model(profile: DataProfile, train_pairs: int, categories: dict[str, int], test_days: float) -> Recipe:
    """The recipe recommended for this data.

    The lists come from the two-stage recommend of :func:`tandem.recommend.recommended_settings` (the buyer's
    history, EASE neighbours and popular products re-ranked by a learned ranker), which beats the four baselines
    on repeat-heavy data; `categories` (categorical product features → distinct values) gives its category.
    The two-tower model is trained beside it as the retrieval stage: two-layer towers to a 32-wide embedding, a
    mean retrieval loss with the sampling (logQ) correction, Adam, and an epoch count that gives about
    STEPS_PER_RUN steps (at least three epochs).
    """
    batch = 8192 if train_pairs >= LARGE_BATCH_PAIRS else 1024
    steps = max(1, math.ceil(train_pairs / batch))
    epochs = min(20, max(3, math.ceil(STEPS_PER_RUN / steps)))
    category, category_why = list_category(categories, profile.products)
    return Recipe(
        model={
            "type": Note("multitask", "retrieval (which products) and ranking (how much) learned together"),
            "buyer_tower_layers": Note([64, 32], "towers map their features to a 32-wide embedding"),
            "product_tower_layers": [64, 32],
            "rating_head_layers": [64, 1],
            "retrieval_weight": 1.0,
            "ranking_weight": 1.0,
            "retrieval_loss_reduction": Note("mean", "the loss per pair does not grow with the batch size"),
            "logq_correction": Note(True, "popular products are not over-rewarded for appearing in many batches"),
        },
        training={
            "optimizer": "adam",
            "learning_rate": 0.003,
            "batch_size": Note(batch, f"{_n(train_pairs)} training pairs"),
            "epochs": Note(
                epochs,
                f"{steps} steps per epoch → about {epochs * steps} steps in all: the towers are the retrieval stage, "
                "the lists come from the second stage",
            ),
            "seed": 42,
        },
        recommend=_recommend_section(recommended_settings(category), category_why, test_days),
    )


# --------------------------------------------------------------------------------------------- all


def _train_pairs(profile: DataProfile, cutoff: int) -> int:
    """Pairs before the cutoff, estimated from the share of lines before it (pairs are not dated)."""
    before = sum(n for day, n in profile.lines_per_day.items() if day * DAY < cutoff)
    return round(profile.pairs * before / profile.rows) if profile.rows else 0


def recommended_sections(profile: DataProfile, target_name: str, orders_name: str | None) -> dict[str, Any]:
    """The features, model, training, recommend (and, for a small catalog, evaluation) sections recommended for
    `profile`, as Notes. `target_name` and `orders_name` are the columns of each pair's total target and order
    count in the data these sections will read (orders_name None: there is none)."""
    cutoff, _ = _cutoff(profile)
    features = _features(profile, target_name, orders_name)
    distinct = {c.name: c.distinct for c in profile.columns}
    categories = {
        f.value["column"]: distinct[f.value["column"]]
        for f in features.value["product"].value
        if f.value["transform"] == "categorical"
    }
    test_days = max(profile.last_time - cutoff + 1, DAY) / DAY  # as the engine measures the test period
    recipe = recommended_model(profile, _train_pairs(profile, cutoff), categories, test_days)
    features.value["buyer"].value.extend(recipe.buyer_features)
    sections: dict[str, Any] = {"features": features, "model": recipe.model, "training": recipe.training}
    ks = [k for k in EvaluationSpec().ks if k <= profile.products]
    if len(ks) < len(EvaluationSpec().ks):  # a list cannot be longer than the catalog
        why = f"the catalog has {_n(profile.products)} products, so lists stop there"
        pool = Note(min(IndexSpec().candidate_pool, profile.products), why)
        sections["model"]["index"] = {**sections["model"].get("index", {}), "candidate_pool": pool}
        sections["evaluation"] = {"ks": Note(ks or [profile.products], why)}
    sections["recommend"] = Note(recipe.recommend, RECOMMEND_WHY)
    return sections


def recommended_cutoff(profile: DataProfile) -> str:
    """The time split's cutoff recommended for `profile`, as the spec writes it."""
    return _cutoff_text(_cutoff(profile)[0])


def recommend(profile: DataProfile, out_dir: Path) -> dict[str, Any]:
    """The recommended spec for `profile`, as a mapping whose values carry their reasons (Notes)."""
    target_name = f"total_{profile.target.lower()}" if profile.target else ""
    orders_name = "n_orders"
    names = {c.name for c in profile.columns}
    while target_name in names or orders_name in names:  # never shadow a column of the data
        target_name, orders_name = f"{target_name}_", f"{orders_name}_"
    stem = Path(profile.transactions).name.split(".")[0]
    data = _data(profile, out_dir, target_name, orders_name)
    return {"name": stem, "data": data, **recommended_sections(profile, target_name, orders_name)}


def init_spec(out: str | Path, transactions: str, **profile_options: Any) -> tuple[ExperimentSpec, str]:
    """Profile the data, write the commented spec to `out`, and return it parsed with its text.

    `profile_options` are those of :func:`tandem.data.profile.profile_data`. Raises SpecError (naming the
    command-line option at fault) or DataError; nothing is written then.
    """
    out = Path(out)
    profile = profile_data(transactions, **profile_options)
    mapping = recommend(profile, out.parent)
    spec = parse_spec(plain(mapping), base=out.parent)
    header = (
        f"Written by `tandem init` from {Path(transactions).name}: {_n(profile.rows)} lines, {_n(profile.buyers)} "
        f"buyers, {_n(profile.products)} products, {_n(profile.orders)} orders.\n"
        "Each comment says why a value was chosen; change any of them and run `tandem validate` on the file."
    )
    text = to_yaml(mapping, header)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise TandemError(f"{out}: cannot write the spec: {e.strerror or e}") from None
    return spec, text
