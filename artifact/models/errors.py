"""The errors of loading and adapting models; each message names the problem and the fix."""


class UnsupportedModelError(LookupError):
    """The model's architecture has no adapter, or lacks a module its adapter names."""


class ModelLoadError(RuntimeError):
    """A model spec cannot be loaded; the message names the problem and the fix."""
