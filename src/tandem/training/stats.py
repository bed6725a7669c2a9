"""Weight statistics per model part: mean, deviation, extremes and a histogram, recorded each epoch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

HISTOGRAM_BINS = 20


@torch.no_grad()
def weight_statistics(module: nn.Module) -> dict[str, Any]:
    """Summary of all weights of `module` (embeddings, kernels and biases together)."""
    flat = (
        torch.cat([p.detach().reshape(-1).float().cpu() for p in module.parameters()])
        if any(True for _ in module.parameters())
        else torch.zeros(0)
    )
    if flat.numel() == 0:
        return {"count": 0}
    values = flat.numpy()
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
    }
