"""Attention knockout (Geva et al. 2023, "Dissecting Recall of Factual Associations"): block the attention edges
from one position (the last) to a set of positions (the subject's) in a window of layers, and measure P(answer)
per window centre (issue 18's second analysis). Where blocking hurts is where subject information moves to the
prediction.

Edges are blocked through the attention mask each attention module receives (a forward pre-hook replaces it by an
additive mask: causal, plus the dtype's minimum on the blocked edges), so the same code serves every family whose
attention takes `attention_mask` as a keyword (Llama, Mistral, Qwen2, GPT-2), eager or SDPA. Pure: tensors in,
arrays out. `knockout` runs every window centre as one row of one batch; `knockout_reference` runs one forward per
centre. When the edges leave the last position and the family has a layer stepper, only the last position is
recomputed (blocking its attention cannot change any earlier position in a causal model): the rows share the clean
run's keys and values of the positions before it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from artifact.models.adapters import ModelAdapter, get_module
from artifact.models.stepping import PrefixKV, causal_mask, stepper_for
from artifact.tracing.config import TraceConfig
from artifact.tracing.hooks import attached, final_logits


def window_layers(layer: int, window: int, num_layers: int) -> range:
    """The layers blocked for a window centred on `layer`: the tracing engine's window rule (TraceConfig)."""
    return TraceConfig(kind="attn", window=window).restored_layers(layer, num_layers)


def _masks(rows: int, tokens: int, blocked: Sequence[bool], source: int, targets: Sequence[int],
           dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[rows, 1, T, T] additive masks: causal everywhere; row r also blocks source -> targets when blocked[r]."""
    low = torch.finfo(dtype).min
    mask = torch.full((tokens, tokens), low, dtype=dtype, device=device).triu(1)[None, None].repeat(rows, 1, 1, 1)
    for row, block in enumerate(blocked):
        if block:
            mask[row, 0, source, list(targets)] = low
    return mask


def _answer_probs(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor, target_id: int,
                  source: int, targets: Sequence[int], blocked_by_layer: list[list[bool]]) -> np.ndarray:
    """P(answer) at the last position for len(blocked_by_layer[0]) rows, where row r blocks source -> targets at
    layer j when blocked_by_layer[j][r]."""
    rows = len(blocked_by_layer[0])
    device = adapter.embed.weight.device
    dtype = adapter.embed.weight.dtype
    tokens = int(input_ids.shape[0])
    handles = []
    for layer, blocked in enumerate(blocked_by_layer):
        mask = _masks(rows, tokens, blocked, source, targets, dtype, device)

        def replace_mask(_module, args, kwargs, mask=mask):
            kwargs["attention_mask"] = mask
            return args, kwargs

        attention = get_module(model, adapter.family.attn.format(layer))
        handles.append(attention.register_forward_pre_hook(replace_mask, with_kwargs=True))
    with attached(handles), torch.no_grad():
        logits = final_logits(model, input_ids[None].repeat(rows, 1).to(device))  # [rows, vocab]
    return torch.softmax(logits, dim=-1)[:, target_id].double().cpu().numpy()


def _last_position_probs(stepper, adapter: ModelAdapter, input_ids: torch.Tensor, target_id: int,
                         targets: Sequence[int], blocked_by_layer: list[list[bool]]) -> np.ndarray:
    """`_answer_probs` for edges from the last position: one clean run records every layer's keys and values, then
    the rows recompute the last position only, each layer with its own [rows, 1, 1, T] mask."""
    device = adapter.embed.weight.device
    dtype = adapter.embed.weight.dtype
    ids = input_ids.to(device)
    T, rows, low = int(ids.shape[0]), len(blocked_by_layer[0]), torch.finfo(dtype).min
    stepper.prepare(T)
    with torch.no_grad():
        h, kv = stepper.embed(ids, None, 1), PrefixKV(record=True)
        for layer in range(stepper.num_layers):
            h = stepper.block(layer, h, 0, kv, causal_mask(0, T, dtype, device), None)
        prefix = [(k[:, :, :T - 1], v[:, :, :T - 1]) for k, v in kv.recorded]
        x = stepper.embed(ids, None, 1)[:, T - 1:].repeat(rows, 1, 1)  # [rows, 1, d_model]
        for layer, blocked in enumerate(blocked_by_layer):
            mask = torch.zeros(rows, 1, 1, T, dtype=dtype, device=device)
            for row in (r for r, block in enumerate(blocked) if block):
                mask[row, 0, 0, list(targets)] = low
            x = stepper.block(layer, x, T - 1, PrefixKV(prefix, repeats=rows), mask, None)
        logits = stepper.logits(x[:, -1])
    return torch.softmax(logits, dim=-1)[:, target_id].double().cpu().numpy()


def _check(input_ids: torch.Tensor, source: int, targets: Sequence[int]) -> None:
    tokens = int(input_ids.shape[0])
    if not 0 <= source < tokens or any(not 0 <= t <= source for t in targets):
        raise ValueError(f"knockout edges must run from a position in the prompt ({tokens} tokens) to positions at or "
                         f"before it; got {source} -> {list(targets)}")


def knockout(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor, target_id: int,
             targets: Sequence[int], window: int = 9, source: int | None = None, fast: bool = True
             ) -> tuple[float, np.ndarray]:
    """(clean P(answer), [layer] P(answer) with the edges source -> targets blocked in the window centred on each
    layer); source defaults to the last position. One batch: row 0 clean, row 1 + l the window around l. With
    `fast` (and a layer stepper, edges from the last position) only the last position is recomputed."""
    T = int(input_ids.shape[0])
    source = T - 1 if source is None else int(source)
    _check(input_ids, source, targets)
    L = adapter.num_layers
    blocked = [[False] + [layer in window_layers(centre, window, L) for centre in range(L)] for layer in range(L)]
    stepper = stepper_for(model, adapter, T) if fast and source == T - 1 and len(targets) else None
    if stepper is not None:
        probs = _last_position_probs(stepper, adapter, input_ids, target_id, targets, blocked)
    else:
        probs = _answer_probs(model, adapter, input_ids, target_id, source, targets, blocked)
    return float(probs[0]), probs[1:]


def knockout_reference(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor, target_id: int,
                       targets: Sequence[int], window: int = 9, source: int | None = None
                       ) -> tuple[float, np.ndarray]:
    """The same numbers the plain way: one forward for the clean run and one per window centre."""
    source = int(input_ids.shape[0]) - 1 if source is None else int(source)
    _check(input_ids, source, targets)
    L = adapter.num_layers
    clean = float(_answer_probs(model, adapter, input_ids, target_id, source, targets, [[False]] * L)[0])
    out = np.zeros(L)
    for centre in range(L):
        layers = window_layers(centre, window, L)
        out[centre] = _answer_probs(model, adapter, input_ids, target_id, source, targets,
                                    [[layer in layers] for layer in range(L)])[0]
    return clean, out
