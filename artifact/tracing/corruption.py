"""The corruption's noise, the mean over noise samples, and which cells the corruption cannot reach: shared by both
tracing paths.

Every corrupted row of sample s gets the same Gaussian noise on the subject's token embeddings in every forward pass
of a fact (so every cell and the low score see the same noise). Where that noise comes from is the trace setting
`noise_streams`:
- "rome": ROME's single stream, `RandomState(seed).randn(samples, subject_len, d_model)`: the samples are
  consecutive slices of one stream, and facts of different subject lengths see overlapping slices of it;
- "per_sample": sample s draws from its own stream `np.random.default_rng([seed, s])`, `standard_normal((subject_len,
  d_model))`: the samples are independent draws, so the spread of a cell over its samples estimates the noise's
  share of the run's uncertainty. Every fact of the run shares the streams (as in ROME); a shorter subject sees a
  prefix of a longer one's noise for the same sample.
Both are float64 and scaled by `noise`. In a causal model the corruption cannot reach tokens before the subject, so
restoring them changes nothing: those cells get the low score without a forward.
"""

from __future__ import annotations

import numpy as np
import torch

from artifact.core.names import NOISE_STREAMS


def standard_noise(samples: int, subject_len: int, d_model: int, seed: int, streams: str = "rome") -> np.ndarray:
    """[samples, subject_len, d_model] float64 standard-normal draws of the corruption (see the module docstring)."""
    if streams == "rome":
        return np.random.RandomState(seed).randn(samples, subject_len, d_model)
    if streams == "per_sample":
        if seed < 0:
            raise ValueError(f"per-sample noise streams need a seed >= 0; got {seed}")
        return np.stack([np.random.default_rng([seed, s]).standard_normal((subject_len, d_model))
                         for s in range(samples)])
    raise ValueError(f"noise_streams must be one of {', '.join(NOISE_STREAMS)}; got {streams!r}")


def noise_delta(samples: int, subject_len: int, d_model: int, noise: float, seed: int,
                streams: str = "rome") -> torch.Tensor:
    """The corruption added to the subject's token embeddings: `noise * standard_noise(...)` in float64.

    [samples, subject_len, d_model]. Every forward of a fact adds this same array (ROME: a fresh RandomState per
    forward)."""
    return noise * torch.from_numpy(standard_noise(samples, subject_len, d_model, seed, streams))


def sample_mean(per_sample: np.ndarray) -> np.ndarray:
    """The mean over the first axis (noise samples), summed in sample order: the one rule by which every stored mean
    follows from its stored per-sample values, so `sample_mean(x_per_sample) == x` holds bitwise."""
    per_sample = np.asarray(per_sample, dtype=np.float64)
    total = per_sample[0].copy()
    for row in per_sample[1:]:
        total += row
    return total / per_sample.shape[0]


def split_cells(T: int, L: int, subject_start: int, positions, low: np.ndarray, progress):
    """[samples, pos, layer] per-sample score arrays (P and log P; NaN where untraced, the low score before the
    subject) and the tokens to run.

    `positions` are the traced tokens; `low` is [2, samples]: the corrupted run's P and log P per sample; `progress`
    is told of the cells filled here."""
    low = np.asarray(low, dtype=np.float64)
    S = low.shape[1]
    scores = np.full((S, T, L), np.nan)
    logprobs = np.full((S, T, L), np.nan)
    tokens = []
    for t in positions:
        if t < subject_start:  # before the subject: corrupted and clean states are equal, restoring is a no-op
            scores[:, t, :] = low[0][:, None]
            logprobs[:, t, :] = low[1][:, None]
            if progress is not None:
                progress(L)
        else:
            tokens.append(t)
    return scores, logprobs, tokens
