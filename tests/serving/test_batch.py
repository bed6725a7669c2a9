"""Batch recommendations: the same answers as retrieve, streamed in row groups, with past purchases excluded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tandem.cli import main
from tandem.errors import TandemError
from tandem.serving import recommender
from tandem.serving.batch import recommend_file
from tandem.serving.bundle import Bundle
from tests.export.cases import Case


@pytest.fixture
def buyers_file(tmp_path: Path) -> Path:
    """Buyers as a CSV with their features, an unknown buyer, and a column the model does not read."""
    frame = pd.DataFrame(
        {
            "buyer": [f"b{i}" for i in range(37)] + ["stranger"],
            "ts": [1_700_000_000 + 1000 * i for i in range(38)],
            "region": ["north"] * 38,
        }
    )
    frame.to_csv(tmp_path / "buyers.csv", index=False)
    return tmp_path / "buyers.csv"


def test_batch_output_equals_retrieve_per_buyer(
    bundles: Callable[[str], Bundle], buyers_file: Path, tmp_path: Path
) -> None:
    """Long format, one row group per chunk, ranks from 1, and each buyer's rows are retrieve's answer."""
    bundle = bundles("multitask")
    out = tmp_path / "recs.parquet"
    counts = recommend_file(bundle, buyers_file, out, k=5, chunk_rows=10)
    assert counts == {"buyers": 38, "rows": 38 * 5, "fallbacks": 1, "listed": 0}
    assert pq.ParquetFile(out).num_row_groups == 4  # streamed: 10 + 10 + 10 + 8 buyers
    recs = pd.read_parquet(out)
    assert list(recs.columns) == ["buyer", "rank", "product_id", "score", "fallback"]
    buyers = pd.read_csv(buyers_file)
    for row in buyers.itertuples():
        expected = recommender.retrieve(bundle, [{"buyer": row.buyer, "ts": row.ts}], 5, [[]])[0]
        got = recs[recs["buyer"] == row.buyer].sort_values("rank")
        assert got["rank"].tolist() == [1, 2, 3, 4, 5]
        assert got["product_id"].tolist() == expected["product_ids"]
        assert got["score"].tolist() == pytest.approx(expected["scores"], abs=1e-5)
        fallback = got["fallback"].iloc[0]
        assert (None if pd.isna(fallback) else fallback) == expected["fallback"]


def test_past_purchases_are_excluded(
    cases: Callable[[str], Case], bundles: Callable[[str], Bundle], tmp_path: Path
) -> None:
    """With the spec's transactions as the purchase history, no buyer gets a product they bought."""
    case = cases("multitask")
    frame = case.interactions.frame
    buyers = pd.DataFrame({"buyer": frame["buyer"].unique()})
    buyers.to_parquet(tmp_path / "buyers.parquet", index=False)
    out = tmp_path / "recs.parquet"
    recommend_file(bundles("multitask"), tmp_path / "buyers.parquet", out, k=5, purchases="spec")
    recs = pd.read_parquet(out)
    bought = set(zip(frame["buyer"], frame["product"], strict=True))
    assert len(recs) == 5 * len(buyers)
    assert not any((b, p) in bought for b, p in zip(recs["buyer"], recs["product_id"], strict=True))


def test_a_buyers_file_without_model_columns_is_refused(bundles: Callable[[str], Bundle], tmp_path: Path) -> None:
    """The error lists the columns the model reads and the ones the file has."""
    pd.DataFrame({"customer": ["b1"]}).to_csv(tmp_path / "buyers.csv", index=False)
    with pytest.raises(TandemError, match=r"none of the buyer feature columns \(buyer, ts\).*it has: customer"):
        recommend_file(bundles("multitask"), tmp_path / "buyers.csv", tmp_path / "out.parquet")


def test_the_recommend_command_writes_the_file(cases: Callable[[str], Case], buyers_file: Path, tmp_path: Path) -> None:
    """`tandem recommend BUNDLE --buyers FILE --k K --out FILE --exclude-purchased` runs end to end."""
    out = tmp_path / "cli.parquet"
    args = ["recommend", str(cases("multitask").bundle), "--buyers", str(buyers_file), "--k", "3", "--out", str(out)]
    assert main([*args, "--exclude-purchased", "--quiet"]) == 0
    assert len(pd.read_parquet(out)) == 3 * 38


def test_the_recommend_command_refuses_a_ranking_bundle(
    cases: Callable[[str], Case], buyers_file: Path, tmp_path: Path
) -> None:
    """A ranking-only bundle cannot retrieve; the command says so and exits 1."""
    args = [
        "recommend",
        str(cases("ranking").bundle),
        "--buyers",
        str(buyers_file),
        "--out",
        str(tmp_path / "x.parquet"),
    ]
    assert main([*args, "--quiet"]) == 1


def test_shards_split_the_buyers_and_together_give_the_whole_file(
    cases: Callable[[str], Case], buyers_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--shard i/3` for i = 0, 1, 2: consecutive runs of the buyers (12 + 13 + 13 of 38), no buyer twice, and
    together the rows of the unsharded run; a shard outside 0 ≤ i < n is refused with a message."""
    bundle = str(cases("multitask").bundle)
    args = ["recommend", bundle, "--buyers", str(buyers_file), "--k", "3", "--quiet", "--out"]
    assert main([*args, str(tmp_path / "all.parquet")]) == 0
    parts = []
    for i in range(3):
        assert main([*args, str(tmp_path / f"part-{i}.parquet"), "--shard", f"{i}/3"]) == 0
        parts.append(pd.read_parquet(tmp_path / f"part-{i}.parquet"))
    assert [p["buyer"].nunique() for p in parts] == [12, 13, 13]  # 38·i//3 … 38·(i+1)//3
    names = pd.read_csv(buyers_file)["buyer"].tolist()
    assert [b for p in parts for b in dict.fromkeys(p["buyer"])] == names
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), pd.read_parquet(tmp_path / "all.parquet"))
    assert main([*args, str(tmp_path / "x.parquet"), "--shard", "3/3"]) == 1
    assert "--shard 3/3: want i/n with 0 <= i < n" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, str(tmp_path / "x.parquet"), "--shard", "half"])
    assert "'half' is not I/N" in capsys.readouterr().err
