"""The experiment spec: one pydantic schema for the CLI (YAML), the API (JSON), the platform and code generation.

Each field states its default and bounds once, here; what a form needs beyond them (a group, a widget, a
slider's range) is field metadata under `json_schema_extra={"ui": ...}` (see :func:`ui`), read by the
platform's forms and shown in its API schema.

Two kinds of rule: section rules (types, ranges and the cross-field rules of :data:`RULES`, which run on
whatever sections parse, so a field error and a cross-field error are reported together) and experiment
rules, which need the data (:mod:`tandem.experiment_rules`). Both report problems with their paths.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, to_jsonable_python

from tandem.errors import Problem, SpecError
from tandem.expressions import referenced_columns
from tandem.metric_names import DEFAULT_KS


class Section(BaseModel):
    """Base of every spec section: unknown keys are errors, numbers are finite, assignments are re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The JSON schema, with the defaults of fields that have a default factory (pydantic leaves them out)."""
        json_schema = handler(schema)
        properties = handler.resolve_ref_schema(json_schema).get("properties", {})
        for name, info in cls.model_fields.items():
            if info.default_factory is not None and name in properties:
                properties[name]["default"] = to_jsonable_python(info.get_default(call_default_factory=True))
        return json_schema


def ui(**hints: Any) -> dict[str, Any]:
    """Form hints of a field, kept in its JSON schema under "ui".

    Keys: `group` (the fieldset it is shown in), `widget` ("radio", "slider", "layers"), `min`/`max`/`step`
    (a slider's range, inside the field's bounds), `for_types` (the model types the field concerns).
    """
    return {"ui": hints}


# Platform limits of a layer list: enough for any tower this engine trains, small enough for a form.
MAX_LAYERS = 8
MAX_LAYER_SIZE = 16_384
LayerSize = Annotated[int, Field(ge=1, le=MAX_LAYER_SIZE, strict=True)]  # strict: `true` is not a size


# --------------------------------------------------------------------------------------------- data


# DuckDB types a column may be declared as; DECIMAL takes its precision and scale.
ColumnType = Annotated[
    str,
    Field(
        pattern=r"(?i)^(VARCHAR|TEXT|BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|FLOAT|REAL|DOUBLE|DATE|"
        r"TIMESTAMP|TIMESTAMPTZ|DECIMAL\(\d{1,2}, ?\d{1,2}\))$",
        description="VARCHAR, BOOLEAN, INTEGER, BIGINT, DOUBLE, DATE, TIMESTAMP, DECIMAL(p, s), …",
    ),
]


class TableSource(Section):
    """A CSV or Parquet file, read with DuckDB; column types are guessed from the whole file unless declared."""

    path: str = Field(description="File path; relative paths are resolved against the spec file's folder.")
    format: Literal["auto", "csv", "parquet"] = "auto"
    delimiter: str | None = Field(None, description="CSV delimiter; DuckDB sniffs it when omitted.")
    header: bool = Field(True, description="Whether the CSV's first line names the columns.")
    columns: list[str] | None = Field(None, description="Column names for a CSV without a header.")
    encoding: Literal["utf-8", "latin-1", "utf-16"] = "utf-8"
    timestamp_format: str | None = Field(
        None,
        max_length=100,
        description="strptime format of the CSV's dates or times, e.g. '%m/%d/%Y'; guessed from every value when omitted.",
    )
    types: dict[str, ColumnType] = Field(
        default_factory=dict,
        description="Column → DuckDB type, e.g. {CUSTOMER_ID: VARCHAR} to keep an id's leading zeros.",
    )
    null_values: list[str] = Field(
        default_factory=list, description="CSV values read as missing besides the empty field, e.g. ['Unknown']."
    )

    @field_validator("timestamp_format")
    @classmethod
    def _format_has_a_directive(cls, fmt: str | None) -> str | None:
        if fmt is not None and not any(f"%{d}" in fmt for d in "YymdbBjHIMSf"):
            raise ValueError(f"'{fmt}' has no date or time directive; write it like '%m/%d/%Y' or '%Y-%m-%d %H:%M'")
        return fmt

    @model_validator(mode="after")
    def _headerless_csv_needs_columns(self) -> TableSource:
        if not self.header and not self.columns:
            raise ValueError("a CSV without a header needs 'columns' to name its columns")
        return self


class AttributeTable(TableSource):
    """Buyer or product attributes, joined to the transactions on `key`."""

    key: str = Field(description="The column of this table that holds the buyer or product id.")


class Aggregate(Section):
    """One aggregated value of a buyer–product pair: `name = fn(column)`."""

    name: str
    fn: Literal["sum", "mean", "max", "min", "count", "count_distinct"]
    column: str | None = Field(None, description="Source column; not needed for 'count'.")

    @model_validator(mode="after")
    def _column_needed(self) -> Aggregate:
        if self.fn != "count" and not self.column:
            raise ValueError(f"aggregate '{self.name}' with fn '{self.fn}' needs a 'column'")
        return self


_TEXT_OPS = ("starts_with", "not_starts_with", "matches")
_NULL_OPS = ("is_null", "not_null")


class RowFilter(Section):
    """Keep only rows where `column op value` holds (applied before aggregation).

    `starts_with` / `not_starts_with` compare the column as text (a missing value starts with nothing, so
    `not_starts_with` keeps it); `matches` keeps values where the regular expression (RE2) is found;
    `is_null` / `not_null` take no value.
    """

    column: str
    op: Literal[
        "==", "!=", "<", "<=", ">", ">=", "in", "not_in", "starts_with", "not_starts_with", "matches", "is_null",
        "not_null",
    ]  # fmt: skip
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_the_op(self) -> RowFilter:
        where = f"filter on '{self.column}' with op '{self.op}'"
        if self.op in _NULL_OPS:
            if self.value is not None:
                raise ValueError(f"{where} takes no value")
        elif self.op in ("in", "not_in"):
            if not isinstance(self.value, list):
                raise ValueError(f"{where} needs a list value")
        elif self.op in _TEXT_OPS:
            if not isinstance(self.value, str) or not self.value:
                raise ValueError(f"{where} needs a non-empty text value")
        elif self.value is None:
            raise ValueError(f"{where} needs a value (use op 'is_null' or 'not_null' for missing values)")
        return self


class DerivedColumn(Section):
    """A column computed on each transaction line, e.g. `{name: sales, expr: "Quantity * UnitPrice"}`.

    `expr` uses columns, numbers, quoted text, + - * / %, parentheses and a few functions (see
    :mod:`tandem.expressions`); it is compiled to SQL, never passed through. Later columns may use earlier ones.
    """

    name: str = Field(min_length=1, max_length=200)
    expr: str

    @field_validator("expr")
    @classmethod
    def _in_the_grammar(cls, expr: str) -> str:
        referenced_columns(expr)  # raises ExpressionError (a ValueError) naming what is not allowed
        return expr


class SplitSpec(Section):
    """How interactions are divided into train, optional validation, and test."""

    kind: Literal["random", "time", "leave_last_out"] = "random"
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    validation_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Share of the training rows held out.")
    seed: int = 42
    cutoff: str | None = Field(None, description="Time split: test rows are at or after this timestamp.")


class DataSpec(Section):
    """Where interactions come from and how they are cleaned, aggregated, sampled and split."""

    transactions: TableSource
    buyers: AttributeTable | None = None
    products: AttributeTable | None = None
    buyer_id: str
    product_id: str
    timestamp: str | None = None
    derived: list[DerivedColumn] = Field(
        default_factory=list, description="Columns computed from the transactions before filtering and aggregation."
    )
    filters: list[RowFilter] = Field(default_factory=list)
    aggregate: list[Aggregate] | None = Field(
        None, description="When set, transaction lines become one row per buyer–product pair."
    )
    sample_fraction: float = Field(1.0, gt=0.0, le=1.0)
    sample_seed: int = 0
    split: SplitSpec = Field(default_factory=SplitSpec)


# ----------------------------------------------------------------------------------------- features


class _FeatureBase(Section):
    column: str
    name: str | None = Field(None, description="Feature name; defaults to the column.")

    @property
    def feature_name(self) -> str:
        return self.name or self.column


class _EmbeddedFeature(_FeatureBase):
    embedding_dim: int = Field(32, ge=1, le=4096)


class IdFeature(_EmbeddedFeature):
    """An id or a categorical value: a vocabulary (min_count) plus out-of-vocabulary hash buckets."""

    transform: Literal["id", "categorical"]
    min_count: int = Field(1, ge=1)
    oov_buckets: int = Field(1, ge=1, le=2**20)
    max_vocab: int | None = Field(None, ge=1, le=2**24)


class HashFeature(_EmbeddedFeature):
    """A value hashed into a fixed number of bins (no vocabulary to store)."""

    transform: Literal["hashing"]
    num_bins: int = Field(1024, ge=2, le=2**22)


class NumericFeature(_FeatureBase):
    """A number fed as-is after standardisation (optionally of its log1p)."""

    transform: Literal["numeric"]
    log: bool = False


class BucketFeature(_EmbeddedFeature):
    """A number cut into quantile buckets fitted on the training split, then embedded."""

    transform: Literal["bucketize"]
    num_buckets: int = Field(10, ge=2, le=1000)
    log: bool = False


class TextFeature(_EmbeddedFeature):
    """Free text as a bag of lower-cased word tokens, mean-pooled embeddings."""

    transform: Literal["text"]
    max_tokens: int = Field(20_000, ge=1, le=2**20)
    min_count: int = Field(1, ge=1)
    max_length: int = Field(16, ge=1, le=512)


class TimeFeature(_FeatureBase):
    """A timestamp as hour-of-day and day-of-week cycles plus standardised age."""

    transform: Literal["timestamp"]


class HistoryFeature(_FeatureBase):
    """The buyer's past purchases (YouTube DNN's watch history): the values of the product column `column`
    (the product id, or an attribute such as a category) the buyer bought in the training split, as a weighted
    bag pooled over the product tower's own embedding of that column, so the query tower knows what the buyer
    buys. Buyer side only; the buyer is looked up by `data.buyer_id`."""

    transform: Literal["history"]
    weighting: Literal["count", "recency"] = Field(
        "count", description="'count': orders per value; 'recency': each order decays with `half_life_days`."
    )
    half_life_days: float = Field(30.0, gt=0.0, description="Recency weighting: an order this old counts half.")
    max_items: int = Field(200, ge=1, le=10_000, description="The heaviest values kept per buyer.")
    count_column: str | None = Field(
        None,
        description="A numeric column of orders per row; by default each aggregated pair's distinct orders "
        "(1 per row without aggregation).",
    )
    leave_out_target: Literal["pair", "order", "none"] = Field(
        "pair",
        description="In training, what a row's own purchase takes out of its buyer's bag: the whole buyer–product "
        "pair ('pair'), one order of it, so re-orders still show ('order'), or nothing ('none', which leaks).",
    )

    @property
    def feature_name(self) -> str:
        return self.name or f"history_{self.column}"


Feature = Annotated[
    IdFeature | HashFeature | NumericFeature | BucketFeature | TextFeature | TimeFeature | HistoryFeature,
    Field(discriminator="transform"),
]


class FeaturesSpec(Section):
    """Which columns feed the buyer (query) tower and the product (candidate) tower, and the target."""

    buyer: list[Feature] = Field(min_length=1)
    product: list[Feature] = Field(min_length=1)
    target: str | None = Field(None, description="Numeric column the ranking task predicts.")
    target_transform: Literal["none", "log1p"] = Field(
        "none", description="'log1p': learn and score log(1 + target), for heavy-tailed amounts such as sales."
    )


# -------------------------------------------------------------------------------------------- model


class IndexSpec(Section):
    """The serving index: exact brute force or a FAISS ANN index with its parameters."""

    candidate_pool: int = Field(
        100,
        ge=1,
        description="How many products retrieval hands to ranking in a recommendation (and the default top-K served).",
    )
    hnsw_m: int = Field(32, ge=4, le=128)
    hnsw_ef_search: int = Field(128, ge=1)
    ivf_nlist: int = Field(256, ge=1)
    ivf_nprobe: int = Field(16, ge=1)


# The fieldsets of the retrieval loss's and the rating head's fields, shown for the types that have them.
_RETRIEVAL_LOSS_UI = ui(group="Retrieval loss", for_types=["retrieval", "multitask"])
_RANKING_HEAD_UI = ui(group="Ranking head", for_types=["ranking", "multitask"])
# A loss weight's slider: the platform's usual range, inside the weight's bounds (any finite number ≥ 0).
_WEIGHT_UI = ui(group="Loss weights", widget="slider", min=0.0, max=2.0, step=0.1, for_types=["multitask"])


# Model types fitted without torch: a baseline's lists, trained and served as a model of its own.
BASELINE_TYPES = ("buy_again", "ease")


class ModelSpec(Section):
    """Model type, towers, rating head, task losses and their weights.

    `buy_again` and `ease` are the evaluation's baselines as models (no towers, no torch training): the buyer's
    past products by order count then recency, then popularity; or EASE (evaluation.ease_lambda over the
    evaluation.ease_products most bought products) keeping each product's `ease_neighbours` largest weights,
    then popularity. They are evaluated and served with the same kept table.
    """

    type: Literal["retrieval", "ranking", "multitask", "buy_again", "ease"] = Field(
        "multitask", json_schema_extra=ui(group="Model type", widget="radio")
    )
    buyer_tower_layers: list[LayerSize] = Field(
        default_factory=list,
        max_length=MAX_LAYERS,
        description="MLP sizes, input side first; the last is the output dim. Empty: the features side by side.",
        json_schema_extra=ui(group="Towers", widget="layers"),
    )
    product_tower_layers: list[LayerSize] = Field(
        default_factory=list,
        max_length=MAX_LAYERS,
        description="MLP sizes; the two towers' output sizes must agree.",
        json_schema_extra=ui(group="Towers", widget="layers"),
    )
    rating_head_layers: list[LayerSize] = Field(
        default_factory=lambda: [256, 128, 1],
        max_length=MAX_LAYERS,
        description="MLP on the two embeddings; ends in 1 (one prediction).",
        json_schema_extra=ui(group="Ranking head", widget="layers", for_types=["ranking", "multitask"]),
    )
    activation: Literal["relu", "gelu", "tanh"] = Field("relu", json_schema_extra=ui(group="Towers"))
    dropout: float = Field(0.0, ge=0.0, lt=1.0, json_schema_extra=ui(group="Towers", step=0.05))
    normalize_embeddings: bool = Field(
        False, description="L2-normalise tower outputs (use with a temperature).", json_schema_extra=ui(group="Towers")
    )
    embedding_init_scale: float = Field(
        0.05, gt=0.0, description="Embeddings start uniform in ±scale.", json_schema_extra=ui(group="Towers")
    )
    retrieval_weight: float = Field(
        1.0, ge=0.0, description="Weight of the retrieval loss in the multitask sum.", json_schema_extra=_WEIGHT_UI
    )
    ranking_weight: float = Field(
        1.0, ge=0.0, description="Weight of the ranking loss in the multitask sum.", json_schema_extra=_WEIGHT_UI
    )
    temperature: float = Field(1.0, gt=0.0, json_schema_extra=_RETRIEVAL_LOSS_UI)
    remove_accidental_hits: bool = Field(False, json_schema_extra=_RETRIEVAL_LOSS_UI)
    logq_correction: bool = Field(False, json_schema_extra=_RETRIEVAL_LOSS_UI)
    retrieval_negatives: Literal["in_batch", "catalog"] = Field(
        "in_batch",
        json_schema_extra=_RETRIEVAL_LOSS_UI,
        description="'catalog': a softmax over the whole catalog when it has at most catalog_softmax_max_products "
        "products, else over sampled_negatives products drawn uniformly and shared by the batch (plus its positives).",
    )
    catalog_softmax_max_products: int = Field(100_000, ge=1, json_schema_extra=_RETRIEVAL_LOSS_UI)
    sampled_negatives: int = Field(8192, ge=1, json_schema_extra=_RETRIEVAL_LOSS_UI)
    retrieval_loss_reduction: Literal["sum", "mean"] = Field(
        "sum",
        description="'sum' matches TensorFlow Recommenders' Retrieval task.",
        json_schema_extra=_RETRIEVAL_LOSS_UI,
    )
    ranking_loss: Literal["mse", "huber", "bce", "bpr", "hinge", "softmax", "lambdarank"] = Field(
        "mse",
        description="Pointwise (mse, huber, bce), pairwise over sampled negatives of the same buyer (bpr, hinge) "
        "or listwise per buyer (softmax, lambdarank).",
        json_schema_extra=_RANKING_HEAD_UI,
    )
    huber_delta: float = Field(1.0, gt=0.0, json_schema_extra=_RANKING_HEAD_UI)
    rating_head_input: Literal["concat", "concat_product"] = Field(
        "concat",
        description="'concat_product' also feeds the element-wise product of the two embeddings.",
        json_schema_extra=_RANKING_HEAD_UI,
    )
    retrieval_algorithm: Literal["brute_force", "hnsw", "ivf"] = Field(
        "brute_force",
        description="Exact top-K or a FAISS ANN index in serving.",
        json_schema_extra=ui(group="Serving index", for_types=["retrieval", "multitask"]),
    )
    index: IndexSpec = Field(
        default_factory=IndexSpec, json_schema_extra=ui(group="Serving index", for_types=["retrieval", "multitask"])
    )
    ease_neighbours: int = Field(
        200,
        ge=1,
        le=20000,
        description="EASE weights kept per product: the model's table, in evaluation and in the bundle.",
        json_schema_extra=ui(group="EASE", for_types=["ease"]),
    )

    @model_validator(mode="before")
    @classmethod
    def _top_k_is_the_candidate_pool(cls, data: Any) -> Any:
        """Specs written before `index.candidate_pool` named it `model.top_k`; that key still loads."""
        if isinstance(data, dict) and "top_k" in data:
            data = dict(data)
            index = data.get("index")
            index = dict(index) if isinstance(index, dict) else {} if index is None else index
            if isinstance(index, dict):
                if "candidate_pool" in index:
                    raise ValueError("'top_k' is the old name of 'index.candidate_pool'; set only candidate_pool")
                index["candidate_pool"] = data.pop("top_k")
                data["index"] = index
        return data

    @field_validator("retrieval_weight", "ranking_weight")
    @classmethod
    def _finite(cls, w: float) -> float:
        if not math.isfinite(w):
            raise ValueError(f"a loss weight must be a finite number ≥ 0, got {w}")
        return w

    @property
    def is_baseline(self) -> bool:
        """Whether the model is a baseline's lists (fitted without towers or torch)."""
        return self.type in BASELINE_TYPES

    @property
    def has_retrieval(self) -> bool:
        """Whether the model learns (and serves) retrieval: the one definition, used from training to pages."""
        return self.type in ("retrieval", *BASELINE_TYPES) or (self.type == "multitask" and self.retrieval_weight > 0)

    @property
    def has_ranking(self) -> bool:
        """Whether the model learns (and serves) ranking scores."""
        return self.type == "ranking" or (self.type == "multitask" and self.ranking_weight > 0)

    @property
    def measures_retrieval(self) -> bool:
        """Whether retrieval metrics are reported: every model with two towers, including a multitask model whose
        retrieval weight is 0 (TensorFlow Recommenders' tutorial reports top-K accuracy at weights (1, 0))."""
        return self.type != "ranking"

    @property
    def measures_ranking(self) -> bool:
        """Whether rating errors are reported: every model with a rating head, including a zero-weight one."""
        return self.type in ("ranking", "multitask")


