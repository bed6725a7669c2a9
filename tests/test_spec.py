"""The experiment spec: schema checks, cross-section rules, overrides and loading, each problem with its field path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tandem.errors import SpecError
from tandem.spec import apply_overrides, load_spec, parse_spec

BASE = {
    "data": {"transactions": {"path": "tx.csv"}, "buyer_id": "buyer", "product_id": "product"},
    "features": {
        "buyer": [{"column": "buyer", "transform": "id"}],
        "product": [{"column": "product", "transform": "id"}],
        "target": "rating",
    },
}


def _raw(**sections) -> dict:
    """A valid raw spec with some sections' keys replaced (section → dict of keys to set)."""
    raw = copy.deepcopy(BASE)
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


def _problems(raw) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return {p.path: p.message for p in info.value.problems}


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ schema


def test_minimal_spec_is_valid_with_the_tutorial_defaults():
    """A spec naming only data and features is valid, and defaults follow the TFRS tutorial."""
    spec = parse_spec(_raw())
    assert spec.model.type == "multitask"
    assert (spec.model.retrieval_weight, spec.model.ranking_weight) == (1.0, 1.0)
    assert spec.model.retrieval_loss_reduction == "sum"
    assert (spec.training.optimizer, spec.training.learning_rate, spec.training.batch_size) == ("adagrad", 0.1, 8192)
    assert (spec.data.split.kind, spec.data.split.test_fraction, spec.data.split.seed) == ("random", 0.2, 42)


def test_unknown_keys_are_reported_with_their_paths():
    """A misspelt key is an error at its own path, in any section."""
    raw = _raw(model={"retreival_weight": 1.0})
    raw["features"]["buyer"][0]["embeding_dim"] = 8
    raw["extra_section"] = {}
    problems = _problems(raw)
    assert set(problems) == {"model.retreival_weight", "features.buyer.0.embeding_dim", "extra_section"}
    assert all("unknown key" in m for m in problems.values())


def test_negative_loss_weights_are_reported():
    """A negative loss weight is an error at that weight's path."""
    problems = _problems(_raw(model={"retrieval_weight": -0.5, "ranking_weight": -1}))
    assert set(problems) == {"model.retrieval_weight", "model.ranking_weight"}
    assert "greater than or equal to 0" in problems["model.retrieval_weight"]


def test_non_finite_loss_weight_is_reported():
    """An infinite loss weight is rejected."""
    assert set(_problems(_raw(model={"ranking_weight": float("inf")}))) == {"model.ranking_weight"}


def test_all_schema_problems_are_reported_at_once():
    """Several schema problems in different sections come back together, one per field."""
    raw = _raw(
        model={"type": "hybrid", "retrieval_weight": -1, "rating_head_layers": [8, 0]},
        training={"batch_size": 1, "optimizer": "lbfgs"},
        evaluation={"ks": []},
    )
    raw["data"]["split"] = {"test_fraction": 1.5}
    raw["features"]["product"][0]["transform"] = "magic"
    problems = _problems(raw)
    assert set(problems) == {
        "model.type",
        "model.retrieval_weight",
        "model.rating_head_layers.1",
        "training.batch_size",
        "training.optimizer",
        "evaluation.ks",
        "data.split.test_fraction",
        "features.product.0",
    }


def test_feature_paths_leave_out_the_transform_tag():
    """A problem inside a feature names features.<side>.<i>.<key>, without pydantic's union tag."""
    raw = _raw()
    raw["features"]["buyer"][0]["embedding_dim"] = 0
    assert set(_problems(raw)) == {"features.buyer.0.embedding_dim"}


def test_missing_required_sections_are_reported():
    """A spec without data and features names both."""
    assert set(_problems({"name": "x"})) == {"data", "features"}


def test_spec_that_is_not_a_mapping_is_reported():
    """A list or a scalar instead of sections is one problem for the whole spec."""
    assert set(_problems(["data", "features"])) == {"(spec)"}


