"""Backends chosen by name: the scaffold every speech backend shares (`Backend`: a name, the settings that key the
cache, a cheap availability probe), and a registry of lazy import paths per stage, with typo suggestions."""

from __future__ import annotations

import abc
import difflib
import importlib
import importlib.util
from typing import Any, Generic, TypeVar

from artifact.models.numerics import strict_fp32

T = TypeVar("T")


class Backend(abc.ABC):
    """One backend of a speech stage (TTS, recognizer, aligner, unit tokenizer): its registry name, the settings
    that name everything its output depends on (they key the speech cache), and whether it can run here."""

    name: str = ""

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """Backend name, version and options: everything that changes the output (for learned models: the weights'
        fingerprint)."""

    @classmethod
    def unavailable(cls, **options: Any) -> str | None:
        """Why this backend (with these constructor options) cannot run offline now, and the fix; None when it can.
        Cheap: checks libraries and files, loads no model."""
        return None


class UnknownBackendError(LookupError):
    """A backend name that no registry entry matches; the message lists the available ones."""


class Registry(Generic[T]):
    """Backends of one stage by name, each a lazy 'module:Class' path so heavy libraries load only when picked."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._paths: dict[str, str] = {}

    def register(self, name: str, path: str) -> None:
        """Add backend `name` implemented by `path` ('package.module:ClassName'); duplicate names are an error."""
        if name in self._paths:
            raise ValueError(f"{self.stage} backend {name!r} is already registered (as {self._paths[name]}).")
        if ":" not in path:
            raise ValueError(f"Backend path {path!r} must look like 'package.module:ClassName'.")
        self._paths[name] = path

    @property
    def names(self) -> list[str]:
        return sorted(self._paths)

    def resolve(self, name: str) -> type:
        """The class of backend `name`, imported now."""
        if name not in self._paths:
            close = difflib.get_close_matches(name, self.names, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownBackendError(
                f"Unknown {self.stage} backend {name!r}.{hint} Available: {', '.join(self.names)}."
            )
        module_name, class_name = self._paths[name].split(":")
        return getattr(importlib.import_module(module_name), class_name)

    def create(self, name: str, **options: Any) -> T:
        """A new instance of backend `name` constructed with `options` (TF32 off first: a backend may run torch on
        a GPU, `artifact.models.numerics`)."""
        strict_fp32()
        return self.resolve(name)(**options)

    def unavailable(self, name: str, **options: Any) -> str | None:
        """Why backend `name` (with the constructor `options` it would get) cannot run offline now, with the fix;
        None when it can. Asks the class's cheap `unavailable(**options)` probe (no model is loaded); a backend
        class without one counts as available. A backend whose module cannot be imported is unavailable."""
        try:
            cls = self.resolve(name)
        except ImportError as exc:
            return f"The {self.stage} backend {name!r} cannot be imported ({exc})."
        probe = getattr(cls, "unavailable", None)
        return probe(**options) if callable(probe) else None


def require_module(module: str, install: str, backend: str) -> Any:
    """Import `module` for `backend`, or fail with the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RuntimeError(
            f"The {backend!r} backend needs the Python module {module!r}, which is not importable here ({exc}). "
            f"Install it with: {install}"
        ) from exc


def module_missing(module: str, install: str, backend: str) -> str | None:
    """None when `module` can be found (not imported: cheap), else the reason and the install command."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    return (f"The {backend!r} backend needs the Python module {module!r}, which is not installed. "
            f"Install it with: {install}")
