"""Tiny random stand-ins for SpiritLM's speech tokenizer checkpoints, in Meta's exact file formats.

`write_hubert_25hz(folder)` writes the two files of `speech_tokenizer/hubert_25hz/` that spiritlm's
`spiritlm_hubert()` reads (Meta's weights are gated; these let its code path run here):

- `mhubert_base_25hz.pt`: a "converted" HuBERT checkpoint as spiritlm's `load_hubert_model(path)` reads it
  (`model_cfg`, `task_cfg`, `model_weight`, `dictionaries_symbols`), the state dict of spiritlm's own `HubertModel`
  built from a tiny config: the 25 Hz conv stack (strides 5*2^7 = hop 640 at 16 kHz), 12 transformer layers of
  width 64 (layer 11 is the one read), post-LN like HuBERT base;
- `L11_quantizer_500.pt`: a linear CTC quantizer as `load_quantizer_model(path, is_linear_quantizer=True)` reads it
  (`model_cfg` {vocab_size 500, dim, upstream_dim}, `model_weight` of its 3-layer MLP with 501 outputs: 500 units
  + the blank).

Initialisation: as fairseq initialises HuBERT's transformer (normal weights, zero biases), with fairseq's std 0.02
(for width 768) scaled to this width, 0.02 * sqrt(768 / 64): with 0.02 itself the tiny layers barely change the
residual stream (layers 10 and 11 give the same unit in ~96 % of frames; ~50 % with the scaled std). Zero biases in
the quantizer too (a random bias is a constant offset that lets a few units win everywhere), PyTorch's defaults
elsewhere. Measured on 8 espeak-ng prompts of ROME facts (2.3 s each on average), seed 0: 23.6 deduplicated tokens
per second (SpiritLM's real rate is ~20), 20-35 distinct units per prompt, 71 over the 8; seeds 0-5 give 20-24
tokens/s on average. The blank wins a frame's argmax in none of the 449 frames for seeds 0, 1, 2, 4 and 5 (9 % for
seed 3; the quantizer replaces it by its left neighbour). Both files together are ~2.8 MB; the same seed gives
bitwise the same files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

HUBERT_FILE = "mhubert_base_25hz.pt"
QUANTIZER_FILE = "L11_quantizer_500.pt"
UNITS = 500  # quantizer vocabulary; its output layer has one more row, the CTC blank
CONV_WIDTH = 32
WIDTH = 64
# 25 Hz conv stack: mHuBERT-25Hz's kernels and strides (HuBERT base's 50 Hz stack plus one more (2, 2) layer).
CONV_LAYERS = f"[({CONV_WIDTH},10,5)] + [({CONV_WIDTH},3,2)] * 4 + [({CONV_WIDTH},2,2)] * 3"
# fairseq's std for HuBERT's transformer linears is 0.02 at width 768; scaled to keep each layer's relative effect.
INIT_STD = 0.02 * (768 / WIDTH) ** 0.5


def hubert_configs() -> tuple[object, object]:
    """spiritlm's (HubertConfig, HubertPretrainingConfig) of the tiny 25 Hz model."""
    from spiritlm.speech_tokenizer.hubert.hubert_model.hubert_model import HubertConfig, HubertPretrainingConfig

    model_cfg = HubertConfig(label_rate=25.0, conv_feature_layers=CONV_LAYERS, encoder_layers=12,
                             encoder_embed_dim=WIDTH, encoder_ffn_embed_dim=2 * WIDTH, encoder_attention_heads=4,
                             final_dim=16)
    task_cfg = HubertPretrainingConfig(label_rate=25.0, sample_rate=16_000, normalize=False)
    return model_cfg, task_cfg


def quantizer_layers(dim: int, upstream_dim: int, vocab_size: int = UNITS) -> nn.Sequential:
    """The MLP whose state dict `LinearQuantizerModel` loads: widths from its documented rule
    (mid = upstream_dim - (vocab_size + 1); dim -> dim - mid//4 -> dim - mid//2 -> vocab_size + 1)."""
    out = vocab_size + 1
    mid = upstream_dim - out
    return nn.Sequential(nn.Linear(dim, dim - mid // 4), nn.LeakyReLU(),
                         nn.Linear(dim - mid // 4, dim - mid // 2), nn.LeakyReLU(),
                         nn.Linear(dim - mid // 2, out))


def write_hubert_25hz(folder: Path, seed: int = 0, pos_conv_norm: str = "weight") -> None:
    """Write `mhubert_base_25hz.pt` and `L11_quantizer_500.pt` (tiny, random, seeded) into `folder`.

    `pos_conv_norm="batch"` writes a mismatched HuBERT file: weights of a model built with a batch-norm positional
    convolution (`encoder.pos_conv.0` a BatchNorm1d, `.1` the plain conv) under a config that says weight norm, as
    spiritlm's code builds it (`encoder.pos_conv.0.weight_g`/`weight_v`): names spiritlm's strict=False load skips."""
    from spiritlm.speech_tokenizer.hubert.hubert_model.hubert_model import HubertModel

    if pos_conv_norm not in ("weight", "batch"):
        raise ValueError(f"pos_conv_norm must be 'weight' or 'batch'; got {pos_conv_norm!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_cfg, task_cfg = hubert_configs()
    built_cfg = dataclasses.replace(model_cfg, conv_pos_batch_norm=pos_conv_norm == "batch")
    symbols = [["<s>", "<pad>", "</s>", "<unk>", *(str(i) for i in range(UNITS))]]  # a fairseq label dictionary
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hubert = HubertModel(built_cfg, task_cfg, dictionaries=symbols)  # with final_proj + label_embs, as trained
        with torch.no_grad():
            for module in hubert.encoder.modules():
                if isinstance(module, nn.Linear):
                    module.weight.normal_(0.0, INIT_STD)
                    module.bias.zero_()
        quantizer = quantizer_layers(dim=WIDTH, upstream_dim=WIDTH)
        with torch.no_grad():
            for module in quantizer:
                if isinstance(module, nn.Linear):
                    module.bias.zero_()  # a random bias is a constant offset that lets a few units win everywhere
    torch.save({"model_cfg": dataclasses.asdict(model_cfg), "task_cfg": dataclasses.asdict(task_cfg),
                "model_weight": hubert.state_dict(), "dictionaries_symbols": symbols}, folder / HUBERT_FILE)
    torch.save({"model_cfg": {"vocab_size": UNITS, "dim": WIDTH, "upstream_dim": WIDTH},
                "model_weight": quantizer.state_dict()}, folder / QUANTIZER_FILE)