def test_headerless_csv_needs_column_names():
    """A CSV source with header false and no columns is an error on that source."""
    raw = _raw()
    raw["data"]["transactions"]["header"] = False
    assert set(_problems(raw)) == {"data.transactions"}


def test_evaluation_cutoffs_are_sorted_and_deduplicated():
    """ks are kept sorted and without repeats."""
    assert parse_spec(_raw(evaluation={"ks": [50, 5, 10, 5]})).evaluation.ks == [5, 10, 50]


# -------------------------------------------------------------------------------- cross-section rules


def test_multitask_with_both_weights_zero_is_rejected():
    """A multitask model needs at least one loss weight above zero."""
    problems = _problems(_raw(model={"retrieval_weight": 0, "ranking_weight": 0}))
    assert set(problems) == {"model.retrieval_weight"}


def test_multitask_with_one_weight_zero_is_valid():
    """One zero weight is allowed: the tutorial's (1, 0) and (0, 1) runs."""
    spec = parse_spec(_raw(model={"retrieval_weight": 0.0, "ranking_weight": 1.0}))
    assert not spec.model.has_retrieval
    assert spec.model.has_ranking


def test_rating_head_must_end_in_one():
    """A ranking or multitask rating head whose last layer is not 1 is rejected."""
    problems = _problems(_raw(model={"type": "ranking", "rating_head_layers": [64, 32]}))
    assert set(problems) == {"model.rating_head_layers"}
    assert "[64, 32]" in problems["model.rating_head_layers"]


def test_empty_rating_head_is_rejected_for_ranking():
    """A ranking model with no rating-head layers is rejected."""
    assert set(_problems(_raw(model={"type": "ranking", "rating_head_layers": []}))) == {"model.rating_head_layers"}


def test_ranking_model_needs_a_target():
    """Ranking and multitask models need features.target."""
    for model_type in ("ranking", "multitask"):
        raw = _raw(model={"type": model_type})
        del raw["features"]["target"]
        assert set(_problems(raw)) == {"features.target"}


def test_retrieval_model_needs_neither_target_nor_rating_head():
    """A retrieval model is valid without a target and with any rating-head layers."""
    raw = _raw(model={"type": "retrieval", "rating_head_layers": [16]})
    del raw["features"]["target"]
    assert parse_spec(raw).model.type == "retrieval"


def test_early_stopping_needs_validation_rows():
    """Early stopping without data.split.validation_fraction is rejected."""
    problems = _problems(_raw(training={"early_stopping": {"metric": "val_rmse", "mode": "min"}}))
    assert set(problems) == {"training.early_stopping"}


@pytest.mark.parametrize(
    ("model_type", "metric", "measured"),
    [
        ("multitask", "val_recall_at_10", True),
        ("multitask", "val_rmse", True),
        ("multitask", "loss", True),
        ("multitask", "val_recall_at_100", False),  # 100 is not among the evaluation ks
        ("retrieval", "val_ndcg_at_5", True),
        ("retrieval", "val_rmse", False),
        ("ranking", "val_mae", True),
        ("ranking", "val_mrr", False),
        ("multitask", "val_accuracy", False),
    ],
)
def test_early_stopping_metric_must_be_one_the_model_measures(model_type, metric, measured):
    """The early-stopping metric must be a loss or a validation metric this model type reports for the ks."""
    raw = _raw(
        model={"type": model_type},
        training={"early_stopping": {"metric": metric}},
        evaluation={"ks": [5, 10]},
    )
    raw["data"]["split"] = {"validation_fraction": 0.1}
    if measured:
        assert parse_spec(raw).training.early_stopping.metric == metric
    else:
        assert set(_problems(raw)) == {"training.early_stopping.metric"}


def test_time_splits_need_a_timestamp():
    """Time and leave-last-out splits need data.timestamp."""
    for kind in ("time", "leave_last_out"):
        raw = _raw()
        raw["data"]["split"] = {"kind": kind}
        assert set(_problems(raw)) == {"data.timestamp"}


