"""Layer stepping: run a causal LM's blocks one at a time, on the positions `pos0..` of a prompt only.

The fast tracing path needs three things the plain `model(...)` call does not give: start at any block from a cached
hidden state, compute only positions >= `pos0` against cached keys and values of the positions before (they are the
same in every restored run, so they are never recomputed), and edit a sub-module's output between the sub-modules.
Each family's entry in `families.py` names its embedding, norms and attention; the blocks' own modules do the
arithmetic, so the numbers are the model's, up to float rounding of batch shapes.

A family without a stepper (or a configuration a stepper does not cover, e.g. sliding-window attention on a prompt
longer than the window) is traced by the generic hook-based path of the engine: `stepper_for` returns None.
"""

from __future__ import annotations

import logging
from typing import Callable, Protocol

import torch

from artifact.core.names import Kind
from artifact.models.adapters import ModelAdapter, get_module, score_precision

log = logging.getLogger(__name__)

# edit(kind, layer, output): called with each block's attention output, MLP output and block output
# ([rows, n, d_model], positions pos0..); it may overwrite parts of `output` in place (restoration) or record it.
Edit = Callable[[Kind, int, torch.Tensor], None]


class PrefixKV:
    """A duck-typed transformers cache for one forward: per layer, the keys/values of positions < pos0 are prepended.

    `prefix[layer]` is (keys, values) [samples, kv_heads, pos0, head_dim] of the corrupted run, shared by every cell:
    the rows of a chunk are cell-major (row = cell * samples + sample), so the prefix is repeated once per cell.
    With `record=True` the new keys/values of each layer are kept in `.recorded` (to build the prefix cache).
    """

    def __init__(self, prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None, repeats: int = 1,
                 record: bool = False):
        self.prefix = prefix
        self.repeats = repeats
        self.recorded: list[tuple[torch.Tensor, torch.Tensor]] | None = [] if record else None

    def update(self, keys: torch.Tensor, values: torch.Tensor, layer_idx: int, cache_kwargs=None):
        if self.recorded is not None:
            self.recorded.append((keys, values))
        if self.prefix is None or self.prefix[layer_idx][0].shape[2] == 0:
            return keys, values
        pk, pv = self.prefix[layer_idx]
        if self.repeats > 1:
            pk, pv = pk.repeat(self.repeats, 1, 1, 1), pv.repeat(self.repeats, 1, 1, 1)
        return torch.cat([pk, keys], dim=2), torch.cat([pv, values], dim=2)