# ----------------------------------------------------------------------------------------- training


class EarlyStopping(Section):
    """Stop when a validation metric has not improved for `patience` epochs; keep the best weights."""

    metric: str = "val_recall_at_100"
    mode: Literal["max", "min"] = "max"
    patience: int = Field(2, ge=1)


class TrainingSpec(Section):
    """Optimiser, batches and epochs; reproducible for a given seed on the CPU."""

    optimizer: Literal["adagrad", "adam", "sgd"] = "adagrad"
    learning_rate: float = Field(0.1, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(8192, ge=2, le=2**20)
    epochs: int = Field(3, ge=1, le=10_000)
    seed: int = 42
    sparse_embeddings: bool = Field(False, description="Sparse gradients for id tables (Adagrad, SGD, Adam).")
    lr_schedule: Literal["constant", "cosine"] = "constant"
    early_stopping: EarlyStopping | None = None
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="cpu, cuda or cuda:N.")


# --------------------------------------------------------------------------------------- evaluation


class EvaluationSpec(Section):
    """Which cut-offs to report and how full-catalog retrieval is counted."""

    ks: list[int] = Field(default_factory=lambda: list(DEFAULT_KS))
    exclude_seen: bool = Field(
        False,
        description="Count the headline recall/NDCG the explore way: each buyer's training products are left out "
        "of their lists, and test pairs the buyer bought in training are not counted.",
    )
    baseline: bool = Field(
        True, description="Also score the popularity, buy-again, EASE and buy-again-then-EASE lists."
    )
    ease_lambda: float = Field(500.0, gt=0.0, description="L2 weight of the EASE baseline.")
    ease_products: int = Field(
        6000, ge=1, le=20000, description="EASE covers this many of the most bought products (cost grows as N³)."
    )

    @field_validator("ks")
    @classmethod
    def _positive_ks(cls, ks: list[int]) -> list[int]:
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be a non-empty list of positive integers, got {ks}")
        return sorted(set(ks))


