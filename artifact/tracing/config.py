"""Typed settings of one causal trace, with ROME's defaults."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from artifact.core.names import KINDS, NOISE_STREAMS, Kind

ROME_NOISE_MULTIPLE = 3.0  # ROME's corruption: 3 x the std of the subject-token embeddings (noise.calibrate_noise)
NOISE_MULTIPLES: tuple[float, ...] = (1.0, 3.0, 5.0)  # issue 30's noise-scale sensitivity, in units of that std


@dataclass(frozen=True)
class TraceConfig:
    """Settings of one causal trace (ROME `causal_trace.py` semantics); recorded beside every result."""

    kind: Kind = "hidden"  # which state is restored: block output (hidden), MLP output (mlp) or attention output (attn)
    samples: int = 10  # corrupted runs per cell; ROME's default
    noise: float = 0.1  # scale of the Gaussian corruption (ROME: 3 x std of subject embeddings; see noise.py)
    window: int = 10  # mlp/attn: restore this many consecutive layers centred on the cell's layer; ROME's default
    seed: int = 1  # seed of the noise, drawn afresh for every forward (ROME uses 1)
    noise_streams: str = "rome"  # "rome": RandomState(seed) for all samples; "per_sample": sample s from (seed, s)
    positions: tuple[int, ...] | None = None  # token positions to trace (ROME's token_range); None = all; others NaN
    batch_size: int = 128  # rows per forward pass (cells x samples); results are bitwise repeatable per batch size

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"samples must be an integer >= 1 (ROME uses 10); got {self.samples!r}")
        if not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be an integer >= 1 (ROME uses 10); got {self.window!r}")
        if not (self.noise == self.noise) or self.noise < 0:  # NaN or negative
            raise ValueError(f"noise must be a non-negative number (ROME: 3 x subject-embedding std); got {self.noise!r}")
        if self.noise_streams not in NOISE_STREAMS:
            raise ValueError(f"noise_streams must be one of {', '.join(NOISE_STREAMS)} (corruption.py); "
                             f"got {self.noise_streams!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1; got {self.batch_size!r}")
        if self.positions is not None:
            positions = tuple(int(p) for p in self.positions)
            if len(set(positions)) != len(positions):
                raise ValueError(f"positions must not repeat; got {self.positions!r}")
            object.__setattr__(self, "positions", tuple(sorted(positions)))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, for storing beside results."""
        data = asdict(self)
        data["positions"] = list(self.positions) if self.positions is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TraceConfig":
        """Inverse of `to_dict`; unknown keys are an error so stale settings files are noticed."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown TraceConfig settings: {sorted(unknown)}. Known: {sorted(known)}")
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
