"""Causal tracing with symmetric token replacement instead of Gaussian noise (issue 30; Zhang and Nanda 2023).

The corrupted run is the prompt with its subject's tokens [b, e) replaced by another fact's subject of the same
length (text: its subject tokens; speech: its subject's unit span; partners from `pairing.py`). Restoring a cell
(token t, layer l) overwrites the corrupted run's `kind` output at t in the window of layers around l with the clean
run's, exactly as ROME's trace does with noise; the corruption is deterministic, so each cell is one row (no samples,
no seed). Metrics per cell: P(answer), log P(answer), and the logit difference logit(answer) - logit(partner's
answer), which is positive when the fact's own answer wins.

Pure: tensors in, arrays out. `trace_replacement` runs on the engine's fast path (`fast.FastTracer` with the
replaced prompt as its corrupted run) where the family has a layer stepper, else in hook-patched batches;
`replacement_reference` is the plain oracle, one forward per cell of the batch [clean prompt, replaced prompt] with
row 0's state copied into row 1 (ROME's layout). Cells before the subject get the corrupted run's values without a
forward: the two prompts agree there, so restoring changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from artifact.models.adapters import ModelAdapter, main_tensor
from artifact.models.stepping import stepper_for
from artifact.tracing.config import TraceConfig
from artifact.tracing.engine import TraceResult
from artifact.tracing.fast import FastTracer
from artifact.tracing.hooks import attached, final_logits


@dataclass
class ReplacementResult(TraceResult):
    """A trace under token replacement: TraceResult's P(answer) and log P arrays (one corrupted row per cell, so
    the config records samples=1 and noise=0), plus the logit difference to the partner's answer."""

    logit_diffs: np.ndarray  # [pos, layer] logit(target) - logit(partner target), cell restored; NaN where untraced
    low_logit_diff: float  # replaced prompt, nothing restored
    high_logit_diff: float  # clean prompt
    corrupted_ids: np.ndarray  # [pos] the replaced prompt
    partner_target_id: int

    def to_arrays(self) -> dict[str, np.ndarray]:
        """TraceResult's flat arrays plus the replacement's, for `numpy.savez`."""
        return {**super().to_arrays(), "logit_diffs": self.logit_diffs,
                "low_logit_diff": np.float64(self.low_logit_diff), "high_logit_diff": np.float64(self.high_logit_diff),
                "corrupted_ids": self.corrupted_ids, "partner_target_id": np.int64(self.partner_target_id)}


def replaced_prompt(input_ids: torch.Tensor, subject_range: tuple[int, int], partner_subject_ids: Sequence[int]
                    ) -> torch.Tensor:
    """[pos] the prompt with its subject's tokens [b, e) replaced by the partner's subject tokens (same count)."""
    b, e = subject_range
    partner = [int(i) for i in partner_subject_ids]
    if len(partner) != e - b:
        raise ValueError(f"the partner's subject has {len(partner)} tokens, this subject {e - b}: token replacement "
                         "needs a partner of the same length (artifact.tracing.pairing.pair_facts finds one)")
    out = input_ids.clone()
    out[b:e] = torch.tensor(partner, dtype=input_ids.dtype, device=input_ids.device)
    if torch.equal(out, input_ids):
        raise ValueError("the partner's subject tokens equal this subject's: the replacement would corrupt nothing")
    return out


