"""ROME's corruption, and which cells it cannot reach: shared by both tracing paths.

Every corrupted row gets the same Gaussian noise on the subject's token embeddings, drawn from `RandomState(seed)`
afresh for each forward pass (so every cell and the low score see the same noise). In a causal model the corruption
cannot reach tokens before the subject, so restoring them changes nothing: those cells get the low score without a
forward.
"""

from __future__ import annotations

import numpy as np
import torch


def noise_delta(samples: int, subject_len: int, d_model: int, noise: float, seed: int) -> torch.Tensor:
    """ROME's corruption: `noise * RandomState(seed).randn(samples, subject_len, d_model)` in float64.

    [samples, subject_len, d_model]. A fresh RandomState per forward means every forward sees this same array.
    """
    rs = np.random.RandomState(seed)
    return noise * torch.from_numpy(rs.randn(samples, subject_len, d_model))


def split_cells(T: int, L: int, subject_start: int, positions, low: tuple[float, float], progress):
    """[pos, layer] score arrays (NaN where untraced, the low score before the subject) and the tokens to run.

    `positions` are the traced tokens; `low` is (low P, low log P); `progress` is told of the cells filled here."""
    scores = np.full((T, L), np.nan)
    logprobs = np.full((T, L), np.nan)
    tokens = []
    for t in positions:
        if t < subject_start:  # before the subject: corrupted and clean states are equal, restoring is a no-op
            scores[t, :], logprobs[t, :] = low
            if progress is not None:
                progress(L)
        else:
            tokens.append(t)
    return scores, logprobs, tokens