# ------------------------------------------------------------------------------------ recommend


_CANDIDATES_UI = ui(group="Second stage: candidates")
_EASE_UI = ui(group="Second stage: EASE neighbours")
_RANKER_UI = ui(group="Second stage: ranker")


RankerLoss = Literal["bce", "bpr", "hinge", "softmax", "lambdarank"]


class RecommendSpec(Section):
    """Two-stage recommendation: candidates from several sources, re-ranked by a ranker learned on pair features.

    The ranker learns on the training period alone: features from the orders before `cutoff - horizon`, labels
    from the pairs bought in the horizon after it (and as many earlier windows as `windows` asks). The horizon
    is `horizon_days`, or else the length of the test period.
    """

    history: int = Field(
        1000,
        ge=0,
        description="At most this many of the buyer's past products, most ordered first.",
        json_schema_extra=_CANDIDATES_UI,
    )
    ease: int = Field(
        100, ge=0, description="Item–item (EASE) candidates the buyer has not bought.", json_schema_extra=_CANDIDATES_UI
    )
    popularity: int = Field(
        100, ge=0, description="Most popular products the buyer has not bought.", json_schema_extra=_CANDIDATES_UI
    )
    ease_lambda: float = Field(
        500.0, gt=0.0, description="EASE's L2 penalty: larger shrinks towards popularity.", json_schema_extra=_EASE_UI
    )
    ease_products: int = Field(
        6000,
        ge=1,
        le=20000,
        description="EASE is fitted over this many most bought products.",
        json_schema_extra=_EASE_UI,
    )
    ease_neighbours: int = Field(
        200, ge=1, description="Neighbours kept per product for scoring.", json_schema_extra=_EASE_UI
    )
    category: str | None = Field(
        None,
        description="Product column whose share of the buyer's orders is a feature.",
        json_schema_extra=_RANKER_UI,
    )
    horizon_days: float | None = Field(
        None,
        gt=0.0,
        description="Days ahead the lists are for; empty: the test period's length.",
        json_schema_extra=_RANKER_UI,
    )
    windows: int = Field(
        2, ge=1, le=12, description="Training windows of one horizon each, latest first.", json_schema_extra=_RANKER_UI
    )
    max_train_buyers: int = Field(
        20000, ge=1, description="Buyers sampled per window to train the ranker.", json_schema_extra=_RANKER_UI
    )
    ranker_layers: list[LayerSize] = Field(
        default_factory=lambda: [64, 32, 1],
        min_length=1,
        max_length=MAX_LAYERS,
        description="The ranker's MLP over the pair features; the last size is 1.",
        json_schema_extra=ui(group="Second stage: ranker", widget="layers"),
    )
    ranker_loss: RankerLoss = Field(
        "lambdarank", description="How the ranker learns each buyer's list.", json_schema_extra=_RANKER_UI
    )
    explore_ranker_loss: RankerLoss = Field(
        "softmax",
        description="How the ranker of new products (the lists without the buyer's past products) learns.",
        json_schema_extra=_RANKER_UI,
    )
    ranker_epochs: int = Field(
        4, ge=1, le=1000, description="Passes over the training windows.", json_schema_extra=_RANKER_UI
    )
    rankers: int = Field(
        4,
        ge=1,
        le=8,
        description="Rankers trained with different seeds for each list, their scores averaged (less seed noise).",
        json_schema_extra=_RANKER_UI,
    )
    ranker_learning_rate: float = Field(
        0.003, gt=0.0, description="The ranker's Adam step.", json_schema_extra=_RANKER_UI
    )
    buyers_per_batch: int = Field(
        64, ge=1, description="Buyers whose candidate lists make one ranker step.", json_schema_extra=_RANKER_UI
    )

    @field_validator("ranker_layers")
    @classmethod
    def _one_score(cls, layers: list[int]) -> list[int]:
        if layers[-1] != 1:
            raise ValueError(f"the last layer is the candidate's score, so its size is 1 (got {layers[-1]})")
        return layers


