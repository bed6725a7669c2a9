"""The list baselines (popularity, buy-again, EASE, buy-again then EASE) against an independent pandas and
numpy computation on the same split: orders as distinct timestamps of a pair's training lines, popularity as
training rows per product, EASE as B = I − P / diag(P) with P = (XᵀX + λI)⁻¹ over the most bought products."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
import pytest

from tandem.data.history import DENSE_PAIRS, purchase_history
from tandem.data.prepare import BUYER, PRODUCT, TS
from tandem.evaluation.baselines import Baselines, history_lists, merge_lists, top_columns
from tandem.evaluation.ease_fit import fit_ease
from tandem.evaluation.evaluate import SplitPairs, baseline_metrics
from tandem.evaluation.metrics import list_ranks
from tandem.run import prepare
from tandem.spec import EvaluationSpec, parse_spec

KS = [1, 3, 10]
LAMBDA = 5.0
CUTOFF = 1_700_000_000 + 14 * 86_400


def _repeat_heavy_lines(seed: int = 0) -> pd.DataFrame:
    """Invoice lines: 30 buyers re-order a few favourites over 20 days (several lines of one invoice share a
    timestamp), plus random one-off products; buyers 25–29 only buy after the cutoff (day 14)."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(30):
        favourites = rng.choice(40, 4, replace=False)
        first_day = 14 if b >= 25 else 0
        for day in range(first_day, 20):
            if rng.random() < 0.5:
                continue
            ts = 1_700_000_000 + day * 86_400 + int(rng.integers(0, 3_600))
            basket = list(rng.choice(favourites, int(rng.integers(1, 4)), replace=False))
            basket += list(rng.choice(40, int(rng.integers(0, 3)), replace=False))
            for p in basket:
                rows.append((f"b{b}", f"p{p}", float(rng.integers(1, 5)), ts))
                if rng.random() < 0.2:  # the same product twice on one invoice is still one order
                    rows.append((f"b{b}", f"p{p}", 1.0, ts))
    return pd.DataFrame(rows, columns=["buyer", "product", "quantity", "ts"])


def _spec(path, aggregate: bool):
    raw = {
        "data": {
            "transactions": {"path": str(path)},
            "buyer_id": "buyer",
            "product_id": "product",
            "timestamp": "ts",
            "split": {"kind": "time", "cutoff": str(CUTOFF)},
        },
        "features": {
            "buyer": [{"column": "buyer", "transform": "id", "embedding_dim": 4}],
            "product": [{"column": "product", "transform": "id", "embedding_dim": 4}],
        },
        "model": {"type": "retrieval", "top_k": 10},
        "evaluation": {"ks": KS, "ease_lambda": LAMBDA, "ease_products": 25},
    }
    if aggregate:
        raw["data"]["aggregate"] = [{"name": "quantity", "fn": "sum", "column": "quantity"}]
    return parse_spec(raw)


@pytest.fixture(params=[False, True], ids=["lines", "aggregated"])
def split(request, tmp_path, write_table):
    """(raw lines, encoded data) of the repeat-heavy lines, as lines or aggregated into pairs."""
    lines = _repeat_heavy_lines()
    path = write_table(lines, "lines.csv")
    interactions, _, data = prepare(_spec(path, request.param))
    return lines, interactions, data


