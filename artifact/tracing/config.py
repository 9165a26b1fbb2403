"""Typed settings of one causal trace, with ROME's defaults."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from artifact.core.jsonable import check_known_keys
from artifact.core.names import KINDS, Kind
from artifact.core.trace_settings import TraceSettings

ROME_NOISE_MULTIPLE = 3.0  # ROME's corruption: 3 x the std of the subject-token embeddings (noise.calibrate_noise)
NOISE_MULTIPLES: tuple[float, ...] = (1.0, 3.0, 5.0)  # issue 30's noise-scale sensitivity, in units of that std


@dataclass(frozen=True)
class TraceConfig(TraceSettings):
    """Settings of one causal trace (ROME `causal_trace.py` semantics); recorded beside every result. It is the run's
    `TraceSettings` (samples, window, seed, batch_size: every field of that value, with its defaults) plus what varies
    from trace to trace: the kind, the noise level and the positions."""

    kind: Kind = "hidden"  # which state is restored: block output (hidden), MLP output (mlp) or attention output (attn)
    noise: float = 0.1  # scale of the Gaussian corruption (ROME: 3 x std of subject embeddings; see noise.py)
    positions: tuple[int, ...] | None = None  # token positions to trace (ROME's token_range); None = all; others NaN

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        super().__post_init__()
        if not (self.noise == self.noise) or self.noise < 0:  # NaN or negative
            raise ValueError(f"noise must be a non-negative number (ROME: 3 x subject-embedding std); got {self.noise!r}")
        if self.positions is not None:
            positions = tuple(int(p) for p in self.positions)
            if len(set(positions)) != len(positions):
                raise ValueError(f"positions must not repeat; got {self.positions!r}")
            object.__setattr__(self, "positions", tuple(sorted(positions)))

    @classmethod
    def of(cls, trace: TraceSettings, kind: Kind = "hidden", noise: float = 0.1,
           positions: tuple[int, ...] | None = None) -> "TraceConfig":
        """The config of one trace of a run with settings `trace`."""
        return cls(kind=kind, noise=noise, positions=positions, **trace.to_dict())

    @property
    def settings(self) -> TraceSettings:
        """The run-level trace settings this config was built with (without kind, noise and positions)."""
        return TraceSettings(**{f.name: getattr(self, f.name) for f in fields(TraceSettings)})

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, for storing beside results (KEY_OPTIONAL fields at their default left out, so a trace's
        record reads as it did before such a field existed)."""
        data = asdict(self)
        for f in fields(TraceSettings):
            if f.metadata.get("key_optional") and data.get(f.name) == f.default:
                data.pop(f.name)
        data["positions"] = list(self.positions) if self.positions is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TraceConfig":
        """Inverse of `to_dict`; unknown keys are an error so stale settings files are noticed."""
        check_known_keys(cls, data, "TraceConfig settings:")
        data = dict(data)
        if data.get("positions") is not None:
            data["positions"] = tuple(data["positions"])
        return cls(**data)

    def restored_layers(self, layer: int, num_layers: int) -> range:
        """Layers whose `kind` output is restored for a cell at `layer` (ROME's window rule; hidden: the layer alone)."""
        if self.kind == "hidden":
            return range(layer, layer + 1)
        return range(max(0, layer - self.window // 2), min(num_layers, layer - (-self.window // 2)))


def noise_scaled(config: TraceConfig, sigma: float, multiple: float) -> TraceConfig:
    """`config` with its noise at `multiple` x `sigma`, where sigma is the calibrated std of the subject-token
    embeddings (`noise.subject_embedding_std`; a run's stored ROME noise / ROME_NOISE_MULTIPLE). Multiple 3 is ROME's
    level; NOISE_MULTIPLES are the sensitivity analysis's. Everything else (seed, samples, kind) is unchanged, so
    every level sees the same standard-normal draws, scaled."""
    for name, value in (("sigma", sigma), ("multiple", multiple)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite number (noise = multiple x sigma); got {value!r}")
    return replace(config, noise=float(multiple) * float(sigma))
