"""Request validation: one buyer or a batch, strict types, limits, per-buyer lists; refusals name the field."""

from __future__ import annotations

import pytest

from tandem.serving.errors import RequestError
from tandem.serving.requests import MAX_K, RankRequest, RecommendRequest, RetrieveRequest, parse_json, parse_request


def test_a_single_buyer_with_defaults() -> None:
    """k defaults to 10 and exclude to nothing; a single buyer is not batched."""
    request = parse_request(RetrieveRequest, {"buyer": {"buyer": "b1"}})
    assert (request.k, request.batched, request.buyer_list(), request.exclude_lists()) == (
        10,
        False,
        [{"buyer": "b1"}],
        [[]],
    )


def test_a_flat_list_applies_to_every_buyer_and_a_list_of_lists_to_each() -> None:
    """Flat exclude/product_ids are shared; nested ones must give one list per buyer."""
    shared = parse_request(RetrieveRequest, {"buyers": [{}, {}], "exclude": ["p1", 2]})
    assert shared.exclude_lists() == [["p1", 2], ["p1", 2]]
    each = parse_request(RankRequest, {"buyers": [{}, {}], "product_ids": [["p1"], ["p2", "p3"]]})
    assert each.product_lists() == [["p1"], ["p2", "p3"]]
    with pytest.raises(RequestError, match="one list per buyer: 2 buyer"):
        parse_request(RankRequest, {"buyers": [{}, {}], "product_ids": [["p1"]]}).product_lists()


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "(body)"),
        ({"buyer": {}, "buyers": [{}]}, "(body)"),
        ({"buyer": "b1"}, "buyer"),
        ({"buyer": {"buyer": [1, 2]}}, "buyer.buyer"),
        ({"buyer": {"buyer": {"nested": 1}}}, "buyer.buyer"),
        ({"buyers": []}, "buyers"),
        ({"buyer": {}, "k": "10"}, "k"),
        ({"buyer": {}, "k": 0}, "k"),
        ({"buyer": {}, "k": MAX_K + 1}, "k"),
        ({"buyer": {}, "k": 10**30}, "k"),
        ({"buyer": {}, "k": 2.5}, "k"),
        ({"buyer": {}, "k": True}, "k"),
        ({"buyer": {}, "exclude": "p1"}, "exclude"),
        ({"buyer": {}, "exclude": [1.5]}, "exclude.0"),
        ({"buyer": {}, "kk": 3}, "kk"),
    ],
)
def test_malformed_retrieve_bodies_are_422_naming_the_field(payload: dict, field: str) -> None:
    """Each malformed body is refused with the path of the field at fault."""
    with pytest.raises(RequestError) as caught:
        parse_request(RetrieveRequest, payload)
    assert caught.value.status == 422
    assert field in caught.value.fields, caught.value.fields


@pytest.mark.parametrize("product_ids", [[], [[]], None, [None], [{"id": 1}]])
def test_rank_needs_product_ids(product_ids: object) -> None:
    """Empty, null or non-id product lists are refused."""
    with pytest.raises(RequestError) as caught:
        parse_request(RankRequest, {"buyer": {}, "product_ids": product_ids})
    assert caught.value.status == 422 and any(k.startswith("product_ids") for k in caught.value.fields)


def test_recommend_takes_a_candidate_count() -> None:
    """`candidates` is optional and bounded like k."""
    assert parse_request(RecommendRequest, {"buyer": {}, "candidates": 50}).candidates == 50
    with pytest.raises(RequestError):
        parse_request(RecommendRequest, {"buyer": {}, "candidates": 0})


@pytest.mark.parametrize("body", [b"{", b"", b"\xff\xfe", b"[" * 100_000, b'{"k": 1' + b"0" * 5000 + b"}"])
def test_bodies_that_are_not_json_are_400(body: bytes) -> None:
    """Truncated, empty, non-UTF-8, absurdly nested and oversized-number bodies are all a 400."""
    with pytest.raises(RequestError) as caught:
        parse_json(body)
    assert caught.value.status == 400 and caught.value.code == "invalid_json"


@pytest.mark.parametrize("payload", [[], "buyer", 3, None])
def test_a_body_that_is_not_an_object_is_422(payload: object) -> None:
    """JSON arrays, strings, numbers and null are not request bodies."""
    with pytest.raises(RequestError, match="must be a JSON object"):
        parse_request(RetrieveRequest, payload)
