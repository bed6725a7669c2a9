"""The exported ranker graph, run with ONNX Runtime: scoring through the same graph in evaluation and in
serving makes their lists the same, and serving needs no torch. Training it is :mod:`tandem.recommend.ranker`.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

INPUT, OUTPUT = "pair_features", "score"


class Ranker:
    """Scores pair features with the exported graph (ONNX Runtime, one thread per call as serving does)."""

    def __init__(self, graph: bytes) -> None:
        self.graph = graph
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def score(self, features: np.ndarray, batch: int = 65_536) -> np.ndarray:
        """[n] float32 scores of [n, F] features."""
        parts = [
            self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(features[i : i + batch], np.float32)})[0]
            for i in range(0, len(features), batch)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