def test_cutoff_applies_only_to_time_splits():
    """A cutoff on a random split is rejected."""
    raw = _raw()
    raw["data"]["split"] = {"kind": "random", "cutoff": "2020-01-01"}
    assert set(_problems(raw)) == {"data.split.cutoff"}


def test_tower_output_sizes_must_agree():
    """The last layers of the two towers must be the same size."""
    problems = _problems(_raw(model={"buyer_tower_layers": [64, 32], "product_tower_layers": [16]}))
    assert set(problems) == {"model.product_tower_layers"}


def test_towers_without_layers_must_have_equal_input_widths():
    """A tower without layers outputs its inputs side by side (embedding dims, 1 per numeric, 5 per timestamp),
    so those widths must agree with the other tower's output."""
    raw = _raw()
    raw["features"]["buyer"] = [
        {"column": "buyer", "transform": "id", "embedding_dim": 8},
        {"column": "age", "transform": "numeric"},
        {"column": "when", "transform": "timestamp"},
    ]  # 8 + 1 + 5 = 14 wide
    raw["features"]["product"] = [{"column": "product", "transform": "id", "embedding_dim": 14}]
    assert parse_spec(raw).model.buyer_tower_layers == []

    raw["features"]["product"][0]["embedding_dim"] = 8
    problems = _problems(raw)
    assert set(problems) == {"model.product_tower_layers"}
    assert "14" in problems["model.product_tower_layers"]
    assert "8" in problems["model.product_tower_layers"]


def test_a_tower_with_layers_must_match_a_tower_without():
    """With layers on one side only, the last layer must equal the other tower's input width."""
    raw = _raw(model={"buyer_tower_layers": [64, 16]})
    raw["features"]["product"] = [{"column": "product", "transform": "id", "embedding_dim": 16}]
    assert parse_spec(raw).model.buyer_tower_layers == [64, 16]
    raw["features"]["product"][0]["embedding_dim"] = 32
    assert set(_problems(raw)) == {"model.product_tower_layers"}


def test_feature_names_must_be_distinct_within_a_tower():
    """Two features of one tower with the same name are rejected."""
    raw = _raw(model={"buyer_tower_layers": [8], "product_tower_layers": [8]})
    raw["features"]["product"].append({"column": "product", "transform": "hashing"})
    assert set(_problems(raw)) == {"features.product"}


def test_bce_needs_an_untransformed_target():
    """ranking_loss 'bce' with target_transform 'log1p' is rejected."""
    raw = _raw(model={"ranking_loss": "bce"})
    raw["features"]["target_transform"] = "log1p"
    assert set(_problems(raw)) == {"features.target_transform"}


def test_all_cross_section_problems_are_reported_at_once():
    """Every broken cross-section rule is reported together, each at the field to change."""
    raw = _raw(
        model={"retrieval_weight": 0, "ranking_weight": 0, "rating_head_layers": [8, 4]},
        training={"early_stopping": {}},
    )
    del raw["features"]["target"]
    raw["data"]["split"] = {"kind": "time"}
    problems = _problems(raw)
    assert set(problems) == {
        "model.retrieval_weight",
        "model.rating_head_layers",
        "features.target",
        "training.early_stopping",
        "data.timestamp",
    }


# ------------------------------------------------------------------------------------------ overrides


def test_overrides_set_nested_values_parsed_as_yaml():
    """`section.key=value` sets nested keys, creating missing sections, with YAML-typed values."""
    raw = apply_overrides(
        _raw(),
        ["model.ranking_weight=0", "training.epochs=7", "evaluation.ks=[1, 2]", "data.split.kind=time", "name=x y"],
    )
    assert raw["model"]["ranking_weight"] == 0
    assert raw["training"]["epochs"] == 7
    assert raw["evaluation"]["ks"] == [1, 2]
    assert raw["data"]["split"]["kind"] == "time"
    assert raw["name"] == "x y"


def test_override_without_an_equals_sign_is_reported():
    """An override that is not section.key=value is a problem on --set."""
    with pytest.raises(SpecError) as info:
        apply_overrides(_raw(), ["model.type"])
    assert [p.path for p in info.value.problems] == ["--set"]
    assert "section.key=value" in info.value.problems[0].message


