"""Request bodies of the model server, validated once at the boundary (pydantic), with limits that keep a request
bounded in memory and time. Every body takes either one `buyer` or a batch of `buyers`.

Values are strict: an id is a string or an integer, a feature value a string, number, boolean or null, and `k` an
integer (not "10"). Refusals are `RequestError`s with status 422 and the offending fields, or 413 when a request
asks for more work than one request may (MAX_PAIRS, MAX_RESULTS).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from tandem.jsontext import may_hold_surrogates, unencodable_path
from tandem.serving.errors import RequestError

MAX_BUYERS = 1024  # buyers in one batched request
MAX_K = 10_000  # results per buyer
MAX_IDS = 10_000  # product ids per buyer (rank) or excluded per buyer (retrieve, recommend)
MAX_BODY_BYTES = 16 * 1024 * 1024
# The work of one request, whatever its shape: buyers × product ids scored by rank, buyers × k results of
# retrieve and recommend. Each pair costs about 2 KB while it is scored, so these bound a request near 200 MB.
MAX_PAIRS = 100_000
MAX_RESULTS = 100_000

ProductId = StrictStr | StrictInt
FeatureValue = StrictStr | StrictInt | StrictFloat | StrictBool | None
BuyerFeatures = Annotated[dict[str, FeatureValue], Field(max_length=1000)]
Ids = Annotated[list[ProductId], Field(max_length=MAX_IDS)]


class _Body(BaseModel):
    """One `buyer` or a batch of `buyers` (not both); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    buyer: BuyerFeatures | None = None
    buyers: Annotated[list[BuyerFeatures], Field(min_length=1, max_length=MAX_BUYERS)] | None = None

    @model_validator(mode="after")
    def _one_buyer_or_a_batch(self) -> _Body:
        if (self.buyer is None) == (self.buyers is None):
            raise ValueError("give either 'buyer' (one buyer's features) or 'buyers' (a list of them)")
        return self

    @property
    def batched(self) -> bool:
        return self.buyers is not None

    def buyer_list(self) -> list[dict[str, Any]]:
        return self.buyers if self.buyers is not None else [self.buyer]

    def per_buyer(self, name: str, value: list[Any]) -> list[list[Any]]:
        """A flat id list applies to every buyer; a list of lists gives each buyer its own (same length as buyers)."""
        n = len(self.buyer_list())
        if value and isinstance(value[0], list):
            if len(value) != n:
                raise RequestError(
                    422,
                    "invalid_request",
                    f"'{name}' as a list of lists needs one list per buyer: {n} buyer(s), {len(value)} list(s)",
                    {name: f"expected {n} lists, got {len(value)}"},
                )
            return value
        return [value] * n

    def work(self) -> tuple[int, str]:
        """How much this request asks for, and the name of the limit that bounds it."""
        raise NotImplementedError


class RetrieveRequest(_Body):
    """`POST /v1/retrieve`: {"buyer": {...}, "k": 10, "exclude": [product ids]}."""

    k: StrictInt = Field(10, ge=1, le=MAX_K)
    exclude: Ids | Annotated[list[Ids], Field(max_length=MAX_BUYERS)] = Field(default_factory=list)

    def exclude_lists(self) -> list[list[Any]]:
        return self.per_buyer("exclude", self.exclude)

    def work(self) -> tuple[int, str]:
        return len(self.buyer_list()) * self.k, "retrieve_results"


class RankRequest(_Body):
    """`POST /v1/rank`: {"buyer": {...}, "product_ids": [...]}; a list of lists gives each buyer its own products."""

    product_ids: (
        Annotated[list[ProductId], Field(min_length=1, max_length=MAX_IDS)]
        | Annotated[
            list[Annotated[list[ProductId], Field(min_length=1, max_length=MAX_IDS)]],
            Field(min_length=1, max_length=MAX_BUYERS),
        ]
    )

    def product_lists(self) -> list[list[Any]]:
        return self.per_buyer("product_ids", self.product_ids)

    def work(self) -> tuple[int, str]:
        return sum(len(ids) for ids in self.product_lists()), "rank_pairs"


class RecommendRequest(RetrieveRequest):
    """`POST /v1/recommend`: retrieval's body plus `candidates`, how many retrieved products the ranking reorders,
    and `new_only`, the lists of products each known buyer never bought."""

    candidates: StrictInt | None = Field(None, ge=1, le=MAX_K)
    new_only: StrictBool = False

    def work(self) -> tuple[int, str]:
        return len(self.buyer_list()) * max(self.k, self.candidates or 0), "retrieve_results"


Request = TypeVar("Request", bound=_Body)
LIMITS = {"rank_pairs": MAX_PAIRS, "retrieve_results": MAX_RESULTS}
_WORK = {"rank_pairs": "buyers × product ids", "retrieve_results": "buyers × k"}


def check_work(body: _Body, limits: dict[str, int] = LIMITS) -> None:
    """Refuse (413) a request whose work passes its limit; the message gives both figures and the limit's name."""
    work, name = body.work()
    if work > limits[name]:
        raise RequestError(
            413,
            "too_much_work",
            f"the request asks for {work:,} {_WORK[name]}; the limit ({name}) is {limits[name]:,} per request: "
            "split it into smaller requests",
        )


_UNION_TAGS = {"str", "int", "float", "bool", "none"}


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and (part in _UNION_TAGS or part.startswith(("list[", "function-")))


def _field_errors(error: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in error.errors():
        # A union reports each of its members: name the field, and keep its first message.
        loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        fields.setdefault(loc or "(body)", msg)
    return fields


def parse_json(body: bytes) -> Any:
    """Decode a request body; anything but well-formed UTF-8 JSON is a 400."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestError(400, "invalid_json", f"the request body is not valid JSON: {e}") from None
    where = unencodable_path(payload) if may_hold_surrogates(body) else None
    if where is not None:
        message = "the text holds a lone surrogate (\\ud800–\\udfff), which is not valid Unicode"
        raise RequestError(422, "invalid_request", f"{where}: {message}", {where: message})
    return payload


def parse_request(model: type[Request], payload: Any) -> Request:
    """Validate a decoded body as `model`; raises RequestError (422) naming every bad field, 413 past a limit."""
    if not isinstance(payload, dict):
        raise RequestError(422, "invalid_request", f"the body must be a JSON object, got {type(payload).__name__}")
    try:
        body = model.model_validate(payload)
    except ValidationError as e:
        fields = _field_errors(e)
        summary = "; ".join(f"{k}: {v}" for k, v in list(fields.items())[:5])
        raise RequestError(422, "invalid_request", f"the request is not valid: {summary}", fields) from None
    check_work(body)
    return body