def _expected_lists(
    lines: pd.DataFrame, data, frame: pd.DataFrame, train_rows: np.ndarray, *, cutoff: int, k: int, n_ease: int
) -> dict[str, dict]:
    """Every buyer's top-k under each baseline (full and explore), from the raw lines with pandas and numpy.

    lines: buyer, product, ts (seconds); a pair's orders are its distinct timestamps before the cutoff.
    """
    index = {p: i for i, p in enumerate(data.product_ids)}  # catalog index: order of first appearance
    train_lines = lines[lines.ts < cutoff].assign(p=lambda f: f["product"].map(index))
    per_pair = train_lines.groupby(["buyer", "p"]).agg(orders=("ts", "nunique"), last=("ts", "max")).reset_index()
    counts = np.bincount(frame[PRODUCT].iloc[train_rows].map(index), minlength=len(index))
    popular = sorted(range(len(index)), key=lambda p: (-counts[p], p))
    popularity_rank = {p: r for r, p in enumerate(popular)}
    bought = {b: set(g.p) for b, g in per_pair.groupby("buyer")}

    top = [p for p in popular if counts[p] > 0][:n_ease]
    column = {p: j for j, p in enumerate(top)}
    buyers = sorted(bought)
    x = np.zeros((len(buyers), len(top)))
    for i, b in enumerate(buyers):
        x[i, [column[p] for p in bought[b] if p in column]] = 1.0
    inverse = np.linalg.inv(x.T @ x + LAMBDA * np.eye(len(top)))
    weights = np.eye(len(top)) - inverse / np.diag(inverse)
    scores = {b: x[i] @ weights for i, b in enumerate(buyers)}

    def fill(first: list[int], skip: set[int] = frozenset()) -> list[int]:
        out: list[int] = []
        for p in [*first, *popular]:
            if len(out) == k:
                break
            if p not in skip and p not in out:
                out.append(p)
        return out

    out: dict[str, dict] = {name: {} for name in Baselines.names}
    out.update({f"{name}_explore": {} for name in Baselines.names})
    for b in data.buyer_ids:
        history = per_pair[per_pair.buyer == b].sort_values(["orders", "last", "p"], ascending=[False, False, True])
        past = list(history.p)
        score = scores.get(b)
        ease = sorted(top, key=lambda p: (-score[column[p]], popularity_rank[p])) if score is not None else []
        out["popularity"][b] = fill([])
        out["buy_again"][b] = fill(past)
        out["ease"][b] = fill(ease)
        out["buy_again_ease"][b] = fill(past + ease)
        for name in ("popularity", "buy_again"):
            out[f"{name}_explore"][b] = fill([], set(past))
        for name in ("ease", "buy_again_ease"):
            out[f"{name}_explore"][b] = fill(ease, set(past))
    return out


def test_every_baseline_list_matches_the_pandas_computation(split):
    """Each buyer's list, full and explore, equals the one built from the raw lines by hand."""
    lines, interactions, data = split
    expected = _expected_lists(lines, data, interactions.frame, interactions.train, cutoff=CUTOFF, k=10, n_ease=25)
    baselines = Baselines(
        data.history, data.train_counts, partial(fit_ease, data.history, data.train_counts, LAMBDA, 25)
    )
    buyers = np.arange(len(data.buyer_ids))
    for name in Baselines.names:
        for explore in (False, True):
            got = baselines.lists(name, buyers, 10, explore=explore)
            want = expected[f"{name}_explore" if explore else name]
            for code, b in enumerate(data.buyer_ids):
                assert [p for p in got[code] if p >= 0] == want[b], (name, explore, b)


def test_baseline_metrics_count_test_rows_as_the_pandas_computation(split):
    """{name}_recall_at_K, _ndcg_at_K, _repeat_recall_at_K and _explore_recall_at_K from the hand-built lists."""
    lines, interactions, data = split
    expected = _expected_lists(lines, data, interactions.frame, interactions.train, cutoff=CUTOFF, k=10, n_ease=25)
    _check_metrics(interactions, data, expected, EvaluationSpec(ks=KS, ease_lambda=LAMBDA, ease_products=25))


