"""What splitting the rating head's first layer over distinct rows would save per training step.

Why: on the tutorial most of a step's arithmetic is the rating head (B × 64 → 256 → 128 → 1 at B = 8192),
and its first layer multiplies each row's concatenated [query, product] embedding. That product splits
exactly: W·[q; c] = W_q·q + W_c·c, and q and c take only Uq and Uc distinct values in a batch (about 900
and 1,200 of 8,192 on MovieLens), so the layer can run on the distinct rows and gather, as the retrieval
loss already does. This script times one training step (forward + backward) of the engine's model both
ways on a real batch and checks that loss and gradients agree; it changes no engine file (the change would
go in tandem/models/two_tower.py).

    .venv/bin/python bench/rating_head_split.py
"""

from __future__ import annotations

import argparse

import torch
from _common import TUTORIAL_SPEC, machine_line, median, spread, timed
from torch import nn

from tandem.models.two_tower import Batch, TwoTowerModel
from tandem.run import prepare
from tandem.spec import load_spec
from tandem.training.loop import make_batch


def split_rating_loss(model: TwoTowerModel, batch: Batch) -> torch.Tensor:
    """model.compute_loss's total, with the rating head's first layer applied to distinct rows."""
    queries = model.query_tower(batch.query_inputs)
    candidates = model.candidate_tower(batch.candidate_inputs)
    retrieval = model.retrieval_task(
        queries, candidates, batch.query_index, batch.candidate_index, batch.candidate_counts
    )
    first, rest = model.rating_head[0], model.rating_head[1:]
    d = queries.shape[1]
    hidden = nn.functional.linear(queries, first.weight[:, :d])[batch.query_index]
    hidden = hidden + nn.functional.linear(candidates, first.weight[:, d:], first.bias)[batch.candidate_index]
    raw = rest(hidden).squeeze(1)
    ranking = model.ranking_task(raw, batch.labels)
    return model.retrieval_weight * retrieval + model.ranking_weight * ranking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    spec = load_spec(TUTORIAL_SPEC)
    assert spec.model.rating_head_input == "concat", "the split shown here is for the concat head input"
    _, trained, data = prepare(spec)
    model = trained.model
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[: spec.training.batch_size]
    batch = make_batch(data, data.train, order, None)

    def step(loss_fn):
        def run() -> None:
            model.zero_grad(set_to_none=True)
            loss_fn().backward()

        return run

    def current() -> torch.Tensor:
        return model.compute_loss(batch)[0]

    def split() -> torch.Tensor:
        return split_rating_loss(model, batch)

    step(current)()
    grads = [p.grad.clone() for p in model.parameters()]
    step(split)()
    gap = max(
        float((g - p.grad).abs().max() / (g.abs().max() + 1e-12))
        for g, p in zip(grads, model.parameters(), strict=True)
    )
    loss_gap = abs(float(current() - split())) / abs(float(current()))
    head_input = torch.randn(len(order), model.rating_head[0].in_features, requires_grad=True)

    def head_only() -> torch.Tensor:  # the floor of the current form: the head's own forward and backward
        return model.rating_head(head_input).sum()

    t_current, t_split, t_head = [], [], []
    for _ in range(args.reps):  # interleaved, so all see the same machine load
        t_current += timed(step(current), 1, warmup=0)
        t_split += timed(step(split), 1, warmup=0)
        t_head += timed(step(head_only), 1, warmup=0)
    print(f"# rating_head_split: {machine_line()}")
    print(
        f"batch {len(order)}: {len(batch.query_index.unique())} distinct queries, {len(batch.candidate_counts)} products"
    )
    print(f"  step as the engine does it     {spread(t_current)}")
    print(f"  first head layer on distinct   {spread(t_split)}")
    print(f"  rating head alone (B × 64 in)  {spread(t_head)}")
    print(f"  speed-up                       {median(t_current) / median(t_split):.2f}×")
    print(f"  relative gaps                  loss {loss_gap:.1e}, gradients {gap:.1e}")


if __name__ == "__main__":
    main()
