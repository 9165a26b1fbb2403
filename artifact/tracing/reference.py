"""The plain causal-tracing method, one forward per cell, as ROME's `causal_trace.py` computes it.

Short on purpose: this is the oracle the batched engine is tested against, and the minimal self-contained
implementation a reviewer can read in five minutes. Batch: the prompt repeated samples + 1 times; row 0 clean,
rows 1.. corrupted with noise on the subject's token embeddings; a restored cell copies row 0's state into rows 1..
"""

from __future__ import annotations

import numpy as np
import torch

from artifact.models.adapters import ModelAdapter, main_tensor, score_precision
from artifact.tracing.config import TraceConfig


def patched_forward(model, adapter, input_ids, subject_range, target_id, config, restore) -> tuple[float, float]:
    """One forward of samples + 1 rows; `restore` is a list of (module path, token). Returns (mean P, mean log P)."""
    b, e = subject_range
    batch = input_ids[None].repeat(config.samples + 1, 1).to(adapter.embed.weight.device)

    def corrupt(_module, _inputs, output):
        if config.noise_streams == "rome":  # ROME: afresh for every forward, so every cell sees the same noise
            draws = np.random.RandomState(config.seed).randn(config.samples, e - b, output.shape[2])
        else:  # sample s from its own stream (seed, s)
            draws = np.stack([np.random.default_rng([config.seed, s]).standard_normal((e - b, output.shape[2]))
                              for s in range(config.samples)])
        noise = config.noise * torch.from_numpy(draws)
        output[1:, b:e] += noise.to(output.device)
        return output

    def restore_token(token):
        def hook(_module, _inputs, output):
            h = main_tensor(output)
            h[1:, token] = h[0, token]
            return output

        return hook

    handles = [adapter.embed.register_forward_hook(corrupt)]
    handles += [adapter.model.get_submodule(path).register_forward_hook(restore_token(t)) for path, t in restore]
    try:
        with torch.no_grad():
            logits = score_precision(model(input_ids=batch).logits[1:, -1])
    finally:
        for handle in handles:
            handle.remove()
    probs = torch.softmax(logits, dim=-1).mean(dim=0)[target_id]
    logps = torch.log_softmax(logits, dim=-1)[:, target_id].double().mean()
    return float(probs), float(logps)


def reference_trace(model, input_ids, subject_range, target_id, config: TraceConfig) -> dict[str, np.ndarray | float]:
    """scores/logprobs [pos, layer], low and high scores, computed cell by cell (ROME's loop)."""
    adapter = ModelAdapter(model)
    num_layers = adapter.num_layers
    with torch.no_grad():
        clean_logits = score_precision(model(input_ids=input_ids[None].to(adapter.embed.weight.device)).logits[0, -1])
    high_score = float(torch.softmax(clean_logits, dim=-1)[target_id])
    low_score, low_logprob = patched_forward(model, adapter, input_ids, subject_range, target_id, config, [])
    positions = range(len(input_ids)) if config.positions is None else config.positions
    scores = np.full((len(input_ids), num_layers), np.nan)
    logprobs = np.full_like(scores, np.nan)
    for token in positions:
        for layer in range(num_layers):
            restore = [(adapter.module_path(config.kind, ly), token) for ly in config.restored_layers(layer, num_layers)]
            scores[token, layer], logprobs[token, layer] = patched_forward(
                model, adapter, input_ids, subject_range, target_id, config, restore
            )
    return {"scores": scores, "logprobs": logprobs, "low_score": low_score, "high_score": high_score,
            "low_logprob": low_logprob}
