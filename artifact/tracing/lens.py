"""Logit lens: the answer token's probability and rank when each block's output is read out directly through the
model's final norm and unembedding, at chosen token positions (issue 18's third analysis).

At the subject's last token it asks whether the stream already "says" the answer (or, for speech, the subject's
text) before the recall site; at the last token it shows from which layer on the prediction is formed. Pure: tensors
in, arrays out. `lens_reference` is the plain oracle, one forward per layer; `logit_lens` does one forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from artifact.models.adapters import ModelAdapter, get_module, main_tensor, score_precision
from artifact.tracing.hooks import attached


@dataclass(frozen=True)
class LensResult:
    """Per position and layer: P(answer) over the whole vocabulary, and the answer's rank among the allowed tokens
    (0 = the greedy token; tokens in `banned` are never counted, as in the Known check's text mode)."""

    positions: tuple[int, ...]
    prob: np.ndarray  # [position, layer]
    rank: np.ndarray  # [position, layer] int


def _read_out(adapter: ModelAdapter, states: torch.Tensor, target_id: int, banned: Sequence[int]
              ) -> tuple[np.ndarray, np.ndarray]:
    """P(target) and the target's rank for states [..., d_model] through the final norm and the LM head."""
    if not adapter.family.final_norm:
        raise ValueError(f"the {adapter.family.name} adapter names no final norm; the logit lens needs one")
    norm = get_module(adapter.model, adapter.family.final_norm)
    logits = score_precision(adapter.model.get_output_embeddings()(norm(states)))  # [..., vocab]
    prob = torch.softmax(logits, dim=-1)[..., target_id]
    allowed = logits.clone()
    if len(banned):
        allowed[..., list(banned)] = -torch.inf
    rank = (allowed > allowed[..., target_id:target_id + 1]).sum(dim=-1)
    return prob.double().cpu().numpy(), rank.cpu().numpy()


def block_states(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor, positions: Sequence[int]
                 ) -> torch.Tensor:
    """[position, layer, d_model] every block's output at `positions` of one prompt `input_ids` [pos], in one clean
    forward (a hook per block keeps its output); no gradients."""
    captured: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        captured.append(main_tensor(output)[0, list(positions)])

    handles = [get_module(model, adapter.family.block.format(layer)).register_forward_hook(keep)
               for layer in range(adapter.num_layers)]
    with attached(handles), torch.no_grad():
        model(input_ids=input_ids[None].to(adapter.embed.weight.device))
    return torch.stack(captured, dim=1)


def logit_lens(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor, target_id: int,
               positions: Sequence[int] | None = None, banned: Sequence[int] = ()) -> LensResult:
    """The logit lens of one prompt `input_ids` [pos] at `positions` (default: all), every layer, in one forward:
    each block's output is captured by a hook and read out in one batch."""
    positions = tuple(range(int(input_ids.shape[0]))) if positions is None else tuple(int(p) for p in positions)
    states = block_states(model, adapter, input_ids, positions)  # [position, layer, d_model]
    with torch.no_grad():
        prob, rank = _read_out(adapter, states, target_id, banned)
    return LensResult(positions, prob, rank)


def lens_reference(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor, target_id: int,
                   positions: Sequence[int], banned: Sequence[int] = ()) -> LensResult:
    """The same numbers the plain way: per layer one forward that stores that block's output, read out per position."""
    prob = np.zeros((len(positions), adapter.num_layers))
    rank = np.zeros((len(positions), adapter.num_layers), dtype=np.int64)
    for layer in range(adapter.num_layers):
        stored = {}

        def store(_module, _inputs, output):
            stored["h"] = main_tensor(output)[0].clone()

        handle = get_module(model, adapter.family.block.format(layer)).register_forward_hook(store)
        with attached([handle]), torch.no_grad():
            model(input_ids=input_ids[None].to(adapter.embed.weight.device))
            for i, position in enumerate(positions):
                p, r = _read_out(adapter, stored["h"][position], target_id, banned)
                prob[i, layer], rank[i, layer] = float(p), int(r)
    return LensResult(tuple(int(p) for p in positions), prob, rank)