def _metrics(logits: torch.Tensor, target_id: int, partner_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of fp32 logits [rows, vocab]: P(target), log P(target), logit(target) - logit(partner), float64."""
    probs = torch.softmax(logits, dim=-1)[:, target_id].double()
    logps = torch.log_softmax(logits, dim=-1)[:, target_id].double()
    diffs = logits[:, target_id].double() - logits[:, partner_id].double()
    return probs.cpu().numpy(), logps.cpu().numpy(), diffs.cpu().numpy()


def _check(model: torch.nn.Module, input_ids: torch.Tensor, subject_range: tuple[int, int], target_id: int,
           partner_target_id: int, positions: Sequence[int]) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 1 or input_ids.dtype != torch.long:
        raise ValueError("input_ids must be a 1-D LongTensor [pos] without batch dimension")
    T = int(input_ids.shape[0])
    b, e = subject_range
    if not 0 <= b < e <= T:
        raise ValueError(f"subject_range {subject_range} must satisfy 0 <= b < e <= {T} (the prompt's length)")
    vocab = model.get_output_embeddings().weight.shape[0]
    for name, token in (("target_id", target_id), ("partner_target_id", partner_target_id)):
        if not 0 <= token < vocab:
            raise ValueError(f"{name} {token} is outside the model's vocabulary [0, {vocab})")
    if target_id == partner_target_id:
        raise ValueError(f"the partner's answer token equals this fact's ({target_id}): token replacement needs a "
                         "partner with another answer (the logit difference would be 0)")
    bad = [p for p in positions if not 0 <= p < T]
    if bad:
        raise ValueError(f"positions {bad} are outside the prompt's {T} tokens")


def clean_states(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor, kind: str) -> torch.Tensor:
    """[layer, pos, d_model] the clean run's `kind` output (hidden, mlp, attn) of every layer: one forward, a hook
    per layer."""
    states: dict[int, torch.Tensor] = {}

    def keeper(layer: int):
        def keep(_module, _inputs, output):
            states[layer] = main_tensor(output)[0].detach().clone()
        return keep

    handles = [adapter.module(kind, layer).register_forward_hook(keeper(layer)) for layer in range(adapter.num_layers)]
    with attached(handles), torch.no_grad():
        model(input_ids=input_ids[None].to(adapter.embed.weight.device))
    return torch.stack([states[layer] for layer in range(adapter.num_layers)])


def _hooked_logits(model: torch.nn.Module, adapter: ModelAdapter, corrupted: torch.Tensor, clean: torch.Tensor,
                   config: TraceConfig, cells: Sequence[tuple[int, int]]) -> torch.Tensor:
    """[cells, vocab] last-position logits of the replaced prompt, one row per cell (token, layer) with the clean
    `kind` states [layer, pos, d_model] written at the token in the cell's window of layers."""
    L = adapter.num_layers
    handles = []
    for layer in range(L):
        rows = [r for r, (_, centre) in enumerate(cells) if layer in config.restored_layers(centre, L)]
        if not rows:
            continue
        tokens = [cells[r][0] for r in rows]

        def restore(_module, _inputs, output, rows=rows, tokens=tokens, layer=layer):
            h = main_tensor(output)
            h[rows, tokens] = clean[layer, tokens].to(h.dtype)
            return output

        handles.append(adapter.module(config.kind, layer).register_forward_hook(restore))
    with attached(handles), torch.no_grad():
        return final_logits(model, corrupted[None].repeat(len(cells), 1).to(adapter.embed.weight.device))


def trace_replacement(model: torch.nn.Module, input_ids: torch.Tensor, subject_range: tuple[int, int],
                      target_id: int, partner_subject_ids: Sequence[int], partner_target_id: int,
                      config: TraceConfig, adapter: ModelAdapter | None = None, fast: bool = True,
                      progress=None) -> ReplacementResult:
    """Causal trace of one fact [pos, layer] with its subject replaced by the partner's (config.kind, window,
    positions and batch_size as in `trace_fact`; samples, noise and seed are unused). fast=False: the hook path
    (what families without a layer stepper get). `progress`, if given, is called with the cells finished."""
    adapter = adapter or ModelAdapter(model)
    T, L = int(input_ids.shape[0]), adapter.num_layers
    positions = tuple(range(T)) if config.positions is None else config.positions
    _check(model, input_ids, subject_range, target_id, partner_target_id, positions)
    config = replace(config, samples=1, noise=0.0)
    device = adapter.embed.weight.device
    ids = input_ids.to(device)
    corrupted = replaced_prompt(ids, subject_range, partner_subject_ids)
    b = subject_range[0]
    tokens = [t for t in positions if t >= b]
    stepper = stepper_for(model, adapter, T) if fast else None
    cells = [(t, layer) for t in tokens for layer in range(L)]
    if stepper is not None:
        tracer = FastTracer(stepper, ids, subject_range, target_id, None, corrupt_ids=corrupted)
        clean_logits, corrupt_logits = tracer.cache.clean_logits, tracer.cache.corrupt_logits
        per_chunk, parts = max(1, config.batch_size), []
        for t in tokens:
            for start in range(0, L, per_chunk):
                layers = list(range(start, min(L, start + per_chunk)))
                parts.append(tracer.run_token_logits(config, t, layers))
                if progress is not None:
                    progress(len(layers))
    else:
        with torch.no_grad():
            clean_logits = final_logits(model, ids[None])
            corrupt_logits = final_logits(model, corrupted[None])
        clean = clean_states(model, adapter, ids, config.kind)
        parts = []
        for start in range(0, len(cells), config.batch_size):
            chunk = cells[start:start + config.batch_size]
            parts.append(_hooked_logits(model, adapter, corrupted, clean, config, chunk))
            if progress is not None:
                progress(len(chunk))
    high = _metrics(clean_logits, target_id, partner_target_id)
    low = _metrics(corrupt_logits, target_id, partner_target_id)
    arrays = [np.full((T, L), np.nan) for _ in range(3)]  # P, log P, logit difference
    for t in positions:
        if t < b:  # before the subject both prompts agree: restoring changes nothing
            for array, value in zip(arrays, low):
                array[t, :] = value[0]
    if cells:
        values = _metrics(torch.cat(parts), target_id, partner_target_id)
        rows, cols = zip(*cells)
        for array, value in zip(arrays, values):
            array[list(rows), list(cols)] = value
    if progress is not None and len(positions) > len(tokens):
        progress((len(positions) - len(tokens)) * L)
    return ReplacementResult(
        scores=arrays[0], logprobs=arrays[1], low_score=float(low[0][0]), high_score=float(high[0][0]),
        low_logprob=float(low[1][0]), high_logprob=float(high[1][0]), input_ids=input_ids.cpu().numpy(),
        subject_range=(int(subject_range[0]), int(subject_range[1])), target_id=int(target_id), config=config,
        logit_diffs=arrays[2], low_logit_diff=float(low[2][0]), high_logit_diff=float(high[2][0]),
        corrupted_ids=corrupted.cpu().numpy(), partner_target_id=int(partner_target_id),
    )


def replacement_reference(model: torch.nn.Module, input_ids: torch.Tensor, subject_range: tuple[int, int],
                          target_id: int, partner_subject_ids: Sequence[int], partner_target_id: int,
                          config: TraceConfig) -> dict[str, np.ndarray | float]:
    """The same numbers cell by cell, ROME's way: per cell one forward of [clean prompt, replaced prompt] whose row 1
    gets row 0's `kind` output at the cell's token in the window of layers. scores/logprobs/logit_diffs [pos, layer]
    (config.positions, default all; others NaN), low_* from the replaced prompt and high_* from the clean one."""
    adapter = ModelAdapter(model)
    T, L = int(input_ids.shape[0]), adapter.num_layers
    device = adapter.embed.weight.device
    batch = torch.stack([input_ids, replaced_prompt(input_ids, subject_range, partner_subject_ids)]).to(device)

    def run(restore: list[tuple[int, int]]) -> tuple[np.ndarray, ...]:
        def copy_row0(token: int):
            def hook(_module, _inputs, output):
                h = main_tensor(output)
                h[1, token] = h[0, token]
                return output
            return hook

        handles = [adapter.module(config.kind, layer).register_forward_hook(copy_row0(token))
                   for layer, token in restore]
        with attached(handles), torch.no_grad():
            logits = model(input_ids=batch).logits[:, -1].float()  # [2, vocab]
        return _metrics(logits, target_id, partner_target_id)

    plain = run([])
    out: dict[str, np.ndarray | float] = {
        "high_score": float(plain[0][0]), "high_logprob": float(plain[1][0]), "high_logit_diff": float(plain[2][0]),
        "low_score": float(plain[0][1]), "low_logprob": float(plain[1][1]), "low_logit_diff": float(plain[2][1]),
    }
    arrays = [np.full((T, L), np.nan) for _ in range(3)]
    for token in range(T) if config.positions is None else config.positions:
        for layer in range(L):
            values = run([(ly, token) for ly in config.restored_layers(layer, L)])
            for array, value in zip(arrays, values):
                array[token, layer] = value[1]
    out["scores"], out["logprobs"], out["logit_diffs"] = arrays
    return out


__all__ = ["ReplacementResult", "clean_states", "replaced_prompt", "replacement_reference", "trace_replacement"]
