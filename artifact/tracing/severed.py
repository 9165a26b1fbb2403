"""The severed-path experiment (ROME Fig. 3, `trace_with_repatch`): restore the hidden state at (token t, layer l)
while the MLP (or attention) outputs at token t in all later layers stay frozen at their corrupted values.

The difference between the plain curve and a severed one is how much of the hidden state's effect at the last subject
token flows through later MLPs (or attention) at that token. No file I/O here; `runner.py` stores the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from artifact.core.names import Kind
from artifact.models.adapters import ModelAdapter
from artifact.tracing import Patch, TraceConfig
from artifact.tracing.hooks import prepare_context, run_groups

SEVERABLE: tuple[Kind, ...] = ("mlp", "attn")


@dataclass
class SeveredResult:
    """Per-layer scores of restoring the hidden state at one token: plain, and with each kind's path severed."""

    token: int  # the restored token (default: the last subject token)
    scores: dict[str, np.ndarray]  # "plain" | "mlp" | "attn" -> [layer] mean P(target)
    logprobs: dict[str, np.ndarray]  # same keys -> [layer] mean log P(target)
    low_score: float
    high_score: float
    low_logprob: float
    high_logprob: float

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for `numpy.savez`: scores_<variant>, logprobs_<variant> [layer], scalars."""
        arrays: dict[str, np.ndarray] = {"token": np.int64(self.token)}
        for variant in self.scores:
            arrays[f"scores_{variant}"] = self.scores[variant]
            arrays[f"logprobs_{variant}"] = self.logprobs[variant]
        for name in ("low_score", "high_score", "low_logprob", "high_logprob"):
            arrays[name] = np.float64(getattr(self, name))
        return arrays


def severed_groups(token: int, num_layers: int, sever: Kind | None) -> list[list[Patch]]:
    """One patch group per layer l: restore the hidden state (block output) at (token, l) from the clean run and,
    if `sever` is given, freeze `sever`'s output at `token` in layers l+1 .. L-1 at its corrupted value.

    ROME freezes the kind at every layer; at layers <= l the patched run equals the corrupted run there, so freezing
    those is a no-op and only the later layers matter.
    """
    groups = []
    for layer in range(num_layers):
        patches = [Patch("hidden", layer, token, "clean")]
        if sever is not None:
            patches += [Patch(sever, later, token, "corrupt") for later in range(layer + 1, num_layers)]
        groups.append(patches)
    return groups


def severed_trace(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    subject_range: tuple[int, int],
    target_id: int,
    config: TraceConfig,
    adapter: ModelAdapter | None = None,
    token: int | None = None,
    severs: Sequence[Kind] = SEVERABLE,
    progress=None,
) -> SeveredResult:
    """Hidden-state restoration at `token` (default: last subject token, e - 1) for every layer: plain and with each
    kind in `severs` frozen at its corrupted values in later layers. `input_ids` is [pos]; results are [layer].

    Uses the engine's noise, seed, samples and batch size from `config` (its `kind`, `window`, `positions` are unused).
    """
    adapter = adapter or ModelAdapter(model)
    b, e = subject_range
    token = e - 1 if token is None else int(token)
    if not 0 <= token < int(input_ids.shape[0]):
        raise ValueError(f"token {token} is outside the prompt's {int(input_ids.shape[0])} tokens.")
    for sever in severs:
        if sever not in SEVERABLE:
            raise ValueError(f"can only sever {', '.join(SEVERABLE)} paths; got {sever!r}")
    L = adapter.num_layers
    ctx, (high_p, high_lp), (low_p, low_lp) = prepare_context(
        model, adapter, input_ids, subject_range, target_id, config, corrupt_kinds=tuple(severs)
    )
    variants: list[tuple[str, Kind | None]] = [("plain", None)] + [(s, s) for s in severs]
    groups = [g for _, sever in variants for g in severed_groups(token, L, sever)]
    probs, logps = run_groups(ctx, groups, config.batch_size, progress)
    scores = {name: probs[i * L : (i + 1) * L].copy() for i, (name, _) in enumerate(variants)}
    logprobs = {name: logps[i * L : (i + 1) * L].copy() for i, (name, _) in enumerate(variants)}
    return SeveredResult(token, scores, logprobs, low_p, high_p, low_lp, high_lp)


def severed_cells(num_layers: int, severs: Sequence[Kind] = SEVERABLE) -> int:
    """Number of patch groups (progress units) of one severed trace."""
    return num_layers * (1 + len(severs))