def _check_metrics(
    interactions, data, expected: dict[str, dict], evaluation: EvaluationSpec, tolerance: float = 1e-12
) -> None:
    metrics = baseline_metrics(data, SplitPairs.of(data, data.test), evaluation)
    test = interactions.frame.iloc[interactions.test]
    index = {p: i for i, p in enumerate(data.product_ids)}
    train = interactions.frame.iloc[interactions.train]
    past = set(zip(train[BUYER], train[PRODUCT].map(index), strict=True))
    pairs = [(b, index[p]) for b, p in zip(test[BUYER], test[PRODUCT], strict=True)]
    repeat = [(b, p) for b, p in pairs if (b, p) in past]
    new = [(b, p) for b, p in pairs if (b, p) not in past]
    assert repeat and new
    for name in Baselines.names:
        full, explore = expected[name], expected[f"{name}_explore"]
        for k in evaluation.ks:
            assert metrics[f"{name}_recall_at_{k}"] == pytest.approx(_recall(pairs, full, k), abs=tolerance)
            assert metrics[f"{name}_ndcg_at_{k}"] == pytest.approx(_ndcg(pairs, full, k), abs=tolerance)
            assert metrics[f"{name}_repeat_recall_at_{k}"] == pytest.approx(_recall(repeat, full, k), abs=tolerance)
            assert metrics[f"{name}_explore_recall_at_{k}"] == pytest.approx(_recall(new, explore, k), abs=tolerance)
            assert metrics[f"{name}_explore_ndcg_at_{k}"] == pytest.approx(_ndcg(new, explore, k), abs=tolerance)


@pytest.mark.slow
def test_baselines_on_complete_journey_households_match_the_pandas_computation(shared_data_dir):
    """On 150 households of The Complete Journey (lines, time split at November), every baseline's metrics
    equal the pandas computation (EASE within 0.001: float32 against float64 scores)."""
    path = shared_data_dir / "completejourney" / "transactions.csv.gz"
    spec = parse_spec(
        {
            "data": {
                "transactions": {"path": str(path)},
                **{"buyer_id": "household_id", "product_id": "product_id", "timestamp": "transaction_timestamp"},
                "filters": [{"column": "household_id", "op": "<=", "value": 150}],
                "split": {"kind": "time", "cutoff": "2017-11-01"},
            },
            "features": {
                "buyer": [{"column": "household_id", "transform": "id", "embedding_dim": 4}],
                "product": [{"column": "product_id", "transform": "id", "embedding_dim": 4}],
            },
            "model": {"type": "retrieval", "top_k": 10},
            "evaluation": {"ks": [10, 100], "ease_lambda": LAMBDA, "ease_products": 300},
        }
    )
    interactions, _, data = prepare(spec)
    raw = pd.read_csv(path, usecols=["household_id", "product_id", "transaction_timestamp"])
    raw = raw[raw.household_id <= 150]
    lines = pd.DataFrame(
        {
            "buyer": raw.household_id,
            "product": raw.product_id,
            "ts": (pd.to_datetime(raw.transaction_timestamp, utc=True) - pd.Timestamp(0, tz="UTC"))
            // pd.Timedelta("1s"),
        }
    )
    cutoff = int(pd.Timestamp("2017-11-01", tz="UTC").timestamp())
    expected = _expected_lists(lines, data, interactions.frame, interactions.train, cutoff=cutoff, k=100, n_ease=300)
    # EASE scores in float32 (the engine) and float64 (numpy) may order near-ties differently deep in a list.
    _check_metrics(interactions, data, expected, spec.evaluation, tolerance=1e-3)


def _recall(pairs: list, lists: dict, k: int) -> float:
    return sum(p in lists[b][:k] for b, p in pairs) / len(pairs)


def _ndcg(pairs: list, lists: dict, k: int) -> float:
    return sum(1 / math.log2(lists[b].index(p) + 2) for b, p in pairs if p in lists[b][:k]) / len(pairs)


def test_orders_are_distinct_timestamps_of_a_pairs_training_lines(split):
    """The history's order count and latest order per pair equal pandas' nunique and max over training lines."""
    lines, _, data = split
    per_pair = lines[lines.ts < CUTOFF].groupby(["buyer", "product"]).ts.agg(["nunique", "max"])
    history = data.history
    got = {
        (data.buyer_ids[b], data.product_ids[p]): (o, t)
        for b, p, o, t in zip(history.buyer, history.product, history.orders, history.last, strict=True)
    }
    assert got == {k: (int(v["nunique"]), int(v["max"])) for k, v in per_pair.iterrows()}