# ----------------------------------------------------------------------------------------- the spec


class ExperimentSpec(Section):
    """A whole experiment: data, features, model, training and evaluation."""

    name: str = "experiment"
    data: DataSpec
    features: FeaturesSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    recommend: RecommendSpec | None = Field(
        None, title="Two-stage recommend", description="Re-rank candidates in a second stage."
    )

    def resolve_paths(self, base: Path) -> ExperimentSpec:
        """Return a copy whose relative data paths are made absolute against `base`."""
        data = self.data.model_copy(deep=True)
        for table in (data.transactions, data.buyers, data.products):
            if table is not None and not table.path.startswith("pkg:") and not Path(table.path).is_absolute():
                table.path = str((base / table.path).resolve())
        return self.model_copy(update={"data": data})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# -------------------------------------------------------------------------------- cross-field rules
# Each rule checks one relationship between fields and names the field a user should change, so that
# every entry point (CLI, API, pages) can show the message beside that field. A rule's parameters name
# the sections it reads; it runs whenever those sections parse, so a user sees every problem at once, and a
# config saved alone (a model config: `model` and `training`) gets exactly the rules of its own sections.


def _split_cutoff_only_for_time(data: DataSpec) -> Problem | None:
    split = data.split
    if split.cutoff is not None and split.kind != "time":
        return Problem("data.split.cutoff", f"'cutoff' applies to a time split, not to '{split.kind}'")
    return None


