"""The trace settings every layer shares, as one value: a profile holds one, a run request passes it on, a run's
settings.json records it, the carry-over step uses it, and every `TraceConfig` is one plus what varies per trace
(kind, noise level, positions). A new trace setting is one field here; it then reaches every one of them.

On disk the fields stay at the top level of the records that hold them (settings.json, carryover/settings.json, the
manifest's profile), as they always were, so older results folders and the expected profiles read unchanged and the
results folders keep their names. A field added later that must not rename existing folders is marked
`metadata=KEY_OPTIONAL`: it is left out of a run's folder key while it holds its default.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Mapping

from artifact.core.jsonable import check_known_keys
from artifact.core.names import NOISE_STREAMS

# Field metadata: left out of a results folder's key while at its default (folders from before the field keep names).
KEY_OPTIONAL: dict[str, bool] = {"key_optional": True}


@dataclass(frozen=True)
class TraceSettings:
    """How every cell is traced, with the paper's (ROME `causal_trace.py`) values as defaults."""

    samples: int = 10  # corrupted runs per cell; ROME's default
    window: int = 10  # mlp/attn: restore this many consecutive layers centred on the cell's layer (and the knockout
    #                   window of the carry-over step); ROME's default
    seed: int = 1  # numpy RandomState seed of the noise, drawn afresh for every forward (ROME uses 1)
    batch_size: int = 128  # rows per forward pass (cells x samples); results are bitwise repeatable per batch size
    # where the noise samples come from: "rome" (ROME's one RandomState(seed) stream for all samples) or "per_sample"
    # (sample s from its own stream (seed, s); tracing/corruption.py); out of folder keys while ROME's
    noise_streams: str = field(default="rome", metadata=KEY_OPTIONAL)

    def __post_init__(self) -> None:
        for name in ("samples", "window", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                hint = " (ROME uses 10)" if name in ("samples", "window") else ""
                raise ValueError(f"{name} must be an integer >= 1{hint}; got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")
        if self.noise_streams not in NOISE_STREAMS:
            raise ValueError(f"noise_streams must be one of {', '.join(NOISE_STREAMS)} (tracing/corruption.py); "
                             f"got {self.noise_streams!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: the fields by name, to stand at the top level of the record that holds them. A KEY_OPTIONAL
        field at its default is left out (records from before it existed read the same, and are written the same)."""
        return {f.name: getattr(self, f.name) for f in fields(TraceSettings)
                if not (f.metadata.get("key_optional") and getattr(self, f.name) == f.default)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TraceSettings":
        """Inverse of `to_dict`; an unknown key is an error (a stale or mistyped settings file)."""
        check_known_keys(cls, data, "trace settings")
        return cls(**data)

    @classmethod
    def take(cls, record: Mapping[str, Any]) -> tuple["TraceSettings", dict[str, Any]]:
        """Split a stored record whose top level holds these fields among its own: (the trace settings, the rest).
        A field the record lacks takes its default (a record written before the field existed)."""
        names = {f.name for f in fields(cls)}
        rest = {k: v for k, v in record.items() if k not in names}
        return cls(**{k: v for k, v in record.items() if k in names}), rest


def key_optional_defaults(cls: type) -> dict[str, Any]:
    """{name: default} of the fields of dataclass `cls` marked KEY_OPTIONAL."""
    return {f.name: f.default for f in fields(cls) if f.metadata.get("key_optional") and f.default is not MISSING}


def flatten_trace(data: dict[str, Any], key: str = "trace") -> dict[str, Any]:
    """`data` (an `asdict` of a record holding a TraceSettings under `key`) with that value's fields in its place, at
    the top level and in the same order: the on-disk layout every reader knows (KEY_OPTIONAL fields at their default
    left out, as `TraceSettings.to_dict` does)."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name == key:
            out.update(TraceSettings.from_dict(value).to_dict())
        else:
            out[name] = value
    return out

