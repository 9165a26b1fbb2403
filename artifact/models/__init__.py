"""Models: loading by spec, each family's component names and block anatomy, the layer stepper.

Names load on first use (PEP 562), so importing a torch-free module of this package (`families`, `errors`) does not
import torch.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "ModelAdapter": "adapters", "get_module": "adapters", "ModelLoadError": "errors",
    "UnsupportedModelError": "errors", "FAMILIES": "families", "ModelFamily": "families",
    "LoadedModel": "loading", "load_model": "loading",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"artifact.models.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'artifact.models' has no attribute {name!r}")