def _unique_derived_names(data: DataSpec) -> Problem | None:
    names = [c.name for c in data.derived]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        return Problem("data.derived", f"derived column names repeat ({', '.join(dupes)}); give each its own name")
    return None


def _time_split_needs_timestamp(data: DataSpec) -> Problem | None:
    if data.split.kind in ("time", "leave_last_out") and not data.timestamp:
        return Problem("data.timestamp", f"a '{data.split.kind}' split needs a timestamp column")
    return None


def _unique_feature_names(features: FeaturesSpec) -> Problem | None:
    for side in ("buyer", "product"):
        names = [f.feature_name for f in getattr(features, side)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            return Problem(
                f"features.{side}", f"feature names repeat ({', '.join(dupes)}); give each a distinct 'name'"
            )
    return None


def _multitask_needs_a_weight(model: ModelSpec) -> Problem | None:
    if model.type == "multitask" and model.retrieval_weight == 0 and model.ranking_weight == 0:
        return Problem("model.retrieval_weight", "a multitask model needs retrieval_weight or ranking_weight above 0")
    return None


def _rating_head_ends_in_one(model: ModelSpec) -> Problem | None:
    if not model.measures_ranking:
        return None
    if not model.rating_head_layers:
        return Problem("model.rating_head_layers", f"a {model.type} model needs rating-head layers, e.g. [256, 128, 1]")
    if model.rating_head_layers[-1] != 1:
        return Problem(
            "model.rating_head_layers",
            f"the rating head must end in 1 (one prediction), got {model.rating_head_layers}",
        )
    return None


# Widths of the dense transforms (Standardize.width_, TimeFeatures.width_): a tower without layers outputs
# its inputs side by side, so its output size is the sum of its embedding dims and these widths.
DENSE_WIDTHS = {"numeric": 1, "timestamp": 5}


def _tower_output(layers: list[int], features: list, product: list) -> int:
    if layers:
        return layers[-1]
    return sum(DENSE_WIDTHS.get(f.transform) or _embedding_dim(f, product) for f in features)


def _embedding_dim(feature: Any, product: list) -> int:
    """A feature's embedding width; a history bag has the width of the product feature it shares."""
    if feature.transform != "history":
        return feature.embedding_dim
    return next((p.embedding_dim for p in product if p.column == feature.column and p.transform in _SHAREABLE), 0)


_SHAREABLE = ("id", "categorical")


def _tower_layers_agree(model: ModelSpec) -> Problem | None:
    b, p = model.buyer_tower_layers, model.product_tower_layers
    if b and p and b[-1] != p[-1] and not model.is_baseline:
        return Problem("model.product_tower_layers", f"the towers' output sizes differ: buyer {b[-1]}, product {p[-1]}")
    return None


def _towers_agree(model: ModelSpec, features: FeaturesSpec) -> Problem | None:
    if (model.buyer_tower_layers and model.product_tower_layers) or model.is_baseline:
        return None  # the layers alone decide (_tower_layers_agree); a baseline has no towers
    product = features.product
    b = _tower_output(model.buyer_tower_layers, features.buyer, product)
    p = _tower_output(model.product_tower_layers, product, product)
    if b != p:
        return Problem("model.product_tower_layers", f"the towers' output sizes differ: buyer {b}, product {p}")
    return None


def _ranking_needs_target(model: ModelSpec, features: FeaturesSpec) -> Problem | None:
    if model.measures_ranking and not features.target:
        return Problem("features.target", f"a {model.type} model needs a target column to predict")
    return None


def _early_stopping_needs_validation(training: TrainingSpec, data: DataSpec) -> Problem | None:
    if training.early_stopping and data.split.validation_fraction == 0:
        return Problem("training.early_stopping", "early stopping needs data.split.validation_fraction above 0")
    return None


def _early_stopping_metric_is_measured(
    training: TrainingSpec, model: ModelSpec, evaluation: EvaluationSpec
) -> Problem | None:
    stop = training.early_stopping
    if stop is None:
        return None
    measured = {"loss", "retrieval_loss", "ranking_loss"}
    if model.type != "ranking":
        measured |= {"val_mrr"} | {f"val_{m}_at_{k}" for m in ("recall", "ndcg", "coverage") for k in evaluation.ks}
    if model.type != "retrieval":
        measured |= {"val_rmse", "val_mae"}
    if stop.metric not in measured:
        return Problem(
            "training.early_stopping.metric",
            f"'{stop.metric}' is not measured for this model; choose one of {', '.join(sorted(measured))}",
        )
    return None


def _sparse_without_weight_decay(training: TrainingSpec) -> Problem | None:
    if training.sparse_embeddings and training.weight_decay > 0:
        return Problem("training.weight_decay", "sparse embeddings do not support weight decay; set it to 0")
    return None


def _bce_needs_plain_target(model: ModelSpec, features: FeaturesSpec) -> Problem | None:
    if model.ranking_loss == "bce" and features.target_transform != "none":
        return Problem("features.target_transform", "ranking_loss 'bce' needs targets in [0, 1]; use 'none'")
    return None


def _history_shares_a_product_feature(features: FeaturesSpec) -> Problem | None:
    shareable = {f.column for f in features.product if f.transform in _SHAREABLE}
    for i, f in enumerate(features.buyer):
        if f.transform == "history" and f.column not in shareable:
            return Problem(
                f"features.buyer.{i}.column",
                f"a history bag shares the product tower's embedding of '{f.column}', so the product side needs an "
                f"id or categorical feature on that column (it has: {', '.join(sorted(shareable)) or 'none'})",
            )
    return None


def _history_only_for_buyers(features: FeaturesSpec) -> Problem | None:
    for i, f in enumerate(features.product):
        if f.transform == "history":
            return Problem(
                f"features.product.{i}.transform", "a purchase history describes a buyer: use it on the buyer side"
            )
    return None


def _recency_needs_timestamp(features: FeaturesSpec, data: DataSpec) -> Problem | None:
    for i, f in enumerate(features.buyer):
        if f.transform == "history" and f.weighting == "recency" and not data.timestamp:
            return Problem(f"features.buyer.{i}.weighting", "recency weighting needs data.timestamp")
    return None


def _catalog_softmax_without_logq(model: ModelSpec) -> Problem | None:
    m = model
    if m.retrieval_negatives == "catalog" and (m.logq_correction or m.remove_accidental_hits):
        field = "logq_correction" if m.logq_correction else "remove_accidental_hits"
        return Problem(
            f"model.{field}",
            f"{field} corrects in-batch negatives; with retrieval_negatives 'catalog' every product is a negative "
            "once, so set it to false",
        )
    return None


def _recommend_needs_time_split(recommend: RecommendSpec | None, data: DataSpec) -> Problem | None:
    if recommend is not None and (data.split.kind != "time" or data.timestamp is None):
        return Problem("recommend", "a two-stage recommend learns from time: it needs data.timestamp and a time split")
    if recommend is not None and recommend.ranker_layers[-1] != 1:
        return Problem("recommend.ranker_layers", "the ranker's last layer gives the score: it must be 1")
    return None


# A rule returns its problem, a list of problems, or None.
Rule = Callable[..., Problem | list[Problem] | None]
RULES: tuple[Rule, ...] = (
    _split_cutoff_only_for_time,
    _recommend_needs_time_split,
    _unique_derived_names,
    _time_split_needs_timestamp,
    _unique_feature_names,
    _multitask_needs_a_weight,
    _rating_head_ends_in_one,
    _tower_layers_agree,
    _towers_agree,
    _ranking_needs_target,
    _early_stopping_needs_validation,
    _early_stopping_metric_is_measured,
    _sparse_without_weight_decay,
    _bce_needs_plain_target,
    _history_shares_a_product_feature,
    _history_only_for_buyers,
    _recency_needs_timestamp,
    _catalog_softmax_without_logq,
)


def rule_sections(rule: Rule) -> tuple[str, ...]:
    """The sections a rule reads: its parameters named after a section (others are bound beforehand)."""
    return tuple(p for p in inspect.signature(rule).parameters if p in SECTIONS)


# ------------------------------------------------------------------------------------------ loading


def _section_class(annotation: Any) -> type[Section] | None:
    """The Section class of a spec field (`ModelSpec`, or `RecommendSpec | None`), or None for another field."""
    members = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    cls = members[0] if len(members) == 1 else None
    return cls if isinstance(cls, type) and issubclass(cls, Section) else None


# The spec's sections and their classes, read from ExperimentSpec itself.
SECTIONS: dict[str, type[Section]] = {
    name: cls for name, info in ExperimentSpec.model_fields.items() if (cls := _section_class(info.annotation))
}
# The sections that are off (None) unless given, such as `recommend`.
OPTIONAL_SECTIONS: frozenset[str] = frozenset(
    name for name in SECTIONS if ExperimentSpec.model_fields[name].default is None
)


def _problems_from(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    problems = []
    for err in error.errors():
        raw = err["loc"]
        # A feature's transform tag follows its list index (`buyer.0.history.column`); a field may share its name.
        loc = prefix + tuple(
            p for i, p in enumerate(raw) if not (i and isinstance(raw[i - 1], int) and _is_union_tag(p))
        )
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and section)"
        problems.append(Problem(".".join(str(p) for p in loc) or "(spec)", msg))
    return problems


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and part in {
        "id",
        "categorical",
        "hashing",
        "numeric",
        "bucketize",
        "text",
        "timestamp",
        "history",
    }


def _parse_sections(
    raw: Mapping[str, Any], extra_rules: Sequence[Rule] = ()
) -> tuple[dict[str, Section | None], list[Problem]]:
    """Each section of `raw` validated alone, then every rule whose sections all parsed."""
    parsed: dict[str, Section | None] = {}
    problems: list[Problem] = []
    for name, value in raw.items():
        try:
            optional_and_off = value is None and not ExperimentSpec.model_fields[name].is_required()
            parsed[name] = None if optional_and_off else SECTIONS[name].model_validate(value)
        except ValidationError as e:
            problems += _problems_from(e, (name,))
    for rule in (*RULES, *extra_rules):
        needs = rule_sections(rule)
        if all(n in parsed for n in needs):
            found = rule(**{n: parsed[n] for n in needs})
            problems += found if isinstance(found, list) else [found] if found is not None else []
    return parsed, problems


def check_sections(raw: Mapping[str, Any]) -> dict[str, Section | None]:
    """Validate some sections of a spec on their own (a saved config): their fields and the rules among them.

    `raw` maps section names (`features`, `model`, `training`, …) to their dicts. Returns the parsed sections;
    raises :class:`SpecError` listing every problem, field and cross-field ones together.
    """
    unknown = [Problem(str(name), "unknown section") for name in raw if name not in SECTIONS]
    parsed, problems = _parse_sections({k: v for k, v in raw.items() if k in SECTIONS})
    if unknown or problems:
        raise SpecError(unknown + problems)
    return parsed


def parse_spec(raw: dict[str, Any], base: Path | None = None, extra_rules: Sequence[Rule] = ()) -> ExperimentSpec:
    """Validate a spec given as a dict; raise :class:`SpecError` listing every problem.

    `extra_rules` run with the spec's own rules, on the sections that parse (the experiment rules, which
    know the data: :func:`tandem.experiment_rules.parse_experiment`).
    """
    if not isinstance(raw, dict):
        raise SpecError([Problem("(spec)", f"a spec must be a mapping of sections, got {type(raw).__name__}")])
    # A section left out takes its default (and its rules run), unless it is required: its defaults, or None.
    given = {name: raw[name] for name in SECTIONS if name in raw}
    for name in SECTIONS:
        info = ExperimentSpec.model_fields[name]
        if name not in given and not info.is_required():
            given[name] = {} if info.default_factory is not None else info.default
    parsed, problems = _parse_sections(given, extra_rules)
    # The other keys (the name, unknown ones, missing sections) are checked with every section that parsed;
    # a section that failed stands in unvalidated, as its own problems are already listed.
    rest = {k: v for k, v in raw.items() if k not in SECTIONS}
    stand_ins = {name: SECTIONS[name].model_construct() for name in given if name not in parsed}
    try:
        spec = ExperimentSpec.model_validate({**rest, **parsed, **stand_ins})
    except ValidationError as e:
        problems += _problems_from(e)
    if problems:
        raise SpecError(problems)
    return spec.resolve_paths(base) if base is not None else spec


def _field_annotation(parts: list[str], raw: Any) -> tuple[Any, Any]:
    """The schema's annotation of the value at `parts` and the raw value there (list items by index, feature
    kinds by their `transform`); the annotation is None where the path leaves the schema."""
    kind: Any = ExperimentSpec
    node = raw
    for part in parts:
        kind = _unwrap(kind, node)
        origin = typing.get_origin(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            info = kind.model_fields.get(part)
            if info is None:
                return None, None
            kind = info.annotation
        elif origin is list:
            kind = typing.get_args(kind)[0]
        elif origin is dict:
            kind = typing.get_args(kind)[1]
        else:
            return None, None
        node = _child(node, part)
    return kind, node


def _unwrap(kind: Any, node: Any) -> Any:
    """Strip Annotated and Optional; pick a feature class by the raw item's `transform`."""
    while True:
        origin = typing.get_origin(kind)
        if origin is Annotated:
            kind = typing.get_args(kind)[0]
        elif origin in (typing.Union, UnionType):
            members = [a for a in typing.get_args(kind) if a is not type(None)]
            if len(members) == 1:
                kind = members[0]
            elif all(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
                tag = node.get("transform") if isinstance(node, dict) else None
                chosen = [m for m in members if tag in typing.get_args(m.model_fields["transform"].annotation)]
                return chosen[0] if chosen else None
            else:
                return kind
        else:
            return kind


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None


def _is_text(kind: Any) -> bool:
    if kind is str:
        return True
    return typing.get_origin(kind) is Literal and all(isinstance(v, str) for v in typing.get_args(kind))


def _allows_none(kind: Any) -> bool:
    while typing.get_origin(kind) is Annotated:
        kind = typing.get_args(kind)[0]
    return type(None) in typing.get_args(kind)


def _override_value(parts: list[str], raw: dict[str, Any], value: str) -> Any:
    """A `--set` value: text as written where the schema wants text (so 2017-10-01 stays a string, and
    '%m/%d/%Y' needs no quotes), else YAML. Raises yaml.YAMLError for a non-text field's invalid YAML."""
    text = value.strip()
    kind, node = _field_annotation(parts, raw)
    if not _is_text(_unwrap(kind, node)):
        return yaml.safe_load(text) if text else ""
    try:
        parsed = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text
    if parsed is None and text and _allows_none(kind):
        return None
    return parsed if isinstance(parsed, str) else text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides to a raw spec dict; a numeric part indexes a list
    (`features.buyer.0.embedding_dim=16`). Values are parsed as YAML, except where the field is text."""
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(Problem("--set", f"'{item}' is not of the form section.key=value"))
            continue
        parts = key.split(".")
        node: Any = raw
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[:depth]) or "(spec)"
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    problems.append(
                        Problem(
                            key,
                            f"'{where}' is a list of {len(node)}; '{part}' is not an index from 0 to {len(node) - 1}",
                        )
                    )
                    break
                index: str | int = int(part)
            elif isinstance(node, dict):
                index = part
            else:
                problems.append(Problem(key, f"'{where}' is not a section, so '{key}' cannot be set"))
                break
            if last:
                try:
                    node[index] = _override_value(parts, raw, value)
                except yaml.YAMLError:
                    problems.append(Problem(key, f"the value '{value}' is not valid YAML"))
                break
            if isinstance(node, dict) and node.get(part) is None:
                node[part] = {}
            node = node[index]
    if problems:
        raise SpecError(problems)
    return raw


def load_spec(path: str | Path, overrides: list[str] | None = None) -> ExperimentSpec:
    """Read a YAML spec file, apply overrides, validate, and resolve relative paths against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError([Problem(str(path), f"cannot read the spec file: {e.strerror or e}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError([Problem(str(path), f"not valid YAML{where}: {getattr(e, 'problem', e)}")]) from None
    if raw is None:
        raise SpecError([Problem(str(path), "the spec file is empty")])
    if isinstance(raw, dict):
        raw = apply_overrides(raw, overrides or [])
    return parse_spec(raw, base=path.resolve().parent)
