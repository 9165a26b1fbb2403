"""Matmul FLOP counts of causal tracing: the plain method's forwards vs the least work that gives the same numbers.

Counts only matrix multiplications (2 FLOPs per multiply-add): the linear layers of attention and MLP, the attention
scores and weighted sums (dense over all keys, masked, as SDPA computes them), and the LM head. Norms, rotary
tables, softmax and element-wise ops are left out (a few percent at these sizes). Used by the benchmark (ideal
speed-up) and the cost model (`python -m artifact cost`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from artifact.tracing.config import TraceConfig


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only LM that its matmul FLOPs depend on."""

    layers: int
    d_model: int
    heads: int
    kv_heads: int
    head_dim: int
    d_mlp: int
    mlp_matrices: int  # 3 for gated MLPs (Llama: gate, up, down), 2 for GPT-2
    vocab: int

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        """From a Hugging Face config of the Llama family or GPT-2."""
        if config.model_type == "gpt2":
            return cls(config.n_layer, config.n_embd, config.n_head, config.n_head, config.n_embd // config.n_head,
                       config.n_inner or 4 * config.n_embd, 2, config.vocab_size)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
                   config.num_key_value_heads, head_dim, config.intermediate_size, 3, config.vocab_size)

    def layer(self, queries: int, keys: int) -> int:
        """One block for `queries` positions of one row attending to `keys` positions."""
        d, hd = self.d_model, self.head_dim
        projections = 2 * queries * d * hd * (2 * self.heads + 2 * self.kv_heads)  # q, o; k, v
        attention = 2 * 2 * queries * keys * hd * self.heads  # scores and weighted sum
        mlp = 2 * queries * d * self.d_mlp * self.mlp_matrices
        return projections + attention + mlp

    def head(self, positions: int) -> int:
        """The LM head (unembedding) at `positions` positions of one row."""
        return 2 * positions * self.d_model * self.vocab

    def forward(self, tokens: int, logit_positions: int) -> int:
        """A full forward of one row of `tokens` tokens with logits at `logit_positions` positions."""
        return self.layers * self.layer(tokens, tokens) + self.head(logit_positions)


def reference_flops(shape: ModelShape, tokens: int, samples: int, traced_tokens: int) -> int:
    """The plain method (`reference.py`): clean forward, corrupted forward, then one forward per cell, each of
    samples + 1 rows with logits at every position (what `model(...)` computes)."""
    full = shape.forward(tokens, tokens)
    return full + (1 + traced_tokens * shape.layers) * (samples + 1) * full


def least_flops(shape: ModelShape, tokens: int, samples: int, subject_start: int, positions: Iterable[int],
                config: TraceConfig) -> int:
    """The least work: one clean row and `samples` corrupted rows once (logits at the last position); then per cell
    (t, l) with t at or after the subject, `samples` rows through the blocks from the first one the restoration can
    change, on positions t.. only, and the LM head at the last position."""
    total = (1 + samples) * shape.forward(tokens, 1)
    for t in positions:
        if t < subject_start:
            continue
        per_block = shape.layer(tokens - t, tokens)
        for layer in range(shape.layers):
            start = layer + 1 if config.kind == "hidden" else config.restored_layers(layer, shape.layers).start
            total += samples * ((shape.layers - start) * per_block + shape.head(1))
    return total
