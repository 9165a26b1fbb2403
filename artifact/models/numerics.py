"""The float settings every torch computation of the artifact runs with, and their record in the run manifest.

TF32 is turned off on CUDA, for matrix products and for cuDNN (convolutions: HuBERT's and Whisper's feature
encoders). TF32 keeps 10 bits of an fp32 operand's mantissa, so an fp32 product on an Ampere-or-newer GPU would
differ from a CPU's by ~1e-3 relative instead of ~1e-7: far outside the same-seed tier's tolerance, which is
calibrated from fp32's rounding (expected/README.md, "same-seed"). torch's defaults have changed between releases
(cuDNN's TF32 is on by default in torch 2.6), so the artifact sets both flags itself wherever it loads a model.
bf16 models (SpiritLM on a GPU) are unaffected: TF32 concerns fp32 operands only.
"""

from __future__ import annotations

from typing import Any


def strict_fp32() -> dict[str, Any]:
    """Turn TF32 off for CUDA matrix products and cuDNN and ask for full fp32 precision of fp32 products; returns the
    resulting state (`numerics_state`). Harmless on a CPU-only machine (the flags are then not used)."""
    import torch  # lazy: torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return numerics_state()


def numerics_state() -> dict[str, Any]:
    """What the run manifest records: the TF32 flags and torch's fp32 matrix-product precision."""
    import torch  # lazy: torch

    return {"tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision()}