def causal_mask(pos0: int, total: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive mask [1, 1, total - pos0, total]: query pos0 + i sees keys 0..pos0 + i (works for eager and sdpa)."""
    query = torch.arange(pos0, total, device=device)[:, None]
    key = torch.arange(total, device=device)[None, :]
    mask = torch.zeros(total - pos0, total, dtype=dtype, device=device)
    mask.masked_fill_(key > query, torch.finfo(dtype).min)
    return mask[None, None]


class LayerStepper(Protocol):
    """What the fast tracing path needs from a model family."""

    num_layers: int

    def embed(self, input_ids: torch.Tensor, corrupt: Callable[[torch.Tensor], None] | None, rows: int) -> torch.Tensor:
        """Block 0's input [rows, pos, d_model]; `corrupt` edits the token-embedding output in place first."""

    def prepare(self, total: int) -> None:
        """Precompute what depends only on the prompt length (rotary tables)."""

    def block(self, layer: int, hidden: torch.Tensor, pos0: int, kv: PrefixKV, mask: torch.Tensor,
              edit: Edit | None) -> torch.Tensor:
        """Block `layer` on positions pos0.. : [rows, n, d_model] -> [rows, n, d_model]."""

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[rows, d_model] final states (last position) -> [rows, vocab] fp32 logits."""


class PreNormStepper:
    """Any pre-norm family of `families.py` (Llama, Mistral, Qwen2, SmolLM, SpiritLM; GPT-2): x + attn(norm(x)),
    then + mlp(norm(x)). The family names the modules and says how positions enter: rotary tables passed to each
    attention call (Llama), or learned absolute embeddings added to the corrupted token embeddings (GPT-2)."""

    def __init__(self, model: torch.nn.Module, adapter: ModelAdapter):
        self.model = model
        self.adapter = adapter
        self.family = adapter.family
        self.num_layers = adapter.num_layers
        self.blocks = [adapter.module("hidden", layer) for layer in range(self.num_layers)]
        self.final_norm = get_module(model, self.family.final_norm)
        self.cos_sin: tuple[torch.Tensor, torch.Tensor] | None = None

    def prepare(self, total: int) -> None:
        if self.family.positions == "rotary":
            weight = self.adapter.embed.weight
            position_ids = torch.arange(total, device=weight.device)[None]
            rotary = get_module(self.model, self.family.rotary)
            self.cos_sin = rotary(weight[:1][None], position_ids)  # each [1, pos, head_dim]

    def embed(self, input_ids, corrupt, rows):
        x = self.adapter.embed(input_ids[None].expand(rows, -1))  # [rows, pos, d_model]
        if corrupt is not None:
            corrupt(x)
        if self.family.positions == "learned":
            positions = torch.arange(input_ids.shape[0], device=input_ids.device)
            added = x + get_module(self.model, self.family.position_embed)(positions)[None]
            x = get_module(self.model, self.family.embed_dropout)(added)
        return x

    def _attend(self, block, x, pos0, kv, mask):
        attention = getattr(block, self.family.attn_attr)
        if self.family.positions == "rotary":
            cos, sin = self.cos_sin
            out, _ = attention(hidden_states=x, position_embeddings=(cos[:, pos0:], sin[:, pos0:]),
                               attention_mask=mask, past_key_values=kv)
        else:
            out, _ = attention(x, past_key_values=kv, attention_mask=mask)
        return out

    def block(self, layer, hidden, pos0, kv, mask, edit):
        block = self.blocks[layer]
        residual = hidden
        attn = self._attend(block, getattr(block, self.family.attn_norm)(hidden), pos0, kv, mask)
        if edit is not None:
            edit("attn", layer, attn)
        hidden = residual + attn  # (IEEE addition is commutative: GPT-2's attn + residual gives the same bits)
        residual = hidden
        mlp = getattr(block, self.family.mlp_attr)(getattr(block, self.family.mlp_norm)(hidden))
        if edit is not None:
            edit("mlp", layer, mlp)
        hidden = residual + mlp
        if edit is not None:
            edit("hidden", layer, hidden)
        return hidden

    def logits(self, hidden):
        return score_precision(self.model.get_output_embeddings()(self.final_norm(hidden)))


ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")


def unsupported_reason(model: torch.nn.Module, adapter: ModelAdapter, total: int) -> str | None:
    """Why `model` cannot be layer-stepped for a prompt of `total` tokens, or None if it can."""
    config = model.config
    block_name = type(adapter.module("hidden", 0)).__name__
    if block_name not in adapter.family.block_classes:
        return (f"block class {block_name} is not one the {adapter.family.name} stepper was written against "
                f"({', '.join(adapter.family.block_classes) or 'none'})")
    if model.training:
        return "model is in training mode (dropout)"
    implementation = getattr(config, "_attn_implementation", None)
    if implementation not in ATTENTION_IMPLEMENTATIONS:
        return f"attention implementation {implementation!r} (stepping supports {', '.join(ATTENTION_IMPLEMENTATIONS)})"
    window = getattr(config, "sliding_window", None)
    if window is not None and total > window:
        return f"prompt of {total} tokens exceeds the sliding window {window}"
    if config.model_type == "gpt2" and (config.reorder_and_upcast_attn or config.add_cross_attention):
        return "GPT-2 with reorder_and_upcast_attn or cross-attention"
    if getattr(model.base_model, "gradient_checkpointing", False):
        return "gradient checkpointing is on"
    return None


def stepper_for(model: torch.nn.Module, adapter: ModelAdapter, total: int) -> LayerStepper | None:
    """A layer stepper for `model` on prompts of `total` tokens, or None (the engine then uses its hook path)."""
    reason = unsupported_reason(model, adapter, total)
    if reason is not None:
        log.debug("fast tracing path off: %s; using the generic hook-based path", reason)
        return None
    return PreNormStepper(model, adapter)
