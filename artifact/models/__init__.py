"""Models: loading by spec and the per-family component vocabulary the tracing engine uses."""

from artifact.core.names import KINDS, Kind
from artifact.models.adapters import ModelAdapter, get_module
from artifact.models.errors import ModelLoadError, UnsupportedModelError
from artifact.models.families import FAMILIES, ModelFamily
from artifact.models.loading import LoadedModel, load_model

__all__ = [
    "FAMILIES",
    "KINDS",
    "Kind",
    "LoadedModel",
    "ModelAdapter",
    "ModelFamily",
    "ModelLoadError",
    "UnsupportedModelError",
    "get_module",
    "load_model",
]