def test_history_lists_put_most_orders_first_then_the_latest():
    """Ties in order count go to the later last order, then to the lower product index; -1 pads."""
    frame = pd.DataFrame({TS: [5, 9, 1, 2, 3, 7]})
    history = purchase_history(
        frame, np.arange(6), np.array([0, 0, 0, 0, 0, 1]), np.array([2, 1, 0, 0, 3, 3]), n_buyers=2, n_products=4
    )
    assert history_lists(history, np.array([0, 1]), 5).tolist() == [[0, 1, 2, 3, -1], [3, -1, -1, -1, -1]]


def test_merge_lists_keeps_first_occurrences_in_order_and_skips_excluded():
    """Repeats and excluded products are skipped; the rest keep their order; -1 pads a short row."""
    parts = [np.array([[3, -1, 1], [2, 2, 0]]), np.array([[1, 4, 0], [0, 1, 3]])]
    excluded = np.array([[False, False, False, False, True, False], [False, False, False, False, False, False]])
    assert merge_lists(parts, 4, excluded).tolist() == [[3, 1, 0, -1], [2, 0, 1, 3]]


def test_top_columns_order_as_a_stable_sort_of_the_scores():
    """Highest score first, ties (0.0 and -0.0 among them) to the earlier column, -1 for -inf: the order of a
    stable sort of the negated float scores."""
    rng = np.random.default_rng(3)
    scores = rng.choice(np.array([-2.5, -1.0, -0.0, 0.0, 0.5, 3.0, np.inf], np.float32), size=(40, 30))
    scores[:5, 10:] = -np.inf
    products = rng.permutation(30) + 100
    expected = products[np.argsort(-scores, axis=1, kind="stable")[:, :12]]
    expected[np.sort(scores, axis=1)[:, ::-1][:, :12] == -np.inf] = -1
    assert top_columns(scores, products, 12).tolist() == expected.tolist()


@pytest.mark.parametrize("n_buyers", [50, DENSE_PAIRS // 40 + 1], ids=["grid", "keys"])
def test_bought_answers_each_pair_as_a_set_of_the_training_pairs(n_buyers):
    """Both lookups, the small grid's and the larger one's binary search, agree with a set of the pairs,
    out-of-range products included."""
    rng = np.random.default_rng(4)
    buyer, product = rng.integers(0, n_buyers, 300), rng.integers(0, 40, 300)
    frame = pd.DataFrame({TS: np.arange(300)})
    history = purchase_history(frame, np.arange(300), buyer, product, n_buyers=n_buyers, n_products=40)
    pairs = set(zip(buyer.tolist(), product.tolist(), strict=True))
    asked_buyer = np.concatenate([buyer, rng.integers(0, n_buyers, 300), [0, n_buyers - 1]])
    asked_product = np.concatenate([product, rng.integers(0, 40, 300), [-1, 40]])
    expected = [(b, p) in pairs for b, p in zip(asked_buyer.tolist(), asked_product.tolist(), strict=True)]
    assert history.bought(asked_buyer, asked_product).tolist() == expected


def test_list_ranks_give_the_position_or_the_list_length():
    """A product's rank is its position in its row's list, and the list length when it is absent."""
    lists = np.array([[4, 2, -1], [1, 0, 3]])
    assert list_ranks(lists, np.array([0, 0, 1, 1]), np.array([2, 7, 3, 1])).tolist() == [1, 3, 2, 0]


def test_an_unknown_baseline_is_refused_by_name(split):
    """Asking for a baseline that does not exist names the ones that do."""
    _, _, data = split
    with pytest.raises(ValueError, match="buy_again_ease"):
        Baselines(
            data.history, data.train_counts, partial(fit_ease, data.history, data.train_counts, LAMBDA, 25)
        ).lists("als", np.arange(2), 3)
