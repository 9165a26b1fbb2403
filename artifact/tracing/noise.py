"""Noise calibration: ROME's corruption scale, 3 x the std of subject-token embeddings."""

from __future__ import annotations

from typing import Any, Iterable

import torch

from artifact.models.adapters import ModelAdapter
from artifact.prompts.tokens import encode


def subject_embedding_std(model: torch.nn.Module, tokenizer: Any, subjects: Iterable[str]) -> float:
    """Std of the token embeddings of every subject, each encoded alone, pooled over all subjects (fp32/fp64).

    As ROME's `collect_embedding_std`: the embedding module's output for each subject's tokens (special tokens
    such as BOS included when the tokenizer adds them, as ROME's `make_inputs` does).
    """
    adapter = ModelAdapter(model)
    device = adapter.embed.weight.device
    chunks = []
    with torch.no_grad():
        for subject in subjects:
            ids = torch.tensor(encode(tokenizer, subject), device=device)
            chunks.append(adapter.embed(ids).double().cpu())
    if not chunks:
        raise ValueError("No subjects given: noise calibration needs the subjects of the fact file.")
    return float(torch.cat(chunks).std())


def calibrate_noise(model: torch.nn.Module, tokenizer: Any, subjects: Iterable[str], factor: float = 3.0) -> float:
    """ROME's noise level: `factor` (3) x std of subject-token embeddings pooled over `subjects`."""
    return factor * subject_embedding_std(model, tokenizer, subjects)