def test_override_with_an_empty_key_is_reported():
    """`=value` names no key and is reported."""
    with pytest.raises(SpecError) as info:
        apply_overrides(_raw(), ["=3"])
    assert [p.path for p in info.value.problems] == ["--set"]


def test_override_through_a_scalar_is_reported():
    """Setting a key below a value that is not a section is reported at that key."""
    with pytest.raises(SpecError) as info:
        apply_overrides(_raw(), ["features.target.column=x"])
    assert [p.path for p in info.value.problems] == ["features.target.column"]


def test_override_with_invalid_yaml_value_is_reported():
    """A value that is not valid YAML is reported at its key."""
    with pytest.raises(SpecError) as info:
        apply_overrides(_raw(), ["evaluation.ks=[1, 2"])
    assert [p.path for p in info.value.problems] == ["evaluation.ks"]


def test_all_bad_overrides_are_reported_at_once():
    """Every malformed override is listed, not only the first."""
    with pytest.raises(SpecError) as info:
        apply_overrides(_raw(), ["model.type", "features.target.x=1", "training.epochs={"])
    assert [p.path for p in info.value.problems] == ["--set", "features.target.x", "training.epochs"]


def test_overrides_reach_list_items_by_index():
    """A numeric part indexes a list: `features.buyer.0.embedding_dim=16` sets the first buyer feature's dim."""
    raw = apply_overrides(_raw(), ["features.buyer.0.embedding_dim=16", "features.product.0.transform=hashing"])
    assert raw["features"]["buyer"][0] == {"column": "buyer", "transform": "id", "embedding_dim": 16}
    assert raw["features"]["product"][0]["transform"] == "hashing"


def test_an_index_outside_the_list_is_reported_with_the_list_length():
    """An index past the end, or a name where a list needs an index, is reported at that key."""
    with pytest.raises(SpecError) as info:
        apply_overrides(_raw(), ["features.buyer.1.embedding_dim=16", "features.buyer.first.embedding_dim=16"])
    problems = {p.path: p.message for p in info.value.problems}
    assert set(problems) == {"features.buyer.1.embedding_dim", "features.buyer.first.embedding_dim"}
    assert "a list of 1" in problems["features.buyer.1.embedding_dim"]


@pytest.mark.parametrize(
    ("override", "path", "expected"),
    [
        ("data.split.cutoff=2017-10-01", ("data", "split", "cutoff"), "2017-10-01"),
        ("name=2020", ("name",), "2020"),
        ("data.buyer_id=007", ("data", "buyer_id"), "007"),
        ("data.transactions.timestamp_format=%m/%d/%Y", ("data", "transactions", "timestamp_format"), "%m/%d/%Y"),
        ("data.transactions.types.ID=VARCHAR", ("data", "transactions", "types", "ID"), "VARCHAR"),
        ("features.buyer.0.column=true", ("features", "buyer", 0, "column"), "true"),
        ("features.target='quoted'", ("features", "target"), "quoted"),
        ("data.timestamp=null", ("data", "timestamp"), None),
        ("training.epochs=7", ("training", "epochs"), 7),
        ("data.filters=[{column: a, op: is_null}]", ("data", "filters"), [{"column": "a", "op": "is_null"}]),
    ],
)
def test_override_values_take_the_type_of_their_field(override, path, expected):
    """Text fields keep the text as written (a date stays a string); other fields are parsed as YAML."""
    raw = apply_overrides(_raw(), [override])
    value = raw
    for part in path:
        value = value[part]
    assert value == expected


def test_a_date_cutoff_override_passes_validation():
    """`--set data.split.cutoff=2017-10-01` gives a valid time split rather than 'not a valid string'."""
    raw = _raw(data={**BASE["data"], "timestamp": "ts", "split": {"kind": "time"}})
    spec = parse_spec(apply_overrides(raw, ["data.split.cutoff=2017-10-01"]))
    assert spec.data.split.cutoff == "2017-10-01"


