"""Each supported model family in one place: its component names (the vocabulary the engine uses: `embed`,
`block`, `mlp`, `attn`, mapped to the model's own module paths), its norms, how positions enter, and the decoder
block classes the layer stepper was written against.

A user who knows the model knows the names: `model.layers.{l}.mlp` for Llama, `transformer.h.{l}.mlp` for GPT-2
(`{}` stands for the layer index). A new pre-norm family needs one entry here (as TransformerLens keeps one adapter per architecture).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class ModelFamily:
    """Module paths and the block anatomy of one model family."""

    name: str
    embed: str  # token embedding module; its output is what gets corrupted  [batch, pos, d_model]
    block: str  # decoder block; its output is the "hidden" state           [batch, pos, d_model]
    mlp: str  # the block's MLP; output                                     [batch, pos, d_model]
    attn: str  # the block's self-attention; output[0]                      [batch, pos, d_model]
    num_layers_attr: str  # attribute of the config holding the number of blocks
    # For the layer stepper (the fast path); a family without block_classes is traced by forward hooks only.
    final_norm: str = ""  # norm before the LM head
    attn_norm: str = ""  # the block's norm before attention (an attribute of the block)
    mlp_norm: str = ""  # the block's norm before the MLP (an attribute of the block)
    positions: Literal["rotary", "learned"] = "rotary"  # rotary tables per attention call, or learned embeddings
    rotary: str = ""  # rotary: the module making (cos, sin) tables
    position_embed: str = ""  # learned: the position embedding module, added to the token embeddings
    embed_dropout: str = ""  # learned: the dropout after that sum
    block_classes: tuple[str, ...] = ()  # decoder block classes the layer stepper was written against

    @property
    def attn_attr(self) -> str:
        """The attention module's attribute name inside a block (e.g. `self_attn`)."""
        return self.attn.rsplit(".", 1)[1]

    @property
    def mlp_attr(self) -> str:
        """The MLP module's attribute name inside a block (e.g. `mlp`)."""
        return self.mlp.rsplit(".", 1)[1]


LLAMA = ModelFamily(
    name="llama",
    embed="model.embed_tokens",
    block="model.layers.{}",
    mlp="model.layers.{}.mlp",
    attn="model.layers.{}.self_attn",
    num_layers_attr="num_hidden_layers",
    final_norm="model.norm",
    attn_norm="input_layernorm",
    mlp_norm="post_attention_layernorm",
    positions="rotary",
    rotary="model.rotary_emb",
    block_classes=("LlamaDecoderLayer",),
)
GPT2 = ModelFamily(
    name="gpt2",
    embed="transformer.wte",
    block="transformer.h.{}",
    mlp="transformer.h.{}.mlp",
    attn="transformer.h.{}.attn",
    num_layers_attr="n_layer",
    final_norm="transformer.ln_f",
    attn_norm="ln_1",
    mlp_norm="ln_2",
    positions="learned",
    position_embed="transformer.wpe",
    embed_dropout="transformer.drop",
    block_classes=("GPT2Block",),
)

# Hugging Face `config.model_type` -> family. Mistral and Qwen2 share Llama's module names and block anatomy.
FAMILIES: dict[str, ModelFamily] = {
    "llama": LLAMA,
    "mistral": replace(LLAMA, name="mistral", block_classes=("MistralDecoderLayer",)),
    "qwen2": replace(LLAMA, name="qwen2", block_classes=("Qwen2DecoderLayer",)),
    "gpt2": GPT2,
}
