"""The causal-tracing engine: tensors in, arrays out, no file I/O. `trace_fact` picks the path.

Semantics are ROME's `causal_trace.py` (see `reference.py` for the plain one-forward-per-cell form): every corrupted
row of noise sample s gets the same Gaussian noise on the subject's token embeddings in every forward pass (ROME's
one stream, or one stream per sample: `corruption.py`); restoring a cell overwrites the corrupted rows' state at
(token, layer) with the clean run's state. Both paths return per-sample values; the means are their `sample_mean`.

What the engine does differently, without changing the numbers beyond float rounding:
- the clean run is computed once and its states cached, instead of carried as row 0 of every forward;
- many cells share one forward: each cell is a group of `samples` rows with its own restorations;
- cells at tokens before the subject are set to the low score without a forward (the corruption cannot reach them
  in a causal model, so restoring them changes nothing);
- logits are computed at the last position only.

Two paths: the fast one (`fast.py`) for families with a layer stepper (each restored run recomputes only what the
restoration can change), the generic one (`hooks.py`) with forward hooks for any other model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from artifact.models.adapters import ModelAdapter
from artifact.models.stepping import stepper_for
from artifact.tracing.config import TraceConfig
from artifact.tracing.corruption import sample_mean
from artifact.tracing.fast import trace_fast
from artifact.tracing.hooks import trace_generic


PER_SAMPLE_ARRAYS = ("scores_per_sample", "logprobs_per_sample", "low_score_per_sample", "low_logprob_per_sample")


@dataclass
class TraceResult:
    """Output of one trace. Arrays are [pos, layer]; untraced cells are NaN."""

    scores: np.ndarray  # [pos, layer] mean P(target) over corrupted rows with the cell restored
    logprobs: np.ndarray  # [pos, layer] mean log P(target) over corrupted rows with the cell restored (logit-linear)
    low_score: float  # mean P(target), corrupted, nothing restored
    high_score: float  # P(target), clean run
    low_logprob: float
    high_logprob: float
    input_ids: np.ndarray  # [pos]
    subject_range: tuple[int, int]
    target_id: int
    config: TraceConfig
    # per noise sample (means above = `corruption.sample_mean` of these, bitwise): [samples, pos, layer] and [samples]
    scores_per_sample: np.ndarray | None = field(default=None, kw_only=True)
    logprobs_per_sample: np.ndarray | None = field(default=None, kw_only=True)
    low_score_per_sample: np.ndarray | None = field(default=None, kw_only=True)
    low_logprob_per_sample: np.ndarray | None = field(default=None, kw_only=True)

    @property
    def indirect_effects(self) -> np.ndarray:
        """[pos, layer] IE = P(target | corrupted, cell restored) - P(target | corrupted)."""
        return self.scores - self.low_score

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for `numpy.savez` (the config goes beside, as JSON); the per-sample arrays when present."""
        per_sample = {name: getattr(self, name) for name in PER_SAMPLE_ARRAYS if getattr(self, name) is not None}
        return {
            "scores": self.scores,
            "logprobs": self.logprobs,
            "low_score": np.float64(self.low_score),
            "high_score": np.float64(self.high_score),
            "low_logprob": np.float64(self.low_logprob),
            "high_logprob": np.float64(self.high_logprob),
            "input_ids": self.input_ids,
            "subject_range": np.asarray(self.subject_range, dtype=np.int64),
            "target_id": np.int64(self.target_id),
            **per_sample,
        }


def _validate(model: torch.nn.Module, input_ids: torch.Tensor, subject_range: tuple[int, int], target_id: int) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 1 or input_ids.dtype != torch.long:
        raise ValueError(
            "input_ids must be a 1-D LongTensor without batch dimension, e.g. tokenizer(prompt, return_tensors='pt')"
            f"['input_ids'][0]; got {type(input_ids).__name__} "
            f"{tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else ''}"
        )
    n = int(input_ids.shape[0])
    if n == 0:
        raise ValueError("input_ids is empty: the prompt must have at least one token.")
    b, e = subject_range
    if not (0 <= b < e <= n):
        raise ValueError(f"subject_range {subject_range} must satisfy 0 <= b < e <= {n} (the prompt's length).")
    vocab = model.get_output_embeddings().weight.shape[0]
    if not 0 <= target_id < vocab:
        raise ValueError(f"target_id {target_id} is outside the model's vocabulary [0, {vocab}).")


def trace_fact(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    subject_range: tuple[int, int],
    target_id: int,
    config: TraceConfig,
    adapter: ModelAdapter | None = None,
    progress=None,
) -> TraceResult:
    """Causal trace of one fact: scores [pos, layer] of restoring each (token, layer) state of `config.kind`.

    `input_ids` is [pos] (no batch dimension), `subject_range` the corrupted tokens [b, e), `target_id` the answer.
    `progress`, if given, is called with the number of cells finished after each forward.
    """
    _validate(model, input_ids, subject_range, target_id)
    adapter = adapter or ModelAdapter(model)
    T = int(input_ids.shape[0])
    positions = range(T) if config.positions is None else config.positions
    bad = [p for p in positions if not 0 <= p < T]
    if bad:
        raise ValueError(f"positions {bad} are outside the prompt's {T} tokens.")
    stepper = stepper_for(model, adapter, T)
    if stepper is None:
        (high_p, high_lp), low, scores, logprobs = trace_generic(
            model, adapter, input_ids, subject_range, target_id, config, positions, progress)
    else:
        (high_p, high_lp), low, scores, logprobs = trace_fast(
            stepper, adapter, input_ids, subject_range, target_id, config, positions, progress)
    return TraceResult(
        scores=sample_mean(scores),
        logprobs=sample_mean(logprobs),
        low_score=float(sample_mean(low[0])),
        high_score=high_p,
        low_logprob=float(sample_mean(low[1])),
        high_logprob=high_lp,
        input_ids=input_ids.cpu().numpy(),
        subject_range=(int(subject_range[0]), int(subject_range[1])),
        target_id=int(target_id),
        config=config,
        scores_per_sample=scores,
        logprobs_per_sample=logprobs,
        low_score_per_sample=low[0],
        low_logprob_per_sample=low[1],
    )