def test_derived_columns_and_new_filters_are_checked_by_the_schema():
    """A derived formula outside the grammar and a filter without the value its op needs are reported by path."""
    data = {
        **BASE["data"],
        "derived": [{"name": "s", "expr": "q * p"}, {"name": "t", "expr": "1; SELECT 1"}, {"name": "s", "expr": "q"}],
        "filters": [
            {"column": "q", "op": "starts_with"},
            {"column": "q", "op": "is_null", "value": 3},
            {"column": "q", "op": "matches", "value": "^A"},
            {"column": "q", "op": "=="},
        ],
    }
    problems = _problems(_raw(data=data))
    assert set(problems) == {"data.derived.1.expr", "data.filters.0", "data.filters.1", "data.filters.3"}
    assert "needs a non-empty text value" in problems["data.filters.0"]
    assert "takes no value" in problems["data.filters.1"]
    assert "is_null" in problems["data.filters.3"]
    data["derived"] = data["derived"][::2]
    data["filters"] = data["filters"][2:3]
    assert _problems(_raw(data=data)) == {"data.derived": "derived column names repeat (s); give each its own name"}


def test_overridden_values_are_validated_like_the_file():
    """An override that breaks a rule is reported like the same value written in the file."""
    with pytest.raises(SpecError) as info:
        parse_spec(apply_overrides(_raw(), ["model.ranking_weight=-2"]))
    assert [p.path for p in info.value.problems] == ["model.ranking_weight"]


# -------------------------------------------------------------------------------------------- loading


def test_load_spec_applies_overrides_and_resolves_paths_against_the_spec_folder(tmp_path):
    """Overrides are applied and relative data paths become absolute, relative to the spec file's folder."""
    path = _write(tmp_path, yaml.safe_dump(_raw()))
    spec = load_spec(path, ["training.epochs=2", "model.retrieval_weight=0.5"])
    assert spec.training.epochs == 2
    assert spec.model.retrieval_weight == 0.5
    assert spec.data.transactions.path == str(tmp_path.resolve() / "tx.csv")


def test_absolute_and_package_paths_are_left_as_they_are(tmp_path):
    """Absolute paths and pkg: paths are not rewritten."""
    raw = _raw()
    raw["data"]["transactions"]["path"] = str(tmp_path / "elsewhere" / "tx.csv")
    raw["data"]["products"] = {"path": "pkg:somepackage/data/items.csv", "key": "product"}
    spec = load_spec(_write(tmp_path, yaml.safe_dump(raw)))
    assert spec.data.transactions.path == str(tmp_path / "elsewhere" / "tx.csv")
    assert spec.data.products.path == "pkg:somepackage/data/items.csv"


