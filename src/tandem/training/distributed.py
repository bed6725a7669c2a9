"""Data-parallel training over torch.distributed: each rank trains on its share of every global batch.

Why: one process trains on one machine's cores; with N processes (`tandem train SPEC --nproc N`, or
`torchrun` on several machines) the batch rows are split among them. The loss stays the single-process
loss: every rank all-gathers the other ranks' distinct candidate embeddings (with their gradient, so a
candidate embedded on one rank learns from the rows of all) and takes the in-batch softmax over the global
batch's candidates with their global counts; the mean-reduced losses are weighted by each rank's share of
the rows, and the parameter gradients are summed across ranks before every (identical) optimiser step.
Every rank builds the same model from the same seed and reads the same shuffle, so the batches, the
candidates and their order are those of one process with the same global batch.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def world() -> tuple[int, int]:
    """(this process's rank, the number of ranks); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def join_from_environment(device: str) -> bool:
    """Join the process group a launcher described (torchrun's RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT);
    gloo on the CPU, NCCL on CUDA. Returns whether this process is one of several."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    cuda = device.startswith("cuda")
    if "OMP_NUM_THREADS" not in os.environ:  # the machine's cores shared among this machine's ranks
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def launch(nproc: int, entry: Callable[..., Any], *args: Any) -> Any:
    """Run `entry(*args)` in `nproc` processes on this machine, as torchrun does (torch's elastic agent, a
    rendezvous on a free loopback port); returns rank 0's result."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # A failing rank prints its own message; the agent's log of it is a traceback of torch's internals.
    for name in ("torch.distributed.elastic", "torch.multiprocessing.spawn"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{port}",
        run_id=f"tandem-{port}",
        max_restarts=0,
        monitor_interval=0.5,
    )
    return elastic_launch(config, entry)(*args)[0]


def shard(idx: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of a global batch's rows."""
    rank, size = world()
    n = len(idx)
    return idx[n * rank // size : n * (rank + 1) // size]


class _GatherRows(torch.autograd.Function):
    """All-gather of equally sized [m, d] blocks; the gradient of each block is summed over the ranks that used it."""

    @staticmethod
    def forward(ctx, block):
        parts = [torch.empty_like(block) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, block.contiguous())
        ctx.rows = len(block)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)  # all_reduce, not reduce_scatter: gloo has the former only
        rank = dist.get_rank()
        return grad[rank * ctx.rows : (rank + 1) * ctx.rows]


def _gather_padded(values: torch.Tensor, rows: int, fill: float) -> torch.Tensor:
    """All ranks' `values` [u, ...] padded to `rows` with `fill`, concatenated in rank order (no gradient)."""
    padded = torch.full((rows, *values.shape[1:]), fill, dtype=values.dtype, device=values.device)
    padded[: len(values)] = values
    parts = [torch.empty_like(padded) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, padded)
    return torch.cat(parts)


def global_candidates(
    embeddings: torch.Tensor,
    catalog_rows: torch.Tensor,
    counts: torch.Tensor,
    log_q: torch.Tensor | None,
    candidate_index: torch.Tensor,
    *,
    add_counts: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The global batch's distinct candidates from every rank's own, in catalog-row order as one process has them.

    embeddings: [u, d] this rank's distinct candidates; catalog_rows, counts, log_q: [u] their catalog rows,
    rows per candidate and log Q; candidate_index: [b] each local row's candidate. Counts add up across ranks,
    unless `add_counts` is off (catalog candidates: each is listed once, however many ranks list it). Returns (embeddings [U, d],
    each local row's global candidate [b], global counts [U], log Q [U] or None). A candidate several ranks hold
    takes the first one's embedding; its gradient reaches that rank, and the all-reduce of parameter gradients
    sums it with the rest.
    """
    rank, _ = world()
    sizes = _gather_padded(torch.tensor([len(catalog_rows)], device=catalog_rows.device), 1, 0).tolist()
    rows = max(sizes)
    pad = torch.zeros(rows - len(embeddings), embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    gathered = _GatherRows.apply(torch.cat([embeddings, pad]))
    all_rows = _gather_padded(catalog_rows, rows, -1)
    valid = all_rows >= 0
    all_rows, gathered = all_rows[valid], gathered[valid]
    all_counts = _gather_padded(counts, rows, 0)[valid]
    distinct, inverse = torch.unique(all_rows, return_inverse=True)
    positions = torch.arange(len(all_rows), device=all_rows.device)
    first = torch.full_like(distinct, len(all_rows)).scatter_reduce(0, inverse, positions, "amin")
    global_counts = (
        torch.zeros_like(distinct).index_add_(0, inverse, all_counts) if add_counts else torch.ones_like(distinct)
    )
    offset = sum(sizes[:rank])
    global_log_q = _gather_padded(log_q, rows, 0.0)[valid][first] if log_q is not None else None
    return gathered[first], inverse[offset + candidate_index], global_counts, global_log_q


def sum_gradients(model: nn.Module) -> None:
    """Sum every parameter's gradient across ranks in one all-reduce, so each rank's optimiser takes the step
    of the whole global batch (a sparse gradient travels dense and comes back sparse, by rows)."""
    params = list(model.parameters())
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.to_dense() for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    start = 0
    for p, g in zip(params, grads, strict=True):
        summed = flat[start : start + g.numel()].view_as(g)
        start += g.numel()
        p.grad = summed.to_sparse(sparse_dim=1) if p.grad is not None and p.grad.is_sparse else summed


def sum_values(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The per-rank logged values summed across ranks (each is already its rank's share of the batch's value)."""
    keys = sorted(values)
    stacked = torch.stack([values[k].detach().reshape(()).double() for k in keys])
    dist.all_reduce(stacked)
    return dict(zip(keys, stacked, strict=True))


def from_rank_zero(value: Any) -> Any:
    """Rank 0's `value` on every rank (a picklable object, e.g. a validation record)."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
