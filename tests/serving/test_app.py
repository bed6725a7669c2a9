"""The HTTP app in-process (through ASGI): routes, batched bodies, JSON error shapes, and a run of malformed
requests that are all refused with a 4xx (a 500 would raise here, from Starlette's error middleware)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tandem.serving import recommender
from tandem.serving.app import create_app
from tandem.serving.bundle import Bundle
from tandem.serving.requests import MAX_BODY_BYTES, MAX_BUYERS, MAX_IDS, MAX_K, MAX_PAIRS, MAX_RESULTS
from tests.serving.conftest import call_app

BUYER = {"buyer": "b1", "ts": 1_700_000_000}


@pytest.fixture(scope="module")
def apps(bundles: Callable[[str], Bundle]) -> Callable[[str], Starlette]:
    made: dict[str, Starlette] = {}
    return lambda model_type: made.setdefault(model_type, create_app(bundles(model_type)))


def test_health_and_metadata(apps: Callable[[str], Starlette], bundles: Callable[[str], Bundle]) -> None:
    """Health names the signatures; metadata is the manifest with file paths cut to their names."""
    assert call_app(apps("multitask"), "GET", "/v1/health") == (
        200,
        {"status": "ok", "model_type": "multitask", "signatures": ["serving_default", "serve_ranking"]},
    )
    status, body = call_app(apps("ranking"), "GET", "/v1/metadata")
    manifest = bundles("ranking").manifest.model_dump(mode="json")
    assert Path(manifest["spec"]["data"]["transactions"]["path"]).is_absolute()
    assert status == 200 and body["spec"]["data"]["transactions"]["path"] == "transactions.csv"
    assert not [v for v in _strings(body) if v.startswith(("/tmp", str(Path.home())))]
    assert {k: v for k, v in body.items() if k != "spec"} == {k: v for k, v in manifest.items() if k != "spec"}


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_retrieve_answers_what_the_plain_function_answers(
    apps: Callable[[str], Starlette], bundles: Callable[[str], Bundle]
) -> None:
    """The route is a thin wrapper: same product ids and scores as `recommender.retrieve`."""
    status, body = call_app(apps("multitask"), "POST", "/v1/retrieve", {"buyer": BUYER, "k": 5, "exclude": ["p1"]})
    assert status == 200
    assert body == recommender.retrieve(bundles("multitask"), [BUYER], 5, [["p1"]])[0]
    assert len(body["product_ids"]) == 5 and "p1" not in body["product_ids"]


def test_batched_requests_answer_one_result_per_buyer(apps: Callable[[str], Starlette]) -> None:
    """{"buyers": [...]} → {"results": [...]}, in order, for every route."""
    app = apps("multitask")
    buyers = [BUYER, {"buyer": "b2"}, {"buyer": "unknown"}]
    status, body = call_app(app, "POST", "/v1/retrieve", {"buyers": buyers, "k": 3})
    single = [call_app(app, "POST", "/v1/retrieve", {"buyer": b, "k": 3})[1] for b in buyers]
    assert status == 200 and len(body["results"]) == 3
    for batched, alone in zip(body["results"], single, strict=True):
        # One matrix product for the batch, one vector product alone: equal up to float32 rounding.
        assert batched["scores"] == pytest.approx(alone["scores"], abs=1e-6)
        assert {**batched, "scores": None} == {**alone, "scores": None}
    assert [r["fallback"] for r in body["results"]] == [None, None, "popularity"]
    status, body = call_app(app, "POST", "/v1/rank", {"buyers": buyers[:2], "product_ids": [["p1", "p2"], ["p3"]]})
    assert status == 200 and [len(r["predictions"]) for r in body["results"]] == [2, 1]
    status, body = call_app(app, "POST", "/v1/recommend", {"buyers": buyers[:2], "k": 2})
    assert status == 200 and [len(r["product_ids"]) for r in body["results"]] == [2, 2]


def test_rank_route_names_the_unknown_product(apps: Callable[[str], Starlette]) -> None:
    """Unknown product ids are a 422 whose message and fields name them."""
    status, body = call_app(apps("multitask"), "POST", "/v1/rank", {"buyer": BUYER, "product_ids": ["p1", "zzz"]})
    assert status == 422 and body["code"] == "unknown_product"
    assert "'zzz'" in body["message"] and body["fields"] == {"product_ids": "'zzz'"}


@pytest.mark.parametrize(
    "model_type, path, payload",
    [
        ("retrieval", "/v1/rank", {"buyer": BUYER, "product_ids": ["p1"]}),
        ("retrieval", "/v1/recommend", {"buyer": BUYER}),
        ("ranking", "/v1/retrieve", {"buyer": BUYER}),
    ],
)
def test_routes_of_a_missing_signature_are_404(
    apps: Callable[[str], Starlette], model_type: str, path: str, payload: dict
) -> None:
    """A bundle answers only the signatures it has, and says which those are."""
    status, body = call_app(apps(model_type), "POST", path, payload)
    assert status == 404 and body["code"] == "no_signature"


MALFORMED = [
    ("POST", "/v1/retrieve", b"{not json", 400),
    ("POST", "/v1/retrieve", b"", 400),
    ("POST", "/v1/retrieve", b"\xff\xfe\x00", 400),
    ("POST", "/v1/retrieve", b"[" * 50_000, 400),
    ("POST", "/v1/retrieve", b"[]", 422),
    ("POST", "/v1/retrieve", b"null", 422),
    ("POST", "/v1/retrieve", b'{"buyer": {"buyer": "b1"}, "k": "ten"}', 422),
    ("POST", "/v1/retrieve", b'{"buyer": {"buyer": "b1"}, "k": -1}', 422),
    ("POST", "/v1/retrieve", b'{"buyer": {"buyer": "b1"}, "k": %d}' % (MAX_K + 1), 422),
    ("POST", "/v1/retrieve", b'{"buyer": {"buyer": "b1"}, "k": 1e308}', 422),
    ("POST", "/v1/retrieve", b'{"buyer": {"buyer": "b1"}, "k": NaN}', 422),
    ("POST", "/v1/retrieve", b'{"buyer": {"buyer": "b1"}, "exclude": [[1], [2]]}', 422),
    ("POST", "/v1/retrieve", b'{"buyer": {"buyer": {"id": 1}}}', 422),
    ("POST", "/v1/retrieve", b'{"buyer": {"nonexistent": 1}}', 422),
    ("POST", "/v1/retrieve", b'{"buyer": {"ts": "not a time"}, "k": 3}', 200),  # unparseable time: a missing value
    ("POST", "/v1/retrieve", b'{"buyers": []}', 422),
    ("POST", "/v1/retrieve", b'{"buyers": [%s]}' % b",".join([b"{}"] * (MAX_BUYERS + 1)), 422),
    ("POST", "/v1/rank", b'{"buyer": {"buyer": "b1"}, "product_ids": []}', 422),
    ("POST", "/v1/rank", b'{"buyer": {"buyer": "b1"}}', 422),
    ("POST", "/v1/rank", b'{"buyer": {"buyer": "b1"}, "product_ids": [null]}', 422),
    ("POST", "/v1/rank", b'{"buyer": {"buyer": "b1"}, "product_ids": ["nope", "p1"]}', 422),
    ("POST", "/v1/recommend", b'{"buyer": {"buyer": "b1"}, "candidates": 0}', 422),
    # Lone surrogates in a feature value, a feature name and a product id: not Unicode, so refused at the door.
    ("POST", "/v1/retrieve", b'{"buyer": {"buyer": "\\ud800"}}', 422),
    ("POST", "/v1/retrieve", b'{"buyer": {"\\udfff": 1}}', 422),
    ("POST", "/v1/rank", b'{"buyer": {"buyer": "b1"}, "product_ids": ["p1\\udc00"]}', 422),
    # 64 buyers × 10,000 ids is 640,000 pairs; each count alone is within its limit.
    (
        "POST",
        "/v1/rank",
        b'{"buyers": [%s], "product_ids": [%s]}'
        % (b",".join([b"{}"] * 64), b",".join(b"%d" % i for i in range(MAX_IDS))),
        413,
    ),
    ("POST", "/v1/retrieve", b'{"buyers": [%s], "k": %d}' % (b",".join([b"{}"] * MAX_BUYERS), MAX_K), 413),
    ("GET", "/v1/retrieve", b"", 405),
    ("POST", "/v1/health", b"", 405),
    ("GET", "/v2/retrieve", b"", 404),
    ("POST", "/", b"{}", 404),
]


@pytest.mark.parametrize("method, path, body, expected", MALFORMED)
def test_malformed_requests_get_the_intended_status(
    apps: Callable[[str], Starlette], method: str, path: str, body: bytes, expected: int
) -> None:
    """Every refusal is a JSON body with status, code and message; nothing reaches a 500."""
    status, answer = call_app(apps("multitask"), method, path, body=body)
    assert status == expected, answer
    if expected >= 400:
        assert answer["status"] == expected and answer["code"] and answer["message"]


def test_a_lone_surrogate_is_refused_naming_where_it_is(apps: Callable[[str], Starlette]) -> None:
    """The field path of the text that cannot be encoded is in the answer."""
    status, body = call_app(apps("multitask"), "POST", "/v1/retrieve", body=b'{"buyer": {"buyer": "\\ud800x"}}')
    assert status == 422 and body["fields"] == {"buyer.buyer": body["fields"]["buyer.buyer"]}
    assert "surrogate" in body["message"]
    good = b'{"buyer": {"buyer": "\\ud83d\\ude00"}, "k": 3}'  # a valid pair (an emoji) is just text
    assert call_app(apps("multitask"), "POST", "/v1/retrieve", body=good)[0] == 200


@pytest.mark.parametrize(
    ("path", "payload", "limit"),
    [
        ("/v1/rank", {"buyers": [BUYER] * 11, "product_ids": ["p1"] * (MAX_PAIRS // 10)}, "rank_pairs"),
        ("/v1/rank", {"buyers": [BUYER] * 2, "product_ids": [["p1"] * MAX_IDS] * 2}, None),
        ("/v1/retrieve", {"buyers": [BUYER] * 11, "k": MAX_RESULTS // 10}, "retrieve_results"),
        ("/v1/recommend", {"buyers": [BUYER] * 11, "k": 1, "candidates": MAX_RESULTS // 10}, "retrieve_results"),
    ],
)
def test_work_per_request_is_bounded_by_the_product_of_its_counts(
    apps: Callable[[str], Starlette], path: str, payload: dict, limit: str | None
) -> None:
    """buyers × ids (rank) and buyers × k (retrieve, recommend) are limited, not only each count; 413 names it."""
    status, body = call_app(apps("multitask"), "POST", path, payload)
    if limit is None:
        assert status == 200, body
        return
    assert status == 413 and body["code"] == "too_much_work" and limit in body["message"], body


def test_an_oversized_body_is_413_before_it_is_parsed(apps: Callable[[str], Starlette]) -> None:
    """The declared length alone is enough to refuse it."""
    status, body = call_app(apps("multitask"), "POST", "/v1/retrieve", body=b" " * (MAX_BODY_BYTES + 1))
    assert status == 413 and body["code"] == "body_too_large"


def test_retrieve_with_k_above_the_catalog_returns_the_whole_catalog(
    apps: Callable[[str], Starlette], bundles: Callable[[str], Bundle]
) -> None:
    """k may exceed the catalog: every product comes back once, best first."""
    status, body = call_app(apps("multitask"), "POST", "/v1/retrieve", {"buyer": BUYER, "k": MAX_K})
    assert status == 200 and sorted(body["product_ids"]) == sorted(bundles("multitask").product_ids.tolist())
    assert body["scores"] == sorted(body["scores"], reverse=True)
