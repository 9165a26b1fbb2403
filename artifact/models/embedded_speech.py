"""The embedded speech-text model: SmolLM2 with SpiritLM's vocabulary extension ([Text], [Speech], [Hu0]..[Hu500]).

Like SpiritLM (Llama 2 + 503 new tokens), the new tokens get new embedding rows; the language model itself stays
frozen, so its text mechanism is the one traced from text. Only the new rows (and, if shipped, nothing else) are
trained, by distillation from the frozen model's text prompts (artifact/training/distill.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from artifact.core.fileio import sha256_file
from artifact.models.errors import ModelLoadError

UNIT_COUNT = 501  # [Hu0]..[Hu500]: 500 HuBERT clusters + the CTC blank, as in SpiritLM base
NEW_TOKENS: tuple[str, ...] = ("[Text]", "[Speech]", *(f"[Hu{i}]" for i in range(UNIT_COUNT)))
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "embedded_speech"
ROWS_FILE = "new_rows.safetensors"
MANIFEST_FILE = "manifest.json"


def extend_tokenizer(tokenizer: Any) -> list[int]:
    """Add SpiritLM's markers and unit tokens as special tokens (never split); returns their ids in NEW_TOKENS order."""
    tokenizer.add_tokens(list(NEW_TOKENS), special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(list(NEW_TOKENS))
    if ids != list(range(ids[0], ids[0] + len(NEW_TOKENS))):
        raise RuntimeError("The new tokens did not get consecutive ids; the tokenizer already had some of them.")
    return ids


def extend_model(model: torch.nn.Module, tokenizer: Any) -> int:
    """Grow the (tied) embedding matrix to the tokenizer's size; returns the first new row's index.

    New rows start at the mean of the existing rows (they are then trained or loaded).
    """
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        weight[old:] = weight[:old].mean(dim=0, keepdim=True)
    return old


def new_rows(model: torch.nn.Module, first_new: int) -> torch.Tensor:
    """The new tokens' embedding rows [new_tokens, d_model] (a view into the embedding weight)."""
    return model.get_input_embeddings().weight[first_new:]


def read_manifest(folder: Path = SHIPPED_DIR) -> dict[str, Any]:
    """The shipped model's manifest: fingerprint, command, settings, training and held-out facts, accuracies."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"No trained embedded speech-text model at {folder}. Train one with "
            "`python -m artifact train-embedded-speech` (see REPRODUCE.md)."
        )
    return json.loads(path.read_text())


def load_rows(model: torch.nn.Module, first_new: int, folder: Path = SHIPPED_DIR) -> str:
    """Load the trained new rows into `model`, checking the file's sha256 against the manifest; returns it."""
    from safetensors.torch import load_file  # lazy: safetensors

    manifest = read_manifest(folder)
    path = folder / ROWS_FILE
    digest = sha256_file(path)
    if digest != manifest["rows_sha256"]:
        raise ModelLoadError(
            f"{path} has sha256 {digest}, but its manifest says {manifest['rows_sha256']}: the file was changed or "
            "truncated. Restore it from git (`git checkout -- artifact/data/embedded_speech`) or retrain."
        )
    rows = load_file(path)["new_rows"]
    target = new_rows(model, first_new)
    if rows.shape != target.shape:
        raise ModelLoadError(f"Shipped rows have shape {tuple(rows.shape)}, the model expects {tuple(target.shape)}.")
    with torch.no_grad():
        target.copy_(rows.to(target.dtype))
    return digest
