"""Model adapters: the component vocabulary (`embed`, `hidden`/block, `mlp`, `attn` at a layer) resolved to one
loaded model's own modules, through its family's entry in `families.py`."""

from __future__ import annotations

from typing import Literal

import torch

from artifact.core.names import KINDS, Kind
from artifact.models.errors import UnsupportedModelError
from artifact.models.families import FAMILIES, ModelFamily


def get_module(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """Return the submodule at dotted `path`, raising a LookupError that names the missing part."""
    try:
        return model.get_submodule(path)
    except AttributeError as exc:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no module '{path}' ({exc}). "
            "Pass a model of a supported family or an adapter whose paths match this model."
        ) from None


class ModelAdapter:
    """Resolves the component vocabulary (embed, block, mlp, attn) to modules of one loaded model."""

    def __init__(self, model: torch.nn.Module, family: ModelFamily | None = None) -> None:
        self.model = model
        config = getattr(model, "config", None)
        if family is None:
            model_type = getattr(config, "model_type", None)
            if model_type not in FAMILIES:
                raise UnsupportedModelError(
                    f"No adapter for model_type '{model_type}' ({type(model).__name__}). "
                    f"Supported: {', '.join(sorted(FAMILIES))}. For another family, construct "
                    "ModelAdapter(model, ModelFamily(...)) with its embed/block/mlp/attn module paths."
                )
            family = FAMILIES[model_type]
        self.family = family
        num_layers = getattr(config, family.num_layers_attr, None)
        if not isinstance(num_layers, int):
            raise UnsupportedModelError(
                f"{type(model).__name__}'s config has no integer '{family.num_layers_attr}' "
                f"(the number of blocks the '{family.name}' adapter reads)."
            )
        self.num_layers: int = num_layers
        # Resolve every name once so a mismatch fails here, not halfway through a trace.
        for path in self.all_module_paths():
            get_module(model, path)

    def all_module_paths(self) -> list[str]:
        """Every module path this adapter maps, for validation and tests."""
        paths = [self.family.embed]
        for layer in range(self.num_layers):
            paths += [self.family.block.format(layer), self.family.mlp.format(layer), self.family.attn.format(layer)]
        return paths

    def module_path(self, kind: Kind | Literal["embed"], layer: int | None = None) -> str:
        """Module path of component `kind` ('embed', 'hidden', 'mlp', 'attn') at `layer`."""
        if kind == "embed":
            return self.family.embed
        if layer is None or not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be in [0, {self.num_layers}), got {layer}")
        template = {"hidden": self.family.block, "mlp": self.family.mlp, "attn": self.family.attn}.get(kind)
        if template is None:
            raise ValueError(f"Unknown component kind '{kind}'. Expected one of: embed, {', '.join(KINDS)}")
        return template.format(layer)

    def module(self, kind: Kind | Literal["embed"], layer: int | None = None) -> torch.nn.Module:
        """The module of component `kind` at `layer`."""
        return get_module(self.model, self.module_path(kind, layer))

    @property
    def embed(self) -> torch.nn.Module:
        """The token-embedding module (output `[batch, pos, d_model]`)."""
        return self.module("embed")


def score_precision(logits: torch.Tensor) -> torch.Tensor:
    """Logits in the precision the scores are computed in: fp32 for a bf16/fp16/fp32 model (noise statistics and
    softmax stay fp32, BRIEF section 2), float64 for a float64 model (the numerics reference of the same-seed tier
    keeps every step in float64)."""
    return logits if logits.dtype == torch.float64 else logits.float()


def main_tensor(output: object) -> torch.Tensor:
    """The hidden-state tensor of a module output (blocks and attention may return tuples)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"Cannot find a tensor in module output of type {type(output).__name__}")