def test_invalid_yaml_is_reported_with_its_line(tmp_path):
    """A file that is not YAML is one problem on the file, naming the line."""
    path = _write(tmp_path, "name: x\ndata: [unclosed\nfeatures: {}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (problem,) = info.value.problems
    assert problem.path == str(path)
    assert "not valid YAML" in problem.message
    assert "line" in problem.message


def test_empty_spec_file_is_reported(tmp_path):
    """An empty file is reported as empty rather than as missing sections."""
    path = _write(tmp_path, "\n# nothing here\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert [(p.path, p.message) for p in info.value.problems] == [(str(path), "the spec file is empty")]


def test_missing_spec_file_is_reported(tmp_path):
    """A spec path that does not exist is reported as unreadable."""
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert "cannot read the spec file" in info.value.problems[0].message


def test_spec_round_trips_through_yaml():
    """A spec written with to_yaml and parsed again is equal to the original."""
    raw = _raw(model={"type": "multitask", "rating_head_layers": [32, 1], "remove_accidental_hits": True})
    raw["data"]["filters"] = [{"column": "qty", "op": "in", "value": [1, 2]}]
    spec = parse_spec(raw)
    assert parse_spec(yaml.safe_load(spec.to_yaml())) == spec


def test_spec_error_message_lists_every_problem_with_its_path():
    """str(SpecError) has one 'path: message' line per problem."""
    with pytest.raises(SpecError) as info:
        parse_spec(_raw(model={"retrieval_weight": -1, "ranking_weight": -1}))
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("model.retrieval_weight: ")
    assert lines[1].startswith("model.ranking_weight: ")


def test_assignments_are_validated():
    """Setting a field after parsing re-runs its validation."""
    spec = parse_spec(_raw())
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        spec.model.ranking_weight = -1.0


def test_a_field_error_and_a_cross_field_error_come_back_together():
    """A bad field in one section does not hide a cross-field rule of another section that parsed."""
    problems = _problems(_raw(model={"rating_head_layers": [8, 4]}, training={"epochs": 0}))
    assert set(problems) == {"model.rating_head_layers", "training.epochs"}
    assert "must end in 1" in problems["model.rating_head_layers"]


def test_a_section_checked_alone_runs_only_its_own_rules():
    """check_sections runs the rules whose sections were given, and none that need another section."""
    from tandem.spec import ModelSpec, check_sections

    assert isinstance(check_sections({"model": {}, "training": {}})["model"], ModelSpec)
    with pytest.raises(SpecError) as info:
        check_sections({"model": {"type": "multitask", "retrieval_weight": 0, "ranking_weight": 0}, "nonsense": {}})
    assert [p.path for p in info.value.problems] == ["nonsense", "model.retrieval_weight"]


def test_the_old_top_k_key_loads_as_the_candidate_pool():
    """`model.top_k` of older specs becomes `model.index.candidate_pool`; giving both is an error."""
    assert parse_spec(_raw(model={"top_k": 7})).model.index.candidate_pool == 7
    problems = _problems(_raw(model={"top_k": 7, "index": {"candidate_pool": 8}}))
    assert "old name" in problems["model"]


def test_problem_parts_split_a_spec_path_and_keep_other_paths_whole():
    """A problem's path as keys and indexes; a file path or an option stays one part."""
    from tandem.errors import Problem

    assert Problem("features.buyer.0.column", "x").parts == ("features", "buyer", 0, "column")
    assert Problem("runs/spec.yaml", "x").parts == ("runs/spec.yaml",)
    assert Problem("--set", "x").parts == ("--set",)


def test_history_bags_share_a_product_id_or_category_and_widen_the_buyer_tower():
    """A bag pools the product tower's table of its column, so it has that feature's width."""
    raw = _raw(features={"buyer": [{"column": "product", "transform": "history"}], "target": "rating"})
    spec = parse_spec(raw)
    assert spec.features.buyer[0].feature_name == "history_product"
    raw["features"]["buyer"].append({"column": "buyer", "transform": "id", "embedding_dim": 8})
    assert "model.product_tower_layers" in _problems(raw)  # 32 + 8 on the buyer side against 32
    raw["features"]["buyer"] = [{"column": "brand", "transform": "history"}]
    assert "shares the product tower's embedding of 'brand'" in _problems(raw)["features.buyer.0.column"]
    raw["features"]["product"].append({"column": "product", "name": "bought", "transform": "history"})
    assert "buyer side" in _problems(raw)["features.product.1.transform"]


def test_recency_weighting_needs_a_timestamp():
    raw = _raw(features={"buyer": [{"column": "product", "transform": "history", "weighting": "recency"}]})
    assert set(_problems(raw)) == {"features.buyer.0.weighting"}


def test_catalog_softmax_refuses_in_batch_corrections():
    """Log-Q and accidental-hit removal correct in-batch negatives; a full softmax has nothing to correct."""
    assert set(_problems(_raw(model={"retrieval_negatives": "catalog", "logq_correction": True}))) == {
        "model.logq_correction"
    }
    assert set(_problems(_raw(model={"retrieval_negatives": "catalog", "remove_accidental_hits": True}))) == {
        "model.remove_accidental_hits"
    }
    assert parse_spec(_raw(model={"retrieval_negatives": "catalog"})).model.catalog_softmax_max_products == 100_000
